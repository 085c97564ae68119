"""Notebook hygiene: keep committed source notebooks clean and runnable everywhere.

Rules: kernelspec ``python3``; no outputs or execution counts; no ``papermill`` or
``widgets`` metadata; no ``injected-parameters`` cells; exactly one cell tagged
``parameters``; solution markers balanced, each solution cell tagged ``exercise-N.M``.
``fix`` repairs everything but the last two (those need a person).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import nbformat

from .._io import atomic_write_text
from ..errors import ValidationError
from .release import exercise_id, find_solution_blocks, strip_notebook

__all__ = ["NotebookProblem", "check_notebook", "check_notebooks", "fix_notebook",
           "notebook_paths"]

_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


@dataclass(frozen=True, kw_only=True)
class NotebookProblem:
    """One hygiene problem: where, what, and whether ``--fix`` repairs it."""

    path: str
    problem: str
    fixable: bool

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}{'' if self.fixable else ' (fix by hand)'}"


def check_notebook(nb: nbformat.NotebookNode, *, path: str = "notebook") -> list[NotebookProblem]:
    """Every hygiene problem of one notebook."""
    found: list[NotebookProblem] = []

    def add(problem: str, fixable: bool = True) -> None:
        found.append(NotebookProblem(path=path, problem=problem, fixable=fixable))

    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        add(f"kernelspec is {nb.metadata.get('kernelspec', {}).get('name')!r}, not 'python3'")
    for key in ("papermill", "widgets"):
        if key in nb.metadata:
            add(f"notebook metadata holds {key!r}")
    parameters = 0
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            add(f"cell {index} is an injected-parameters cell")
        elif "parameters" in tags:
            parameters += 1
        for key in ("papermill", "execution"):
            if key in cell.get("metadata", {}):
                add(f"cell {index} metadata holds {key!r}")
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            add(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            add(f"cell {index} has an execution count")
        blocks, problems = find_solution_blocks(cell.source)
        for problem in problems:
            add(f"cell {index}: solution markers unbalanced ({problem})", fixable=False)
        if blocks and exercise_id(cell) is None:
            add(f"cell {index} holds a solution but no single 'exercise-N.M' tag", fixable=False)
    if parameters != 1:
        add(f"{parameters} cells are tagged 'parameters' (exactly one is required)", fixable=False)
    return found


def fix_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with every fixable problem repaired."""
    fixed = strip_notebook(copy.deepcopy(nb))
    fixed.metadata["kernelspec"] = dict(_KERNELSPEC)
    return fixed


def notebook_paths(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into ``.ipynb`` files (checkpoint folders skipped)."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.is_file() and path.suffix == ".ipynb":
            found.append(path)
        else:
            raise ValidationError(f"check-notebooks: {str(path)!r} is not a notebook or folder.",
                                  fix="Pass .ipynb files or folders holding them.")
    return found


def check_notebooks(paths: list[str | os.PathLike[str]], *, fix: bool = False
                    ) -> tuple[list[Path], list[NotebookProblem]]:
    """Check (and with ``fix=True`` repair in place) notebooks; return files and what remains."""
    import nbformat

    files = notebook_paths(paths)
    remaining: list[NotebookProblem] = []
    for path in files:
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as exc:  # nbformat raises several unrelated types for bad files
            remaining.append(NotebookProblem(path=str(path), problem=f"not a readable notebook "
                                             f"({type(exc).__name__})", fixable=False))
            continue
        problems = check_notebook(nb, path=str(path))
        if fix and any(p.fixable for p in problems):
            nb = fix_notebook(nb)
            atomic_write_text(path, nbformat.writes(nb) + "\n")
            problems = check_notebook(nb, path=str(path))
        remaining += problems
    return files, remaining
