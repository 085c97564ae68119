"""Student release: replace reference solutions with stubs, strip outputs, keep everything else.

Marking a solution in a source notebook
---------------------------------------
A code cell holding a solution carries the tag ``exercise-N.M`` (e.g. ``exercise-2.1``) and
marks each solution block with two comment lines::

    # BEGIN SOLUTION hint: a TTL must cover the longest gap between events you accept
    ttl = timedelta(days=7)
    # END SOLUTION

The release replaces every block with a stub at the marker's indentation::

    from mlops_kit.errors import ExerciseNotDoneError  # replace these two lines with your code
    raise ExerciseNotDoneError("Exercise 2.1: not done yet — a TTL must cover ...")

so running the stub (or the check cell after it) fails at once with the exercise id and the
hint. ``hint:`` is optional. Markers must be balanced and not nested.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import nbformat

from .._io import atomic_write_text
from ..errors import ValidationError

__all__ = ["Exercise", "SolutionBlock", "exercise_id", "find_solution_blocks", "release",
           "release_notebook", "strip_notebook"]

BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\b(?:\s+hint:\s*(?P<hint>.*?))?\s*$")
END_RE = re.compile(r"^[ \t]*#\s*END SOLUTION\s*$")
TAG_RE = re.compile(r"^exercise-(\d+\.\d+)$")
DEFAULT_HINT = "complete the code the text above asks for"


@dataclass(frozen=True, kw_only=True)
class SolutionBlock:
    """Line span of one solution block in a cell (``begin``/``end`` are marker line indexes)."""

    begin: int
    end: int
    indent: str
    hint: str


@dataclass(frozen=True, kw_only=True)
class Exercise:
    """One exercise found in a notebook: id, cell index, number of solution blocks."""

    notebook: str
    id: str
    cell: int
    blocks: int


def find_solution_blocks(source: str) -> tuple[list[SolutionBlock], list[str]]:
    """Parse a cell's markers; returns the blocks and a list of marker problems."""
    blocks, problems = [], []
    open_at: tuple[int, str, str] | None = None
    for index, line in enumerate(source.split("\n")):
        begin, end = BEGIN_RE.match(line), END_RE.match(line)
        if begin:
            if open_at is not None:
                problems.append(f"line {index + 1}: BEGIN SOLUTION inside another solution block")
            open_at = (index, begin.group("indent"), (begin.group("hint") or "").strip())
        elif end:
            if open_at is None:
                problems.append(f"line {index + 1}: END SOLUTION without BEGIN SOLUTION")
            else:
                blocks.append(SolutionBlock(begin=open_at[0], end=index, indent=open_at[1],
                                            hint=open_at[2] or DEFAULT_HINT))
                open_at = None
    if open_at is not None:
        problems.append(f"line {open_at[0] + 1}: BEGIN SOLUTION is never closed")
    return blocks, problems


def exercise_id(cell: nbformat.NotebookNode) -> str | None:
    """The ``N.M`` of the cell's ``exercise-N.M`` tag, or None."""
    ids = [m.group(1) for t in cell.get("metadata", {}).get("tags", []) if (m := TAG_RE.match(t))]
    return ids[0] if len(ids) == 1 else None


def _stub(block: SolutionBlock, ex_id: str) -> list[str]:
    message = f"Exercise {ex_id}: not done yet — {block.hint}".replace("\\", "\\\\").replace('"', '\\"')
    return [f"{block.indent}from mlops_kit.errors import ExerciseNotDoneError  "
            "# replace these two lines with your code",
            f'{block.indent}raise ExerciseNotDoneError("{message}")']


def strip_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Clear outputs and execution counts; drop papermill/widget metadata and injected cells."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.cells = [c for c in nb.cells
                if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def release_notebook(nb: nbformat.NotebookNode, *, name: str = "notebook"
                     ) -> tuple[nbformat.NotebookNode, list[Exercise]]:
    """Return the student version of ``nb`` and the exercises it holds.

    Raises ``ValidationError`` (before changing anything) on unbalanced markers or a
    solution cell without exactly one ``exercise-N.M`` tag.
    """
    out = strip_notebook(copy.deepcopy(nb))
    plans = []
    for index, cell in enumerate(out.cells):
        if cell.cell_type != "code":
            continue
        blocks, problems = find_solution_blocks(cell.source)
        if problems:
            raise ValidationError(f"{name} cell {index}: {problems[0]}.",
                                  fix="Balance the # BEGIN SOLUTION / # END SOLUTION lines.")
        if blocks:
            ex_id = exercise_id(cell)
            if ex_id is None:
                raise ValidationError(f"{name} cell {index}: a solution cell needs exactly one "
                                      "'exercise-N.M' tag.", fix="Tag it, e.g. exercise-2.1.")
            plans.append((index, ex_id, blocks))
    exercises = []
    for index, ex_id, blocks in plans:
        lines = out.cells[index].source.split("\n")
        for block in reversed(blocks):
            lines[block.begin:block.end + 1] = _stub(block, ex_id)
        out.cells[index].source = "\n".join(lines)
        exercises.append(Exercise(notebook=name, id=ex_id, cell=index, blocks=len(blocks)))
    return out, exercises


def release(out: str | os.PathLike[str], *, notebooks: str | os.PathLike[str] | None = None
            ) -> list[Exercise]:
    """Write the student release of every notebook in ``notebooks`` into ``out``.

    Other files and sub-folders (data, images) are copied as they are; notebooks in
    sub-folders are left out (they could hold solutions). Every notebook is checked before
    anything is written; ``out`` may not be (inside) the source folder.
    """
    import nbformat

    from .runner import default_notebooks_dir

    source = Path(notebooks).resolve() if notebooks is not None else default_notebooks_dir()
    target = Path(out).resolve()
    if not source.is_dir():
        raise ValidationError(f"Notebooks folder {str(source)!r} does not exist.",
                              fix="Pass --notebooks DIR.")
    if target == source or source in target.parents:
        raise ValidationError(f"--out {str(target)!r} is inside the source notebooks folder.",
                              fix="Release into a separate folder, e.g. release/.")
    files = sorted(p for p in source.iterdir() if p.is_file())
    released, exercises = {}, []
    for path in files:
        if path.suffix == ".ipynb":
            nb = nbformat.read(str(path), as_version=4)
            released[path.name], found = release_notebook(nb, name=path.name)
            exercises += found
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        if path.name in released:
            atomic_write_text(target / path.name, nbformat.writes(released[path.name]) + "\n")
        else:
            shutil.copy2(path, target / path.name)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        if folder.name not in (".ipynb_checkpoints", "__pycache__"):
            shutil.copytree(folder, target / folder.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.ipynb"))
    return exercises
