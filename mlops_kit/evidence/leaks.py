"""Answer leaks: an exercise's solution showing up elsewhere in its released notebook.

For every exercise the source notebook's solution blocks (the lines strictly between the
``# BEGIN SOLUTION`` / ``# END SOLUTION`` markers, see ``release``) are parsed and the parts
that *are* the answer are extracted. Each becomes a pattern searched in every other place of
the released notebook: code and Markdown sources (the stub cell itself included, so a hint
that gives the answer away is caught) and any outputs.

The literals themselves (numbers, strings, collections, pairs, keywords, whole lines) are
defined in ``leak_literals``.

When the match of one literal lies inside the match of a longer one in the same place, only
the longer one is reported.

Allow-list
----------
A leak that is intended (a column name the stub needs, a value the exercise text gives) is
allowed in the source notebook's metadata, each entry with a reason::

    metadata["mlops_kit"]["leak_allow"] = {
        "2.1": [{"literal": "user_id", "reason": "a column name the stub needs"}]}

``literal`` is the text a report prints for the leak. An entry without a reason, for an
unknown exercise, or that no longer matches any leak (stale) is a problem.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .leak_literals import AnswerLiteral, answer_literals, solution_sources

__all__ = ["AnswerLiteral", "Leak", "LeakReport", "answer_literals", "check_release_leaks",
           "find_leaks", "solution_sources"]


@dataclass(frozen=True, kw_only=True)
class Leak:
    """An answer literal of ``exercise`` found in released cell ``cell`` (``where``)."""

    notebook: str
    exercise: str
    kind: str
    literal: str
    cell: int
    where: str

    def __str__(self) -> str:
        return (f"{self.notebook} exercise {self.exercise}: {self.kind} {self.literal!r} "
                f"in cell {self.cell} ({self.where})")


@dataclass(kw_only=True)
class LeakReport:
    """Leaks of one notebook, those its allow-list accepted, and allow-list problems."""

    notebook: str
    leaks: list[Leak] = field(default_factory=list)
    allowed: list[Leak] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.leaks and not self.problems

    def lines(self) -> list[str]:
        return [str(leak) for leak in self.leaks] + [f"{self.notebook}: {p}" for p in self.problems]


# -- search ------------------------------------------------------------------------------
def _output_texts(cell: Any) -> list[str]:
    texts = []
    for output in cell.get("outputs", []) or []:
        if "text" in output:
            texts.append("".join(output["text"]) if isinstance(output["text"], list) else output["text"])
        for value in (output.get("data") or {}).values():
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, list):
                texts.append("".join(str(v) for v in value))
        if output.get("output_type") == "error":
            texts.append(str(output.get("evalue", "")))
            texts.extend(str(t) for t in output.get("traceback", []))
    return texts


# a Markdown heading's section number ("## 3. Point-in-time", "### 5.1 Exercise"): blanked
# (same length, so reported spans stay put) because it numbers the page, it answers nothing
_HEADING_NUMBER = re.compile(r"^(#{1,6}[ \t]+)((?:\d+\.)*\d+\.?)(?=\s)", re.M)


def _places(nb: Any) -> list[tuple[int, str, str]]:
    places = []
    for index, cell in enumerate(nb.cells):
        source = cell.source
        if cell.cell_type == "markdown":
            source = _HEADING_NUMBER.sub(lambda m: m.group(1) + " " * len(m.group(2)), source)
        places.append((index, cell.cell_type, source))
        places += [(index, "output", text) for text in _output_texts(cell)]
    return places


def _allow_list(nb: Any, exercises: set[str], problems: list[str]) -> dict[str, dict[str, str]]:
    meta = (nb.metadata.get("mlops_kit") or {})
    raw = meta.get("leak_allow", {}) if isinstance(meta, dict) else {}
    if not isinstance(raw, dict):
        problems.append("metadata mlops_kit.leak_allow must map exercise ids to lists of entries")
        return {}
    allow: dict[str, dict[str, str]] = {}
    for ex_id, entries in raw.items():
        if ex_id not in exercises:
            problems.append(f"leak_allow names exercise {ex_id!r}, which this notebook does not have")
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            literal = entry.get("literal") if isinstance(entry, dict) else None
            reason = entry.get("reason") if isinstance(entry, dict) else None
            if not isinstance(literal, str) or not literal:
                problems.append(f"leak_allow[{ex_id!r}] entry {entry!r} has no 'literal'")
            elif not isinstance(reason, str) or not reason.strip():
                problems.append(f"leak_allow[{ex_id!r}] entry {literal!r} has no reason")
            else:
                allow.setdefault(ex_id, {})[literal] = reason
    return allow


def find_leaks(source: Any, released: Any, *, name: str = "notebook") -> LeakReport:
    """Leaks of every exercise of ``source`` in ``released`` (its student version)."""
    if not hasattr(source, "cells") or not hasattr(released, "cells"):
        raise ValidationError("find_leaks: pass two nbformat notebooks (source and released).",
                              fix="Read them with nbformat.read(path, as_version=4).")
    report = LeakReport(notebook=name)
    solutions = solution_sources(source)
    allow = _allow_list(source, set(solutions), report.problems)
    places = _places(released)
    for ex_id, code in solutions.items():
        literals = answer_literals(code)
        used: set[str] = set()
        for index, where, text in places:
            hits = [(span, lit) for lit in literals for span in lit.search(text)]
            for span, lit in hits:
                covered = any(o is not lit and o_span[0] <= span[0] and span[1] <= o_span[1]
                              and (o_span[1] - o_span[0]) > (span[1] - span[0])
                              for o_span, o in hits)
                leak = Leak(notebook=name, exercise=ex_id, kind=lit.kind, literal=lit.text,
                            cell=index, where=where)
                if covered:
                    continue
                if lit.text in allow.get(ex_id, {}):
                    used.add(lit.text)
                    if leak not in report.allowed:
                        report.allowed.append(leak)
                elif leak not in report.leaks:
                    report.leaks.append(leak)
        for literal in sorted(set(allow.get(ex_id, {})) - used):
            report.problems.append(f"leak_allow[{ex_id!r}] entry {literal!r} is stale: it matches "
                                   "no leak any more (remove it)")
    return report


def check_release_leaks(notebooks: str | os.PathLike[str] | None = None,
                        names: list[str] | None = None) -> list[LeakReport]:
    """Release ``notebooks`` into a temporary folder and report each notebook's leaks.

    ``names`` limits the check to some notebook file names (default: every ``*.ipynb``).
    """
    import nbformat

    from .release import release
    from .runner import default_notebooks_dir

    folder = Path(notebooks) if notebooks is not None else default_notebooks_dir()
    with tempfile.TemporaryDirectory(prefix="mlops-kit-release-") as tmp:
        release(tmp, notebooks=folder)
        reports = []
        for path in sorted(folder.glob("*.ipynb")):
            if names is not None and path.name not in names:
                continue
            source = nbformat.read(str(path), as_version=4)
            released = nbformat.read(str(Path(tmp) / path.name), as_version=4)
            reports.append(find_leaks(source, released, name=path.name))
    if names is not None and {r.notebook for r in reports} != set(names):
        missing = sorted(set(names) - {r.notebook for r in reports})
        raise ValidationError(f"check_release_leaks: no notebook named {missing} in {str(folder)!r}.",
                              fix="Pass notebook file names such as '02_feature_store.ipynb'.")
    return reports

