"""check-notebooks: every rule detected, --fix repairs what it can, exit status."""

from __future__ import annotations

import nbformat

from mlops_kit.cli import main
from mlops_kit.evidence import check_notebook, check_notebooks

from .conftest import FIXTURES


def _dirty():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "mlops-venv", "display_name": "x", "language": "python"}
    nb.metadata["papermill"] = {"parameters": {}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    params = nbformat.v4.new_code_cell("seed = 0")
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell("seed = 1")
    injected.metadata["tags"] = ["injected-parameters"]
    ran = nbformat.v4.new_code_cell("print(1)", execution_count=3,
                                    outputs=[nbformat.v4.new_output("stream", text="1\n")])
    ran.metadata["papermill"] = {"duration": 0.1}
    nb.cells = [params, injected, ran]
    return nb


def test_each_rule_is_detected():
    problems = [p.problem for p in check_notebook(_dirty(), path="x.ipynb")]
    expected = ["kernelspec is 'mlops-venv'", "metadata holds 'papermill'", "holds 'widgets'",
                "injected-parameters cell", "cell 2 metadata holds 'papermill'",
                "cell 2 has outputs", "cell 2 has an execution count"]
    for fragment in expected:
        assert any(fragment in p for p in problems), fragment
    assert len(problems) == len(expected)


def test_fix_repairs_everything_fixable(tmp_path, capsys):
    path = tmp_path / "01_x.ipynb"
    nbformat.write(_dirty(), str(path))
    assert main(["check-notebooks", str(tmp_path)]) == 1
    assert "7 problem(s)" in capsys.readouterr().out
    assert main(["check-notebooks", "--fix", str(path)]) == 0
    nb = nbformat.read(str(path), as_version=4)
    assert check_notebook(nb) == []
    assert nb.metadata["kernelspec"]["name"] == "python3" and len(nb.cells) == 2
    assert nb.cells[1].source == "print(1)" and nb.cells[1].outputs == []


def test_parameters_count_and_markers_need_a_person(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("# BEGIN SOLUTION\nx = 1"),
                nbformat.v4.new_code_cell("# END SOLUTION")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    _, problems = check_notebooks([path], fix=True)
    texts = [str(p) for p in problems]
    assert any("0 cells are tagged 'parameters'" in t for t in texts)
    assert any("never closed" in t for t in texts) and any("without BEGIN" in t for t in texts)
    assert all(not p.fixable for p in problems) and all("(fix by hand)" in t for t in texts)


def test_fixture_notebooks_are_clean():
    files, problems = check_notebooks([FIXTURES / "notebooks"])
    assert len(files) == 2 and problems == []
