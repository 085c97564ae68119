"""``manifest.json``: the sha256 of every file in a pack, plus versions, parameters and statuses.

What integrity can honestly mean without a secret
-------------------------------------------------
The manifest lists every file of the pack with its sha256; the grader reports any file
that was edited, deleted or added, by name. The manifest protects itself twice: it embeds
``self_sha256`` (the hash of its own canonical JSON without that field) and the build writes
``manifest.sha256`` beside it (``sha256sum -c`` format). A hand edit of the manifest (say,
updating one file's hash to hide an edit) therefore breaks both and is reported as
"manifest.json edited". Someone who rewrites the files *and* recomputes every hash can
still forge a consistent pack: no scheme without a secret stops that. To close that gap an
instructor records the pack's ``manifest.sha256`` value at submission time (e.g. the learner
pastes it into the submission form) and grades with ``--expect-manifest-sha256 HEX``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_write_json, atomic_write_text, canonical_json, sha256_bytes, sha256_file
from ..errors import EvidenceError
from .layout import AUDIT_EXPORT, IGNORED_DIRS, IGNORED_TOP, kit_version

__all__ = ["IntegrityProblem", "environment_info", "git_revision", "pack_files",
           "read_manifest", "verify_pack", "write_manifest", "MANIFEST", "MANIFEST_SHA"]

MANIFEST = "manifest.json"
MANIFEST_SHA = "manifest.sha256"
FORMAT = 1
_PACKAGES = ("numpy", "pandas", "pyarrow", "duckdb", "scipy", "scikit-learn", "matplotlib",
             "networkx", "ipywidgets", "ipykernel", "papermill", "nbformat", "nbconvert",
             "nbclient")


@dataclass(frozen=True, kw_only=True)
class IntegrityProblem:
    """One integrity finding: ``kind`` is edited, missing, extra or manifest."""

    kind: str
    path: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.kind}: {self.path} ({self.detail})"


def pack_files(pack: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 of every pack file (POSIX relative paths, sorted), skipping ignored entries."""
    root = Path(pack)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS]
        dirnames.sort()
        for name in sorted(filenames):
            if rel_dir == Path(".") and name in IGNORED_TOP:
                continue
            path = Path(dirpath) / name
            out[(rel_dir / name).as_posix()] = sha256_file(path)
    return dict(sorted(out.items()))


def git_revision(start: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the checkout holding the kit's source, or None (no network)."""
    folder = Path(start) if start else Path(__file__).resolve().parents[2]
    if not (folder / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=folder, capture_output=True, text=True, timeout=10,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def environment_info() -> dict[str, Any]:
    """Python, platform and the versions of the packages a pack depends on."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"kit_version": kit_version(), "python": platform.python_version(),
            "implementation": sys.implementation.name, "platform": platform.platform(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "packages": versions}


def _audit_heads(root: Path, files: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Head hash (last line's ``hash``) and entry count of every chapter's audit export."""
    heads = {}
    for rel in sorted(p for p in files if p.count("/") == 1 and p.endswith("/" + AUDIT_EXPORT)):
        lines = [ln for ln in (root / rel).read_text(encoding="utf-8").splitlines() if ln.strip()]
        try:
            head = json.loads(lines[-1]).get("hash") if lines else None
        except (json.JSONDecodeError, AttributeError):
            head = None
        heads[rel] = {"file": rel, "hash": head, "entries": len(lines)}
    return heads


def _self_hash(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "self_sha256"}
    return sha256_bytes(canonical_json(body).encode("utf-8"))


def write_manifest(pack: str | os.PathLike[str], *, chapters: dict[str, Any],
                   parameters: dict[str, Any], built_at: str | None = None) -> dict[str, Any]:
    """Hash the pack and write ``manifest.json`` and ``manifest.sha256``; return the manifest.

    ``chapters`` maps chapter number (as a string) to status, duration and notebook name;
    ``parameters`` holds the seed (and its ``seed_source``), the learner, scale and the quiz-answer
    source of the build.
    ``audit_exports`` records the head hash of every ``chNN/audit_export.jsonl`` and
    ``audit_head`` the latest chapter's: a short value an instructor can keep as an anchor.
    """
    root = Path(pack)
    files = pack_files(root)
    heads = _audit_heads(root, files)
    latest = heads[max(heads)] if heads else None
    manifest = {
        "format": FORMAT, "built_at": built_at, "environment": environment_info(),
        "git": git_revision(), "parameters": parameters,
        "chapters": dict(sorted(chapters.items())), "audit_head": latest, "audit_exports": heads,
        "files": files,
    }
    manifest["self_sha256"] = _self_hash(manifest)
    atomic_write_json(root / MANIFEST, manifest)
    digest = sha256_file(root / MANIFEST)
    atomic_write_text(root / MANIFEST_SHA, f"{digest}  {MANIFEST}\n")
    return manifest


def read_manifest(pack: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``manifest.json`` or raise ``EvidenceError`` saying what is wrong."""
    path = Path(pack) / MANIFEST
    if not path.is_file():
        raise EvidenceError(f"{str(Path(pack))!r} has no {MANIFEST}.",
                            fix="Pass an evidence pack folder written by 'mlops-kit evidence build'.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvidenceError(f"{MANIFEST} is not valid JSON ({exc}).",
                            fix="Rebuild the pack; the manifest was damaged.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise EvidenceError(f"{MANIFEST} has no 'files' table.", fix="Rebuild the pack.")
    return data


def verify_pack(pack: str | os.PathLike[str], *,
                expect_manifest_sha256: str | None = None) -> list[IntegrityProblem]:
    """Compare the pack with its manifest; return every problem found (empty when intact)."""
    root = Path(pack)
    problems: list[IntegrityProblem] = []
    try:
        manifest = read_manifest(root)
    except EvidenceError as exc:
        return [IntegrityProblem(kind="manifest", path=MANIFEST, detail=exc.message)]
    actual_sha = sha256_file(root / MANIFEST)
    sidecar = root / MANIFEST_SHA
    if not sidecar.is_file():
        problems.append(IntegrityProblem(kind="missing", path=MANIFEST_SHA,
                                         detail="the manifest's checksum file is gone"))
    elif sidecar.read_text(encoding="utf-8").split()[:1] != [actual_sha]:
        problems.append(IntegrityProblem(
            kind="manifest", path=MANIFEST,
            detail=f"manifest.json was edited: its sha256 {actual_sha[:12]}... does not match "
            f"{MANIFEST_SHA}"))
    if manifest.get("self_sha256") != _self_hash(manifest):
        problems.append(IntegrityProblem(
            kind="manifest", path=MANIFEST,
            detail="manifest.json was edited: its content does not match its embedded self_sha256"))
    if expect_manifest_sha256 is not None and actual_sha != expect_manifest_sha256.lower():
        problems.append(IntegrityProblem(
            kind="manifest", path=MANIFEST,
            detail=f"sha256 {actual_sha[:12]}... differs from the expected "
            f"{expect_manifest_sha256[:12]}... recorded at submission"))
    recorded: dict[str, str] = manifest["files"]
    actual = pack_files(root)
    for rel in sorted(set(recorded) | set(actual)):
        if rel not in actual:
            problems.append(IntegrityProblem(kind="missing", path=rel,
                                             detail="listed in the manifest but not in the pack"))
        elif rel not in recorded:
            problems.append(IntegrityProblem(kind="extra", path=rel,
                                             detail="in the pack but not in the manifest"))
        elif actual[rel] != recorded[rel]:
            problems.append(IntegrityProblem(kind="edited", path=rel,
                                             detail="content differs from the manifest's sha256"))
    return problems
