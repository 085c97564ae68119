"""``grade_class``: grade every learner's pack at once into a gradebook, and flag what looks wrong.

Each submission (see ``submissions``) is graded in a worker process with the same grader as
``mlops-kit grade`` (the submission itself is never written to), into
``GRADEBOOK/<id>/score.json`` and ``SCORE.md``. Then the class-wide checks run on what the
workers returned:

- **identical evidence**: two learners whose packs share a *run fingerprint*: the manifest's
  own hash, or the hash of an executed notebook. Papermill writes the run's start and end
  times into every executed notebook, so two honest builds never share one, even from the
  same seed; a shared one means one run handed in twice. Artifacts that every build of a
  seed repeats (tables, figures, checks, HTML pages of deterministic outputs) are not
  fingerprints: they are shared package data.
- **world mismatch**: the pack is not from the submission's learner's world
  (``world_check.check_world``): its manifest or a chapter's ``run.json`` names another
  learner, no learner or another seed, or its saved raw rows are not rows of the worlds
  regenerated from the learner's seed. A pack with no such rows is ``unchecked``, not flagged.
- **tampered**: the pack fails its integrity check (an edited, missing or extra file).
- **late**: built after ``deadline`` (reported, never used to change a score).
- **missing**: a roster id without a submission; **unreadable**: not a pack, a corrupt
  or unsafe archive (the reason is in the row).

Flags are leads for the instructor, not verdicts: see the README's Instructors section.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .._io import atomic_write_json, atomic_write_text, sha256_file
from ..errors import EvidenceError, ValidationError
from .rubric import default_rubric_path, load_rubric
from .submissions import (DEFAULT_MAX_BYTES, ROSTER, Submission, UnreadableSubmission, find_submissions,
                          open_submission, read_roster, submission_digest)

__all__ = ["FLAG_KINDS", "ClassResult", "grade_class", "grade_submission"]

FLAG_KINDS = ("identical_evidence", "world_mismatch", "tampered", "late", "missing", "unreadable")
_RUN_FILES = ("notebooks/",)
ROW_FILE = "row.json"


@dataclass(kw_only=True)
class ClassResult:
    """Rows (one per learner, sorted by id), flags by kind, and where the gradebook went."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    flags: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    criteria: list[dict[str, Any]] = field(default_factory=list)
    resumed: int = 0

    @property
    def ungraded(self) -> int:
        """Submissions that could not be graded (unreadable); missing learners are not counted."""
        return sum(1 for r in self.rows if r["status"] == "unreadable")


def _fingerprints(manifest: Mapping[str, Any] | None) -> list[str]:
    if not isinstance(manifest, Mapping):
        return []
    prints = [f"manifest:{manifest.get('self_sha256')}"] if manifest.get("self_sha256") else []
    files = manifest.get("files") if isinstance(manifest.get("files"), Mapping) else {}
    prints += [f"{path}:{digest}" for path, digest in sorted(files.items()) if path.startswith(_RUN_FILES)]
    return prints


def grade_submission(learner: str, path: str, kind: str, rubric: str, out: str,
                     max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Grade one submission into ``out/<learner>/``; returns its gradebook row (never raises).

    Module-level so a process pool can run it; any failure becomes an ``unreadable`` row.
    """
    from .grading import grade_pack
    from .manifest import read_manifest

    sub = Submission(learner, Path(path), kind)
    row: dict[str, Any] = {"id": learner, "status": "graded", "reason": "", "submission": Path(path).name}
    try:
        row["submission_sha256"] = submission_digest(sub)
        with tempfile.TemporaryDirectory(prefix="mlops-kit-grade-") as scratch:
            pack = open_submission(sub, scratch, max_bytes=max_bytes)
            report = grade_pack(pack, rubric=rubric, write=False)
            world = _world(pack, learner)
            try:
                manifest: dict[str, Any] | None = read_manifest(pack)
            except EvidenceError:
                manifest = None
    except UnreadableSubmission as exc:
        return {**row, "status": "unreadable", "reason": str(exc)}
    except Exception as exc:  # a hostile or broken pack must not stop the class
        return {**row, "status": "unreadable", "reason": f"could not be graded: {type(exc).__name__}: {exc}"}
    data = report.to_dict()
    params = (manifest or {}).get("parameters") if isinstance((manifest or {}).get("parameters"), Mapping) else {}
    row.update(points=data["points"], max_points=data["rubric_max_points"],
               percent=round(100.0 * data["points"] / data["rubric_max_points"], 1) if data["rubric_max_points"] else 0.0,
               criteria={r["id"]: r["awarded"] for r in data["criteria"]},
               integrity_ok=data["integrity"]["ok"],
               integrity_problems=[str(p) for p in report.problems][:20],
               built_at=(manifest or {}).get("built_at"), pack_learner=params.get("learner"),
               fingerprints=_fingerprints(manifest), rubric_sha256=data["rubric"]["sha256"], world=world)
    folder = Path(out) / learner
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "score.json", data)
    atomic_write_text(folder / "SCORE.md", report.to_markdown())
    atomic_write_json(folder / ROW_FILE, row)
    return row


def _world(pack: Path, learner: str) -> dict[str, Any]:
    """The world check's verdict for the row: status, seed and what did not match."""
    from .world_check import check_world

    try:
        verdict = check_world(pack, learner)
    except Exception as exc:  # a hostile pack must not stop the class: the failure is the lead
        return {"status": "mismatch", "seed": None, "detail": f"the world check could not run: "
                f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"status": verdict.status, "seed": verdict.seed, "detail": verdict.detail}


def _world_flag(row: dict[str, Any]) -> dict[str, Any] | None:
    world = row.get("world") if isinstance(row.get("world"), Mapping) else {}
    if world.get("status") == "mismatch":
        return {"learner": row["id"], "pack_learner": row.get("pack_learner"), "detail": world.get("detail", "")}
    if not world and row.get("pack_learner") not in (None, row["id"]):  # a row graded before the world check
        return {"learner": row["id"], "pack_learner": row["pack_learner"],
                "detail": f"the pack was built for {row['pack_learner']!r}"}
    return None


def _unreadable(entry: str, reason: str) -> dict[str, Any]:
    return {"id": entry, "status": "unreadable", "reason": reason, "submission": entry}


def _identical(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    owners: dict[str, set[str]] = {}
    for row in rows:
        for fp in row.get("fingerprints", []):
            owners.setdefault(fp, set()).add(row["id"])
    groups: dict[tuple[str, ...], list[str]] = {}
    for fp, ids in owners.items():
        if len(ids) > 1:
            groups.setdefault(tuple(sorted(ids)), []).append(fp.split(":", 1)[0])
    return [{"learners": list(ids), "shared": sorted(set(what))[:5],
             "detail": f"{len(ids)} packs share {len(what)} run fingerprint(s): one run handed in more than once"}
            for ids, what in sorted(groups.items())]


def _late(row: dict[str, Any], deadline: datetime) -> dict[str, Any] | None:
    try:
        built = datetime.fromisoformat(str(row.get("built_at")))
    except ValueError:
        return {"learner": row["id"], "built_at": row.get("built_at"), "detail": "no readable build time"}
    if built.tzinfo is None or built <= deadline:
        return None
    hours = round((built - deadline).total_seconds() / 3600, 2)
    return {"learner": row["id"], "built_at": row["built_at"], "late_by_h": hours,
            "detail": f"built {hours} h after the deadline"}


def _flags(rows: list[dict[str, Any]], missing: list[str], deadline: datetime | None) -> dict[str, list]:
    graded = [r for r in rows if r["status"] == "graded"]
    flags: dict[str, list[dict[str, Any]]] = {kind: [] for kind in FLAG_KINDS}
    flags["identical_evidence"] = _identical(graded)
    for row in graded:
        mismatch = _world_flag(row)
        if mismatch is not None:
            flags["world_mismatch"].append(mismatch)
        if not row.get("integrity_ok", True):
            flags["tampered"].append({"learner": row["id"], "problems": row.get("integrity_problems", [])})
        late = _late(row, deadline) if deadline is not None else None
        if late is not None:
            flags["late"].append(late)
    flags["missing"] = [{"learner": learner, "detail": "on the roster, no submission"} for learner in missing]
    flags["unreadable"] = [{"learner": r["id"], "detail": r["reason"]} for r in rows if r["status"] == "unreadable"]
    for kind in ("identical_evidence",):
        for group in flags[kind]:
            for learner in group["learners"]:
                _row(rows, learner).setdefault("flags", []).append(kind)
    for kind in ("world_mismatch", "tampered", "late", "unreadable"):
        for item in flags[kind]:
            _row(rows, item["learner"]).setdefault("flags", []).append(kind)
    return flags


def _row(rows: list[dict[str, Any]], learner: str) -> dict[str, Any]:
    return next(r for r in rows if r["id"] == learner)


def _resumable(out: Path, sub: Submission, rubric_sha: str) -> dict[str, Any] | None:
    try:
        row = json.loads((out / sub.learner / ROW_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if row.get("rubric_sha256") == rubric_sha and row.get("submission_sha256") == submission_digest(sub):
        return row
    return None


def _check_args(jobs: int | None, deadline: Any, fmt: str) -> int:
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValidationError(f"grade-class: --jobs must be a positive integer, got {jobs!r}.", fix="Pass e.g. --jobs 2.")
    if deadline is not None and (not isinstance(deadline, datetime) or deadline.tzinfo is None):
        raise ValidationError(f"grade-class: the deadline must be a time with a zone, got {deadline!r}.",
                              fix="Pass e.g. --deadline 2026-12-18T23:59:00+00:00.")
    if fmt not in ("plain", "canvas"):
        raise ValidationError(f"grade-class: --format must be 'plain' or 'canvas', got {fmt!r}.",
                              fix="Use --format canvas for Canvas's gradebook import.")
    return jobs


def grade_class(submissions: str | os.PathLike[str], out: str | os.PathLike[str], *,
                rubric: str | os.PathLike[str] | None = None, jobs: int | None = None,
                roster: str | os.PathLike[str] | None = None, deadline: datetime | None = None,
                resume: bool = False, fmt: str = "plain", assignment: str = "MLOps practicum",
                max_bytes: int = DEFAULT_MAX_BYTES,
                progress: Callable[[int, int, str], None] | None = None) -> ClassResult:
    """Grade every pack in ``submissions`` into the gradebook folder ``out``.

    Writes ``gradebook.csv`` (``--format canvas``: also ``canvas.csv``), ``flags.json``,
    ``index.html`` and ``<id>/score.json``/``SCORE.md``. ``roster`` defaults to the
    submissions folder's ``roster.csv`` if there is one. ``progress(done, total, id)`` is
    called as packs finish. Bad arguments raise before anything is written; a bad pack
    becomes a row, never an exception.
    """
    from .class_page import write_class_files

    jobs = _check_args(jobs, deadline, fmt)
    rubric_path = Path(rubric) if rubric is not None else default_rubric_path()
    criteria = [{"id": c.id, "points": c.points, "chapter": c.chapter, "section": c.section}
                for c in load_rubric(rubric_path)]
    rubric_sha = sha256_file(rubric_path)
    subs, rejected = find_submissions(submissions)
    roster_path = Path(roster) if roster is not None else Path(submissions) / ROSTER
    people = read_roster(roster_path) if roster is not None or roster_path.is_file() else {}
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValidationError(f"grade-class: --out {str(root)!r} is a file.", fix="Pass a folder for the gradebook.")
    root.mkdir(parents=True, exist_ok=True)
    result = ClassResult(out=root.resolve(), criteria=criteria)
    rows = [_unreadable(name, reason) for name, reason in rejected.items()]
    todo = []
    for sub in subs:
        done = _resumable(root, sub, rubric_sha) if resume else None
        if done is not None:
            rows.append(done)
            result.resumed += 1
        else:
            todo.append(sub)
    args = [(s.learner, str(s.path), s.kind, str(rubric_path), str(root), max_bytes) for s in todo]
    if jobs == 1 or len(args) <= 1:
        for position, task in enumerate(args, start=1):
            rows.append(grade_submission(*task))
            if progress:
                progress(position, len(args), task[0])
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(args)), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(grade_submission, *task): task for task in args}
            for position, finished in enumerate(as_completed(futures), start=1):
                learner = futures[finished][0]
                try:
                    rows.append(finished.result())
                except Exception as exc:  # the worker process died (out of memory, killed)
                    rows.append({**_unreadable(learner, f"the grader's process died: {type(exc).__name__}: {exc}"),
                                 "submission": Path(futures[finished][1]).name})
                if progress:
                    progress(position, len(args), learner)
    by_id = {r["id"] for r in rows}
    missing = sorted(learner for learner in people if learner not in by_id)
    rows += [{"id": learner, "status": "missing", "reason": "no submission", "submission": ""} for learner in missing]
    for row in rows:
        row.pop("flags", None)
        row.update(name=people.get(row["id"], {}).get("name", ""), section=people.get(row["id"], {}).get("section", ""))
    result.rows = sorted(rows, key=lambda r: r["id"])
    result.flags = _flags(result.rows, missing, deadline)
    write_class_files(result, fmt=fmt, assignment=assignment, rubric_name=rubric_path.name)
    return result
