"""The order chapters start in a parallel build: longest first.

With more chapters than kernels, a pool that takes chapters in number order can leave the
longest one (chapter 6) for last and one core idle meanwhile. Starting the longest first
(the LPT rule) bounds the build by about the longest chapter or the mean load per kernel,
whichever is larger. "Longest" is, in this order, what the previous build in the same pack
measured (``manifest.json``'s ``duration_s``), what the notebooks folder's ``durations.json``
records (``{"6": 26.7, ...}``: a reference build's serial seconds, committed beside the course
notebooks like a test-durations file and refreshed with ``benchmarks/evidence_pack.py
--write-durations``), else the notebook's count of code cells (a poor proxy: chapter 6 has the
fewest code cells and runs longest). The order changes only when chapters start, never what
they write: each chapter writes only its own folder, so the pack is the same in any order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DURATIONS_FILE", "longest_first"]

DURATIONS_FILE = "durations.json"


def _previous_durations(pack: Path) -> dict[int, float]:
    try:
        chapters = json.loads((pack / "manifest.json").read_text(encoding="utf-8")).get("chapters", {})
        return {int(n): float(s["duration_s"]) for n, s in chapters.items()
                if isinstance(s, Mapping) and isinstance(s.get("duration_s"), (int, float))}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _recorded_durations(folder: Path) -> dict[int, float]:
    """The notebooks folder's ``durations.json`` (chapter -> seconds); {} when absent or malformed."""
    try:
        recorded = json.loads((folder / DURATIONS_FILE).read_text(encoding="utf-8"))
        return {int(n): float(s) for n, s in recorded.items()
                if isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _code_cells(notebook: Path) -> int:
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return 0
    return sum(1 for c in cells if isinstance(c, Mapping) and c.get("cell_type") == "code")


def longest_first(selected: Mapping[int, Path], pack: Path) -> list[int]:
    """Chapter numbers of ``selected`` in the order a parallel build should start them.

    Ties keep chapter order. A source of durations is used only when it covers every selected
    chapter (a mix of seconds and cell counts would compare nothing).
    """
    folders = {path.parent for path in selected.values()}
    sources = [_previous_durations(pack), *(_recorded_durations(f) for f in folders if len(folders) == 1)]
    for durations in sources:
        if all(n in durations for n in selected):
            weight = {n: durations[n] for n in selected}
            break
    else:
        weight = {n: float(_code_cells(path)) for n, path in selected.items()}
    return sorted(selected, key=lambda n: (-weight[n], n))
