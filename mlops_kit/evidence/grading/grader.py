"""``grade_pack``: verify a pack's integrity, run every rubric criterion, write the score report.

Points: a criterion earns ``points * level / 4``. Criteria of chapters the pack does not
contain (a build with ``--chapters``) are reported as ``not-built`` and left out of
``max_points`` (``rubric_max_points`` keeps the whole rubric's total). The report holds no
absolute paths, so a pack graded in another folder gives the same score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._io import atomic_write_json, atomic_write_text, sha256_file
from ...errors import DefinitionError, EvidenceError, MlopsKitError
from ..manifest import IntegrityProblem, read_manifest, verify_pack
from ..rubric import Criterion, default_rubric_path, load_rubric
from .base import Grade, GradingContext, MissingEvidence, registered_criteria

__all__ = ["GradeReport", "grade_pack", "check_parity"]


@dataclass(kw_only=True)
class GradeReport:
    """The outcome of grading one pack (``to_dict`` is what ``score.json`` holds)."""

    problems: list[IntegrityProblem]
    results: list[dict[str, Any]]
    rubric: dict[str, str]
    chapters: dict[str, Any] = field(default_factory=dict)

    @property
    def integrity_ok(self) -> bool:
        return not self.problems

    @property
    def points(self) -> float:
        return round(sum(r["awarded"] for r in self.results), 2)

    @property
    def max_points(self) -> int:
        return sum(r["points"] for r in self.results if r["status"] == "graded")

    @property
    def percent(self) -> float:
        return round(100.0 * self.points / self.max_points, 1) if self.max_points else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"integrity": {"ok": self.integrity_ok,
                              "problems": [p.to_dict() for p in self.problems]},
                "criteria": self.results, "points": self.points, "max_points": self.max_points,
                "rubric_max_points": sum(r["points"] for r in self.results),
                "percent": self.percent, "rubric": self.rubric, "chapters": self.chapters}

    def to_markdown(self) -> str:
        lines = ["# Evidence pack score", "",
                 f"**{self.points} / {self.max_points} points ({self.percent} %)**. "
                 f"Rubric: `{self.rubric['name']}` (sha256 {self.rubric['sha256'][:12]}...).", ""]
        if self.problems:
            lines += ["## Integrity: problems found", ""]
            lines += [f"- **{p.kind}** `{p.path}`: {p.detail}" for p in self.problems]
        else:
            lines += ["## Integrity: intact", "",
                      "Every file matches the manifest and the manifest matches its checksum."]
        lines += ["", "## Criteria", "", "| id | points | level | why |", "|---|---|---|---|"]
        for r in self.results:
            level = "not built" if r["status"] == "not-built" else f"{r['level']}/4"
            why = r["why"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r['id']} | {r['awarded']:g} / {r['points']} | {level} | {why} |")
        return "\n".join(lines) + "\n"


def check_parity(criteria: list[Criterion]) -> tuple[list[str], list[str]]:
    """Ids in the rubric without a grading function, and functions without a rubric row."""
    registered = set(registered_criteria())
    ids = {c.id for c in criteria}
    return sorted(ids - registered), sorted(registered - ids)


def _run(func: Any, ctx: GradingContext) -> Grade:
    try:
        grade = func(ctx)
    except MissingEvidence as exc:
        return Grade(0, str(exc))
    except (MlopsKitError, KeyError, TypeError, ValueError, AttributeError) as exc:
        return Grade(0, f"evidence could not be graded: {type(exc).__name__}: {exc}")
    if not isinstance(grade, Grade):
        raise DefinitionError(f"Criterion function {func!r} returned {grade!r}, not a Grade.",
                              fix="Return Grade(level, why).")
    return grade


def grade_pack(pack: str | os.PathLike[str], *, rubric: str | os.PathLike[str] | None = None,
               expect_manifest_sha256: str | None = None, write: bool = True) -> GradeReport:
    """Grade an evidence pack and (by default) write ``score.json`` and ``SCORE.md`` into it.

    Raises ``EvidenceError`` when ``pack`` is not a folder or the rubric names a criterion
    with no grading function; integrity problems are reported, not raised.
    """
    root = Path(pack)
    if not root.is_dir():
        raise EvidenceError(f"Evidence pack {str(root)!r} is not a folder.",
                            fix="Pass the folder written by 'mlops-kit evidence build'.")
    rubric_path = Path(rubric) if rubric is not None else default_rubric_path()
    criteria = load_rubric(rubric_path)
    unregistered, _ = check_parity(criteria)
    if unregistered:
        raise EvidenceError(f"Rubric criteria without a grading function: {unregistered}.",
                            fix="Register one with @criterion(id) in mlops_kit/evidence/grading/.")
    functions = registered_criteria()
    problems = verify_pack(root, expect_manifest_sha256=expect_manifest_sha256)
    try:
        manifest: dict[str, Any] | None = read_manifest(root)
    except EvidenceError:
        manifest = None
    ctx = GradingContext(root, manifest, problems)
    results = []
    for crit in criteria:
        built = crit.chapter is None or ctx.chapter_status(crit.chapter) is not None
        if not built:
            grade, status = Grade(0, f"chapter {crit.chapter} is not in this pack"), "not-built"
        else:
            grade, status = _run(functions[crit.id], ctx), "graded"
        awarded = round(crit.points * grade.level / 4, 2) if status == "graded" else 0
        results.append({"id": crit.id, "chapter": crit.chapter, "points": crit.points,
                        "level": grade.level, "awarded": awarded, "why": grade.why,
                        "status": status})
    report = GradeReport(problems=problems, results=results,
                         rubric={"name": rubric_path.name, "sha256": sha256_file(rubric_path)},
                         chapters={k: v.get("status") for k, v in ctx.chapters.items()
                                   if isinstance(v, dict)})
    if write:
        atomic_write_json(root / "score.json", report.to_dict())
        atomic_write_text(root / "SCORE.md", report.to_markdown())
    return report

