"""Parse ``rubric.md``: the single source of truth for criteria, points and levels.

The rubric is Markdown. Each ``## Pack`` or ``## Chapter N ...`` section holds one table
with the columns ``id | points | levels | evidence | verifies``. Ids are ``P.<name>`` in
the pack section and ``C<N>.<name>`` in chapter N's section (``C3.1``, ``C3.run``). Every id
maps to a grading function registered with ``@criterion(id)``
(``mlops_kit.evidence.grading``). A criterion is graded at level 0 (missing), 2 (partial)
or 4 (complete) and earns ``points * level / 4``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DefinitionError, NotFoundError

__all__ = ["Criterion", "default_rubric_path", "load_rubric", "parse_rubric", "LEVELS"]

LEVELS = (0, 2, 4)
_COLUMNS = ["id", "points", "levels", "evidence", "verifies"]
_SECTION_RE = re.compile(r"^##\s+(?:(Pack)\b|Chapter\s+(\d+)\b)(.*)$")
_ID_RE = re.compile(r"^(P|C(\d+))\.[A-Za-z0-9_-]+$")
_SPLIT_RE = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True, kw_only=True)
class Criterion:
    """One rubric row. ``chapter`` is None for pack-level criteria."""

    id: str
    chapter: int | None
    section: str
    points: int
    levels: str
    evidence: str
    verifies: str


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in _SPLIT_RE.split(inner)]


def parse_rubric(text: str, *, source: str = "rubric.md") -> list[Criterion]:
    """Parse rubric Markdown into criteria, refusing malformed rows with the line number."""

    def bad(number: int, what: str) -> DefinitionError:
        return DefinitionError(f"{source} line {number}: {what}.",
                               fix="Follow the table format described at the top of rubric.md.")

    section: str | None = None
    chapter: int | None = None
    header_seen = False
    criteria: list[Criterion] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            match = _SECTION_RE.match(line)
            if line.startswith("## "):
                section = line[3:].strip() if match else None
                chapter = int(match.group(2)) if match and match.group(2) else None
                header_seen = False
            continue
        if section is None or not line.strip().startswith("|"):
            continue
        cells = _cells(line)
        if not header_seen:
            if [c.lower() for c in cells] != _COLUMNS:
                raise bad(number, f"table header must be {' | '.join(_COLUMNS)}, got {cells}")
            header_seen = True
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue
        if len(cells) != len(_COLUMNS):
            raise bad(number, f"expected {len(_COLUMNS)} cells, got {len(cells)}")
        cid = cells[0].strip("`")
        match = _ID_RE.match(cid)
        if not match:
            raise bad(number, f"criterion id {cid!r} must look like P.name or C<N>.name")
        id_chapter = int(match.group(2)) if match.group(2) else None
        if id_chapter != chapter:
            raise bad(number, f"criterion {cid!r} is in section {section!r}")
        if cid in seen:
            raise bad(number, f"duplicate criterion id {cid!r}")
        if not cells[1].isdigit() or int(cells[1]) <= 0:
            raise bad(number, f"points of {cid!r} must be a positive integer, got {cells[1]!r}")
        if not all(cells[2:]):
            raise bad(number, f"{cid!r}: levels, evidence and verifies must not be empty")
        seen.add(cid)
        criteria.append(Criterion(id=cid, chapter=id_chapter, section=section,
                                  points=int(cells[1]), levels=cells[2], evidence=cells[3],
                                  verifies=cells[4]))
    if not criteria:
        raise DefinitionError(f"{source}: no criteria found.",
                              fix="Add '## Pack' / '## Chapter N' sections with criteria tables.")
    return criteria


def default_rubric_path() -> Path:
    """The checkout's top-level ``rubric.md`` (beside the ``mlops_kit`` folder)."""
    path = Path(__file__).resolve().parents[2] / "rubric.md"
    if not path.is_file():
        raise NotFoundError(f"No rubric.md next to the kit's source ({str(path)!r}).",
                            fix="Pass --rubric PATH (the course's rubric.md).")
    return path


def load_rubric(path: str | os.PathLike[str] | None = None) -> list[Criterion]:
    """Read and parse a rubric file (default: the checkout's ``rubric.md``)."""
    file = Path(path) if path is not None else default_rubric_path()
    if not file.is_file():
        raise NotFoundError(f"Rubric {str(file)!r} does not exist.",
                            fix="Pass --rubric PATH to an existing rubric.md.")
    return parse_rubric(file.read_text(encoding="utf-8"), source=file.name)
