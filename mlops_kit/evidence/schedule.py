"""The order chapters start in a parallel build: longest first.

With more chapters than kernels, a pool that takes chapters in number order can leave the
longest one (chapter 6) for last and one core idle meanwhile. Starting the longest first
(the LPT rule) bounds the build by about the longest chapter or the mean load per kernel,
whichever is larger. "Longest" is what the previous build in the same pack measured
(``manifest.json``'s ``duration_s``), else the notebook's count of code cells. The order
changes only when chapters start, never what they write: each chapter writes only its own
folder, so the pack is the same in any order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["longest_first"]


def _previous_durations(pack: Path) -> dict[int, float]:
    try:
        chapters = json.loads((pack / "manifest.json").read_text(encoding="utf-8")).get("chapters", {})
        return {int(n): float(s["duration_s"]) for n, s in chapters.items()
                if isinstance(s, Mapping) and isinstance(s.get("duration_s"), (int, float))}
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

    Ties keep chapter order. The previous build's durations are used only when they cover
    every selected chapter (a mix of seconds and cell counts would compare nothing).
    """
    previous = _previous_durations(pack)
    if all(n in previous for n in selected):
        weight = {n: previous[n] for n in selected}
    else:
        weight = {n: float(_code_cells(path)) for n, path in selected.items()}
    return sorted(selected, key=lambda n: (-weight[n], n))
