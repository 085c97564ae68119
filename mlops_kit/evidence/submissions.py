"""A class's submissions: one evidence pack per learner, as a folder, ``.zip`` or ``.tar.gz``.

The submissions folder holds one entry per learner, named by the learner id
(``ada.zip``, ``ada.tar.gz``, ``ada/``), and optionally ``roster.csv`` (columns ``id``,
``name``, ``section``). Archives are opened only after every member has been checked:
an absolute name, a ``..`` component, a link, a device, more than ``max_files`` members or
more than ``max_bytes`` uncompressed refuse the whole archive, and nothing is extracted
outside the temporary folder the caller owns. A folder submission with a symbolic link in it
is refused too (grading reads files by path). The pack may sit at the archive's root or in
its one top-level folder.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import EvidenceError, ValidationError
from .learners import LEARNER_ID_RE
from .manifest import MANIFEST

__all__ = ["ARCHIVE_SUFFIXES", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILES", "ROSTER", "Submission",
           "UnreadableSubmission", "find_submissions", "open_submission", "read_roster", "submission_digest"]

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
ROSTER = "roster.csv"
DEFAULT_MAX_BYTES = 1 << 30        # 1 GiB uncompressed per pack: a real pack is a few MB
DEFAULT_MAX_FILES = 5000


class UnreadableSubmission(EvidenceError):
    """A submission that is not a readable evidence pack (the reason says why)."""


@dataclass(frozen=True)
class Submission:
    """One learner's entry in the submissions folder: ``kind`` is folder, zip or tar."""

    learner: str
    path: Path
    kind: str


def _learner_of(entry: Path) -> tuple[str, str] | None:
    name = entry.name
    if entry.is_dir() and not entry.is_symlink():
        return name, "folder"
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], "zip" if suffix == ".zip" else "tar"
    return None


def find_submissions(folder: str | os.PathLike[str]) -> tuple[list[Submission], dict[str, str]]:
    """The learners' submissions in ``folder`` (sorted by id), and entries that cannot be one.

    The second value maps an entry's name to why it was not taken (a stray file, a bad id,
    two submissions for one id); those become ``unreadable`` rows of the gradebook.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValidationError(f"grade-class: submissions folder {str(root)!r} is not a folder.",
                              fix="Pass the folder holding one pack (folder, .zip or .tar.gz) per learner.")
    found: dict[str, Submission] = {}
    rejected: dict[str, str] = {}
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name == ROSTER or entry.name.startswith("."):
            continue
        parsed = _learner_of(entry)
        if parsed is None:
            rejected[entry.name] = ("a symbolic link, not a pack" if entry.is_symlink()
                                    else "not a pack (expected a folder, .zip or .tar.gz named by learner id)")
            continue
        learner, kind = parsed
        if not LEARNER_ID_RE.match(learner) or ".." in learner:
            rejected[entry.name] = f"learner id {learner!r} is not a plain id (letters, digits, _ . @ + -)"
        elif learner in found:
            rejected[entry.name] = f"a second submission for {learner!r} (also {found[learner].path.name})"
        else:
            found[learner] = Submission(learner, entry, kind)
    return [found[k] for k in sorted(found)], rejected


def read_roster(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``roster.csv`` as id -> {name, section}; columns ``id`` (required), ``name``, ``section``."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip().lower() for f in reader.fieldnames or []]
            if "id" not in fields:
                raise ValidationError(f"{p.name}: no 'id' column (found {reader.fieldnames}).",
                                      fix="Give roster.csv a header row: id,name,section.")
            roster: dict[str, dict[str, str]] = {}
            for number, row in enumerate(reader, start=2):
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
                learner = row.get("id", "")
                if not learner:
                    raise ValidationError(f"{p.name} line {number}: empty id.", fix="Give every row a learner id.")
                if learner in roster:
                    raise ValidationError(f"{p.name} line {number}: id {learner!r} listed twice.",
                                          fix="Keep one row per learner.")
                roster[learner] = {"name": row.get("name", ""), "section": row.get("section", "")}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValidationError(f"{p.name} cannot be read: {exc}.", fix="Save the roster as UTF-8 CSV.") from None
    return roster


def submission_digest(sub: Submission) -> str:
    """sha256 over the submission's bytes (an archive's file; a folder's paths and contents)."""
    digest = hashlib.sha256()
    if sub.kind != "folder":
        with sub.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for path in sorted(p for p in sub.path.rglob("*") if p.is_file()):
        digest.update(path.relative_to(sub.path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise UnreadableSubmission(f"unsafe path {name!r} in the archive (absolute or with '..')",
                                   fix="Re-pack the evidence folder with relative paths only.")
    return path


def _check_budget(count: int, total: int, max_files: int, max_bytes: int) -> None:
    if count > max_files:
        raise UnreadableSubmission(f"more than {max_files} files in the archive",
                                   fix="Submit only the evidence folder.")
    if total > max_bytes:
        raise UnreadableSubmission(f"more than {max_bytes >> 20} MiB uncompressed",
                                   fix="Submit only the evidence folder (a pack is a few MB).")


def _extract_zip(path: Path, dest: Path, max_files: int, max_bytes: int) -> None:
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        _check_budget(len(members), sum(m.file_size for m in members), max_files, max_bytes)
        for m in members:
            _safe_name(m.filename)
            kind = stat.S_IFMT(m.external_attr >> 16)   # 0 when the archiver recorded no file type
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise UnreadableSubmission(f"{m.filename!r} in the archive is a link or a special file",
                                           fix="Re-pack the evidence folder without links.")
        written = 0
        for m in members:
            target = dest / _safe_name(m.filename)
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(m) as source, target.open("wb") as sink:
                for block in iter(lambda: source.read(1 << 20), b""):
                    written += len(block)
                    _check_budget(0, written, max_files, max_bytes)  # headers can lie about sizes
                    sink.write(block)


def _extract_tar(path: Path, dest: Path, max_files: int, max_bytes: int) -> None:
    with tarfile.open(path, mode="r:*") as archive:
        members = archive.getmembers()
        _check_budget(len(members), sum(m.size for m in members if m.isfile()), max_files, max_bytes)
        for m in members:
            _safe_name(m.name)
            if not (m.isfile() or m.isdir()):
                raise UnreadableSubmission(f"{m.name!r} in the archive is a link or a special file",
                                           fix="Re-pack the evidence folder without links.")
        for m in members:
            target = dest / _safe_name(m.name)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(m)
            assert source is not None  # a regular file, checked above
            with source, target.open("wb") as sink:
                for block in iter(lambda: source.read(1 << 20), b""):
                    sink.write(block)


def _pack_root(folder: Path, what: str) -> Path:
    if (folder / MANIFEST).is_file():
        return folder
    children = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(children) == 1 and children[0].is_dir() and (children[0] / MANIFEST).is_file():
        return children[0]
    raise UnreadableSubmission(f"{what} holds no {MANIFEST} (not an evidence pack)",
                               fix="Submit the folder 'mlops-kit evidence build' wrote, zipped or as is.")


def open_submission(sub: Submission, scratch: str | os.PathLike[str], *,
                    max_bytes: int = DEFAULT_MAX_BYTES, max_files: int = DEFAULT_MAX_FILES) -> Path:
    """The pack folder of ``sub``: the folder itself, or the archive extracted into ``scratch``.

    Raises ``UnreadableSubmission`` (nothing written outside ``scratch``) for a corrupt or
    unsafe archive, a folder with links in it, or no ``manifest.json``.
    """
    if sub.kind == "folder":
        links = [p for p in sub.path.rglob("*") if p.is_symlink()]
        if links:
            raise UnreadableSubmission(f"the folder holds a symbolic link ({links[0].relative_to(sub.path)})",
                                       fix="Copy the files in, not links to them.")
        return _pack_root(sub.path, "the folder")
    dest = Path(scratch)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if sub.kind == "zip":
            _extract_zip(sub.path, dest, max_files, max_bytes)
        else:
            _extract_tar(sub.path, dest, max_files, max_bytes)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise UnreadableSubmission(f"corrupt archive: {type(exc).__name__}: {exc}",
                                   fix="Ask the learner to zip the evidence folder again.") from None
    return _pack_root(dest, "the archive")
