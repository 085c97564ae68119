"""Criteria every pack and every chapter share: integrity, execution, checks, quiz.

Per chapter N (1-6) this registers ``CN.run``, ``CN.checks`` and ``CN.quiz``; chapter 6 also
has ``C6.exam`` (the mock exam). ``P.integrity`` covers the whole pack.
"""

from __future__ import annotations

from functools import partial
from pathlib import PurePosixPath

from ..._io import sha256_file
from ...errors import MlopsKitError
from ..quiz import load_bank, score_answers
from .base import Grade, GradingContext, criterion

__all__ = ["CHAPTERS", "grade_integrity", "grade_run", "grade_checks", "grade_quiz"]

CHAPTERS = range(1, 7)


@criterion("P.integrity")
def grade_integrity(ctx: GradingContext) -> Grade:
    """Every file matches the manifest; none missing or extra; the manifest is unedited."""
    if not ctx.problems:
        return Grade(4, f"all {len(ctx.manifest.get('files', {}))} files match the manifest; "
                     "the manifest matches its checksum")
    shown = "; ".join(str(p) for p in ctx.problems[:8])
    more = f" (+{len(ctx.problems) - 8} more)" if len(ctx.problems) > 8 else ""
    return Grade(0, f"{len(ctx.problems)} integrity problem(s): {shown}{more}")


def grade_run(ctx: GradingContext, chapter: int) -> Grade:
    """The notebook ran to its last cell: status ok, executed notebook and HTML kept."""
    status = ctx.chapter_status(chapter) or {}
    notebook = status.get("notebook")
    kept = []
    if isinstance(notebook, str):
        stem = PurePosixPath(notebook).stem
        kept = [rel for rel in (f"notebooks/{notebook}", f"html/{stem}.html") if ctx.exists(rel)]
    if status.get("status") == "ok" and len(kept) == 2:
        return Grade(4, f"executed in {status.get('duration_s')} s; notebook and HTML kept")
    if status.get("status") == "ok":
        return Grade(2, "the build reports success but the executed notebook or HTML is missing")
    error = status.get("error") or "no status recorded"
    partial_run = ctx.exists(f"{ctx.chapter_dir(chapter)}/checks.json")
    return Grade(2 if partial_run else 0,
                 f"the run failed ({error}){'; partial evidence kept' if partial_run else ''}")


def grade_checks(ctx: GradingContext, chapter: int) -> Grade:
    """checks.json: every recorded check passed, and the completion marker lists the same."""
    folder = ctx.chapter_dir(chapter)
    checks = ctx.read_json(f"{folder}/checks.json").get("checks", [])
    passed = [c["id"] for c in checks if c.get("passed") is True]
    failed = [c["id"] for c in checks if c.get("passed") is not True]
    if not ctx.exists(f"{folder}/complete.json"):
        return Grade(2 if passed else 0,
                     f"{len(passed)} check(s) passed, failed: {failed or 'none'}; the chapter "
                     "never reached complete()")
    marker = ctx.read_json(f"{folder}/complete.json")
    listed = {c.get("id") for c in marker.get("checks", [])}
    if failed or not passed:
        return Grade(0 if not passed else 2, f"failed checks: {failed}")
    if listed != set(passed):
        return Grade(2, f"complete.json lists {sorted(listed)} but checks.json has {sorted(passed)}")
    for name, digest in sorted(marker.get("artifacts", {}).items()):
        rel = f"{folder}/{name}"
        if not ctx.exists(rel):
            return Grade(2, f"complete.json lists {name} but it is missing")
        if sha256_file(ctx.path(rel)) != digest:
            return Grade(2, f"{name} changed after the chapter completed")
    return Grade(4, f"{len(passed)} of {len(passed)} checks passed and the chapter completed")


def grade_quiz(ctx: GradingContext, chapter: int, bank_name: str) -> Grade:
    """Score the recorded answers against the kit's answer key (4: >= 80 %, 2: >= 40 %)."""
    try:
        bank = load_bank(bank_name)
    except MlopsKitError as exc:
        return Grade(0, f"no answer key: {exc.message}")
    answers = ctx.read_json(f"{ctx.chapter_dir(chapter)}/answers.json")
    entry = answers.get("banks", {}).get(bank_name)
    if not isinstance(entry, dict):
        return Grade(0, f"quiz {bank_name} was not recorded in answers.json")
    score = score_answers(bank, entry.get("answers") or {})
    level = 4 if score.fraction >= 0.8 else 2 if score.fraction >= 0.4 else 0
    source = ctx.manifest.get("parameters", {}).get("quiz_answers_source")
    note = " (answers taken from the answer key)" if source == "key" else ""
    return Grade(level, f"{score.right} of {score.total} right, {score.wrong} wrong, "
                 f"{score.unanswered} unanswered{note}")


for _n in CHAPTERS:
    criterion(f"C{_n}.run")(partial(grade_run, chapter=_n))
    criterion(f"C{_n}.checks")(partial(grade_checks, chapter=_n))
    criterion(f"C{_n}.quiz")(partial(grade_quiz, chapter=_n, bank_name=f"ch{_n:02d}"))
criterion("C6.exam")(partial(grade_quiz, chapter=6, bank_name="mock_exam"))
