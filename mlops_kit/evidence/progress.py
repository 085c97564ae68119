"""A learner's progress: what each chapter's evidence says, and what to do next.

``pack_progress`` reads an evidence folder (the one the notebooks write into, or a built
pack): per chapter whether it ran (``chNN/run.json``) and completed (``complete.json``), the
checks passed out of the checks the notebook records, every exercise's state, the quiz score
and the next step. Exercises are found by their ``exercise-N.M`` cell tag in the executed
notebook (``notebooks/`` of a built pack) or else the chapter's notebook. An exercise's
checks are those of the first cell after it that calls ``rec.check``. States:

- ``done``: its checks were recorded and passed;
- ``failing``: one of its checks failed (the check's "look at" hint says where to look), or
  its cell raised an error other than the stub's;
- ``not done``: the stub is still there (its cell raised ``ExerciseNotDoneError``) or no
  check of it was recorded;
- ``not reached``: an executed notebook stopped before the exercise's cell ran.

``self_grade`` turns ``grade_pack``'s report into a learner's list: the criteria that are
short, the rubric's words for the level reached and the notebook section that writes their
evidence, never a quiz answer or an expected value.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .layout import CHAPTER_RE, chapter_dirname, validate_chapter
from .release import exercise_id

__all__ = ["ChapterProgress", "ExerciseProgress", "chapter_progress", "pack_progress",
           "progress_text", "progress_widget", "self_grade"]

_CHECK_RE = re.compile(r"""rec\.check\(\s*["']([^"']+)["']""")
_HEADING_RE = re.compile(r"^#{2,4}\s+(.+)$", re.MULTILINE)


@dataclass(kw_only=True)
class ExerciseProgress:
    """One exercise: ``state`` (done, failing, not done, not reached), its checks, a hint."""

    id: str
    state: str
    checks: list[str]
    look_at: str = ""


@dataclass(kw_only=True)
class ChapterProgress:
    """One chapter's progress (``to_dict`` is what ``--json`` prints)."""

    chapter: int
    notebook: str | None
    built: bool
    complete: bool
    checks_passed: int
    checks_total: int
    failing: list[dict[str, str]] = field(default_factory=list)
    exercises: list[ExerciseProgress] = field(default_factory=list)
    quiz: dict[str, int] | None = None
    next_step: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _notebook_for(chapter: int, pack: Path, notebooks: Path | None) -> Path | None:
    folders = [pack / "notebooks"]
    if notebooks is not None:
        folders.append(notebooks)
    else:
        from .runner import default_notebooks_dir

        try:
            folders.append(default_notebooks_dir())
        except Exception:  # noqa: BLE001 - an installed kit has no checkout notebooks
            pass
    for folder in folders:
        for path in sorted(folder.glob(f"{chapter:02d}_*.ipynb")) if folder.is_dir() else []:
            if CHAPTER_RE.match(path.name):
                return path
    return None


def _error_of(cell: Any) -> dict[str, str] | None:
    for output in cell.get("outputs", []) or []:
        if output.get("output_type") == "error":
            return {"ename": str(output.get("ename", "")), "evalue": str(output.get("evalue", ""))}
    return None


def _exercises(nb: Any, recorded: dict[str, dict[str, Any]], executed: bool
               ) -> list[ExerciseProgress]:
    out = []
    cells = nb.cells
    for index, cell in enumerate(cells):
        ex_id = exercise_id(cell) if cell.cell_type == "code" else None
        if ex_id is None:
            continue
        checks: list[str] = []
        for later in cells[index + 1:]:
            if later.cell_type == "code" and exercise_id(later) is not None:
                break
            if later.cell_type == "code" and (checks := _CHECK_RE.findall(later.source)):
                break
        error = _error_of(cell) if executed else None
        states = [recorded.get(c) for c in checks]
        failed = [s for s in states if s is not None and not s.get("passed")]
        if executed and cell.get("execution_count") is None and error is None:
            out.append(ExerciseProgress(id=ex_id, state="not reached", checks=checks,
                                        look_at="an earlier cell stopped the run"))
        elif error is not None and error["ename"] == "ExerciseNotDoneError":
            out.append(ExerciseProgress(id=ex_id, state="not done", checks=checks,
                                        look_at="replace the stub in its cell with your code"))
        elif error is not None:
            out.append(ExerciseProgress(id=ex_id, state="failing", checks=checks,
                                        look_at=f"its cell raised {error['ename']}"))
        elif failed:
            out.append(ExerciseProgress(id=ex_id, state="failing", checks=checks,
                                        look_at=str(failed[0].get("look_at") or "")))
        elif checks and all(s is not None for s in states):
            out.append(ExerciseProgress(id=ex_id, state="done", checks=checks))
        else:
            out.append(ExerciseProgress(id=ex_id, state="not done", checks=checks,
                                        look_at="complete it and run its check cell"))
    return out


def _quiz(folder: Path, chapter: int) -> dict[str, int] | None:
    from ..errors import MlopsKitError
    from .quiz import load_bank, score_answers

    entry = ((_read_json(folder / "answers.json") or {}).get("banks") or {}).get(f"ch{chapter:02d}")
    if not isinstance(entry, dict):
        return None
    try:
        score = score_answers(load_bank(chapter), entry.get("answers") or {})
    except MlopsKitError:
        return None
    return {"right": score.right, "wrong": score.wrong, "unanswered": score.unanswered,
            "total": score.total}


def _next_step(p: ChapterProgress) -> str:
    name = p.notebook or f"chapter {p.chapter}'s notebook"
    if not p.built:
        return f"run {name} from the top"
    for ex in p.exercises:
        if ex.state == "failing":
            return f"fix Exercise {ex.id}: {ex.look_at}"
    if p.failing:
        return f"fix check {p.failing[0]['id']}: {p.failing[0]['look_at'] or 'see its cell'}"
    for ex in p.exercises:
        if ex.state in ("not done", "not reached"):
            return f"do Exercise {ex.id}, then re-run the notebook from the top"
    if not p.complete:
        return f"run {name} to its last cell (rec.complete())"
    if p.quiz is not None and p.quiz["unanswered"]:
        return f"answer the quiz ({p.quiz['unanswered']} of {p.quiz['total']} unanswered)"
    return "nothing left: the chapter is complete"


def chapter_progress(evidence_dir: str | os.PathLike[str], chapter: int, *,
                     notebooks: str | os.PathLike[str] | None = None) -> ChapterProgress:
    """The progress of one chapter in ``evidence_dir`` (see the module doc)."""
    import nbformat

    chapter = validate_chapter(chapter)
    pack = Path(evidence_dir)
    folder = pack / chapter_dirname(chapter)
    checks_doc = _read_json(folder / "checks.json") or {}
    recorded = {c["id"]: c for c in checks_doc.get("checks", []) if isinstance(c, dict) and "id" in c}
    path = _notebook_for(chapter, pack, Path(notebooks) if notebooks is not None else None)
    nb = nbformat.read(str(path), as_version=4) if path is not None else None
    # an executed notebook tells "not reached" only for a chapter that ran (papermill rewrites
    # it while a run is in progress, before the chapter's folder exists)
    executed = (path is not None and path.parent == pack / "notebooks"
                and (folder / "run.json").is_file())
    static = [cid for cell in (nb.cells if nb else []) if cell.cell_type == "code"
              for cid in _CHECK_RE.findall(cell.source)]
    ids = list(dict.fromkeys([*static, *recorded]))
    progress = ChapterProgress(
        chapter=chapter, notebook=path.name if path else None,
        built=(folder / "run.json").is_file(), complete=(folder / "complete.json").is_file(),
        checks_passed=sum(1 for c in recorded.values() if c.get("passed")), checks_total=len(ids),
        failing=[{"id": c["id"], "look_at": str(c.get("look_at") or "")}
                 for c in recorded.values() if not c.get("passed")],
        exercises=_exercises(nb, recorded, executed) if nb is not None else [],
        quiz=_quiz(folder, chapter))
    progress.next_step = _next_step(progress)
    return progress


def pack_progress(evidence_dir: str | os.PathLike[str] = "evidence", *,
                  chapters: list[int] | None = None,
                  notebooks: str | os.PathLike[str] | None = None) -> list[ChapterProgress]:
    """Progress of ``chapters`` (default: every chapter with a notebook or a ``chNN`` folder)."""
    pack = Path(evidence_dir)
    if pack.exists() and not pack.is_dir():
        raise ValidationError(f"progress: {str(pack)!r} is a file, not an evidence folder.",
                              fix="Pass the folder the notebooks write into, e.g. evidence/.")
    if chapters is None:
        found = {int(p.name[2:]) for p in pack.glob("ch[0-9][0-9]") if p.is_dir()}
        source = Path(notebooks) if notebooks is not None else None
        if source is None:
            from .runner import default_notebooks_dir

            try:
                source = default_notebooks_dir()
            except Exception:  # noqa: BLE001 - no checkout: chapters from the folder only
                source = None
        for folder in (source, pack / "notebooks"):
            if folder is not None and folder.is_dir():
                found |= {int(m.group(1)) for p in folder.iterdir() if (m := CHAPTER_RE.match(p.name))}
        chapters = sorted(found)
    if not chapters:
        raise ValidationError(f"progress: no chapter found in {str(pack)!r}.",
                              fix="Run a chapter notebook first, or pass --notebooks DIR.")
    return [chapter_progress(pack, n, notebooks=notebooks) for n in chapters]


def progress_text(progress: list[ChapterProgress]) -> str:
    """Plain-text summary: one block per chapter."""
    lines = []
    for p in progress:
        state = ("complete" if p.complete else "ran, not complete" if p.built else "not run yet")
        quiz = f"; quiz {p.quiz['right']}/{p.quiz['total']}" if p.quiz else "; quiz not taken"
        lines.append(f"Chapter {p.chapter} ({p.notebook or 'no notebook'}): {state}; checks "
                     f"{p.checks_passed}/{p.checks_total} passed{quiz}")
        for ex in p.exercises:
            hint = f" — {ex.look_at}" if ex.state == "failing" and ex.look_at else ""
            lines.append(f"  Exercise {ex.id}: {ex.state}{hint}")
        lines.append(f"  next: {p.next_step}")
    return "\n".join(lines)


def _html(progress: list[ChapterProgress]) -> str:
    colors = {"done": "#2e7d32", "failing": "#c62828", "not done": "#757575", "not reached": "#757575"}
    rows = []
    for p in progress:
        exercises = " ".join(
            f"<span style='color:{colors[e.state]}' title='{html.escape(e.look_at, quote=True)}'>"
            f"{html.escape(e.id)} {html.escape(e.state)}</span>" for e in p.exercises)
        rows.append(f"<tr><td>Chapter {p.chapter}</td><td>{p.checks_passed}/{p.checks_total} checks</td>"
                    f"<td>{exercises or '-'}</td><td>{html.escape(p.next_step)}</td></tr>")
    return ("<table style='font-size:90%'><tr><th>chapter</th><th>checks</th><th>exercises</th>"
            "<th>next</th></tr>" + "".join(rows) + "</table>")


def progress_widget(progress: list[ChapterProgress]) -> Any:
    """An ipywidgets ``HTML`` table of ``progress`` that renders as plain text without a frontend."""
    import ipywidgets as widgets

    text, page = progress_text(progress), _html(progress)

    class ProgressTable(widgets.HTML):
        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle.update({"text/plain": text, "text/html": page})
            return bundle

    return ProgressTable(value=page)


# -- self-grade ---------------------------------------------------------------------------
def _level_words(levels: str, level: int) -> str:
    for part in re.split(r"\s*·\s*", levels):
        match = re.match(r"^(\d)\s+(.*)$", part.strip())
        if match and int(match.group(1)) == level:
            return match.group(2)
    return ""


def _sections(nb: Any) -> list[tuple[str, str]]:
    """(heading above the cell, cell source) for every code cell."""
    heading, out = "the start", []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = _HEADING_RE.findall(cell.source)
            heading = found[-1].strip() if found else heading
        elif cell.cell_type == "code":
            out.append((heading, cell.source))
    return out


def _section_for(criterion: Any, result: dict[str, Any], nb: Any | None,
                 progress: ChapterProgress | None) -> str:
    if result["id"].endswith(".quiz") or result["id"].endswith(".exam"):
        return "the Quiz section (answer every question, then rebuild)"
    if nb is None:
        return f"chapter {criterion.chapter}'s notebook"
    sections = _sections(nb)
    if result["id"].endswith((".run", ".checks")):
        failing = progress.failing if progress else []
        if failing:
            where = next((h for h, src in sections if failing[0]["id"] in src), "its cell")
            return f"section '{where}' (check {failing[0]['id']}: {failing[0]['look_at']})"
        if progress:
            ex = next((e for e in progress.exercises if e.state != "done"), None)
            if ex is not None:
                return f"Exercise {ex.id} ({ex.state}); then run the notebook to its last cell"
        return "the whole notebook: run it from the top to its last cell"
    for stem in (Path(p).stem for p in re.findall(r"`ch\d\d/([^`]+)`", criterion.evidence)):
        where = next((h for h, src in sections if re.search(rf"""["']{re.escape(stem)}""", src)), None)
        if where is not None:
            return f"section '{where}'"
    return f"chapter {criterion.chapter}'s notebook"


def self_grade(pack: str | os.PathLike[str], *, rubric: str | os.PathLike[str] | None = None,
               notebooks: str | os.PathLike[str] | None = None) -> tuple[Any, str]:
    """Grade a learner's own pack; return the report and a learner's text of what is short.

    The text names each criterion below full marks, the rubric's words for the level it
    reached and the notebook section that writes its evidence; it never repeats the grader's
    findings (they can hold expected values) nor any quiz answer.
    """
    import nbformat

    from .grading import grade_pack
    from .rubric import load_rubric

    report = grade_pack(pack, rubric=rubric, write=False)
    criteria = {c.id: c for c in load_rubric(rubric)}
    root = Path(pack)
    lines = [f"Your pack: {report.points:g} of {report.max_points} points ({report.percent} %) "
             f"on the chapters it holds."]
    if not report.integrity_ok:
        lines.append("Integrity: files changed after the build — rebuild the pack with "
                     "'mlops-kit evidence build' rather than editing it.")
    cache: dict[int, tuple[Any, ChapterProgress | None]] = {}
    short = [r for r in report.results if r["status"] == "graded" and r["level"] < 4]
    for result in short:
        crit = criteria[result["id"]]
        if crit.chapter is not None and crit.chapter not in cache:
            path = _notebook_for(crit.chapter, root, Path(notebooks) if notebooks else None)
            cache[crit.chapter] = (nbformat.read(str(path), as_version=4) if path else None,
                                   chapter_progress(root, crit.chapter, notebooks=notebooks))
        nb, prog = cache.get(crit.chapter, (None, None)) if crit.chapter is not None else (None, None)
        words = _level_words(crit.levels, result["level"])
        if result["level"] == 0 and re.search(r"is missing|not recorded|never reached", result["why"]):
            words = "its evidence was not written (the run stopped before that section)"
        where = _section_for(crit, result, nb, prog) if crit.chapter is not None else \
            "rebuild the whole pack"
        lines.append(f"- {result['id']} ({result['awarded']:g}/{result['points']} points): level "
                     f"{result['level']}/4{' — ' + words if words else ''}. Fix it in {where}.")
    if not short:
        lines.append("Every criterion of the chapters in this pack is at full marks.")
    skipped = sorted({r["chapter"] for r in report.results if r["status"] == "not-built"})
    if skipped:
        lines.append(f"Not in this pack: chapter(s) {', '.join(map(str, skipped))}.")
    return report, "\n".join(lines)
