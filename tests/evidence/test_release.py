"""Student release: stubs replace solutions, every exercise check fails on stubs, passes on solutions."""

from __future__ import annotations

import nbformat
import pytest

from mlops_kit.cli import main
from mlops_kit.errors import CheckFailedError, ExerciseNotDoneError, ValidationError
from mlops_kit.evidence import release, release_notebook

from .conftest import FIXTURES

NOTEBOOKS = FIXTURES / "notebooks"


def _run(nb, evidence_dir, monkeypatch):
    """Execute a notebook's code cells in one namespace (no kernel), like a top-to-bottom run."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(NOTEBOOKS)
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, "<cell>", "exec"), namespace)
        if "parameters" in cell.metadata.get("tags", []):
            namespace["evidence_dir"] = str(evidence_dir)
    return namespace


def test_release_replaces_solutions_and_strips_outputs(tmp_path):
    out = tmp_path / "release"
    exercises = release(out, notebooks=NOTEBOOKS)
    assert [(e.notebook, e.id) for e in exercises] == [("01_pass.ipynb", "1.1"),
                                                       ("01_pass.ipynb", "1.2")]
    nb = nbformat.read(str(out / "01_pass.ipynb"), as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "BEGIN SOLUTION" not in text and "return 7" not in text and "ratio = 0.25" not in text
    assert 'raise ExerciseNotDoneError("Exercise 1.1: not done yet — a week has seven days")' in text
    assert "    raise ExerciseNotDoneError" in text  # indentation of the marker kept
    assert all(c.get("outputs", []) == [] for c in nb.cells)
    source = nbformat.read(str(NOTEBOOKS / "01_pass.ipynb"), as_version=4)
    assert [c.source for c in nb.cells if "exercise" not in str(c.metadata)] == \
        [c.source for c in source.cells if "exercise" not in str(c.metadata)]
    assert (out / "02_fail.ipynb").exists()


def test_every_exercise_check_fails_on_its_stub_and_passes_on_the_solution(tmp_path, monkeypatch):
    source = nbformat.read(str(NOTEBOOKS / "01_pass.ipynb"), as_version=4)
    _run(source, tmp_path / "solutions", monkeypatch)  # reference solutions: all checks pass
    released, exercises = release_notebook(source, name="01_pass.ipynb")
    assert len(exercises) == 2
    for exercise in exercises:
        one_stub = nbformat.from_dict(source)
        one_stub.cells = list(source.cells)
        one_stub.cells[exercise.cell] = released.cells[exercise.cell]
        with pytest.raises((ExerciseNotDoneError, CheckFailedError)) as info:
            _run(one_stub, tmp_path / f"stub{exercise.id}", monkeypatch)
        assert f"Exercise {exercise.id}: not done yet" in str(info.value)


def test_unbalanced_or_untagged_solutions_are_refused_before_writing(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("# BEGIN SOLUTION\nx = 1")])
    nb.cells[0].metadata["tags"] = ["exercise-1.1"]
    with pytest.raises(ValidationError, match="never closed"):
        release_notebook(nb)
    nb.cells[0].source = "# BEGIN SOLUTION\nx = 1\n# END SOLUTION"
    nb.cells[0].metadata["tags"] = []
    with pytest.raises(ValidationError, match="exercise-N.M"):
        release_notebook(nb)
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(nb, str(src / "01_x.ipynb"))
    assert main(["release", "--out", str(tmp_path / "rel"), "--notebooks", str(src)]) == 2
    assert not (tmp_path / "rel").exists()
    assert main(["release", "--out", str(src / "inside"), "--notebooks", str(src)]) == 2
