"""The papermill build on two tiny fixture notebooks (one passes, one fails at a check).

One build (two kernel starts) is shared by the tests of this module; parameter refusals
happen before any kernel starts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from mlops_kit.cli import main
from mlops_kit.errors import EvidenceError, NotebookParameterError, ValidationError
from mlops_kit.evidence import build_evidence, check_parameters, external_references, verify_pack

from .conftest import FIXTURES

NOTEBOOKS = FIXTURES / "notebooks"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "pack"
    status = main(["evidence", "build", "--out", str(out), "--notebooks", str(NOTEBOOKS),
                   "--seed", "4", "--timeout", "60"])
    return out, status


def test_build_continues_past_a_failure_and_exits_non_zero(built):
    out, status = built
    assert status == 1
    chapters = json.loads((out / "manifest.json").read_text())["chapters"]
    assert chapters["1"]["status"] == "ok" and chapters["1"]["error"] is None
    assert chapters["2"]["status"] == "failed" and "2.2-broken" in chapters["2"]["error"]
    assert all(c["duration_s"] > 0 for c in chapters.values())


def test_manifest_covers_every_file_and_verifies(built):
    out, _ = built
    manifest = json.loads((out / "manifest.json").read_text())
    files = set(manifest["files"])
    assert {"notebooks/01_pass.ipynb", "notebooks/02_fail.ipynb", "html/01_pass.html",
            "html/02_fail.html", "ch01/line.png", "ch01/complete.json",
            "ch02/checks.json"} <= files
    assert not any(f.startswith("work/") for f in files)
    assert manifest["parameters"]["seed"] == 4 and manifest["environment"]["python"]
    assert manifest["audit_head"] is None and manifest["audit_exports"] == {}
    assert verify_pack(out) == []


def test_parameters_reach_the_notebook_and_partial_evidence_survives(built):
    out, _ = built
    assert json.loads((out / "ch01" / "run.json").read_text())["seed"] == 4
    assert json.loads((out / "ch01" / "summary.json").read_text())["seed"] == 4
    checks = json.loads((out / "ch02" / "checks.json").read_text())["checks"]
    assert [(c["id"], c["passed"]) for c in checks] == [("2.1-ok", True), ("2.2-broken", False)]
    assert not (out / "ch02" / "complete.json").exists()
    assert (out / "work" / "ch01" / "main").is_dir()  # the chapter's scratch workspace


def test_offline_html_has_no_external_references_and_inline_figures(built):
    out, _ = built
    for page in ("01_pass.html", "02_fail.html"):
        html = (out / "html" / page).read_text(encoding="utf-8")
        assert external_references(html) == []
        assert "cdn" not in html.lower().replace("cdnjs.cloudflare", "")
    page = (out / "html" / "01_pass.html").read_text()
    assert "data:image/png;base64" in page
    # the quiz form renders as a readable listing, without the explanations
    assert "Which timestamp says when an event happened?" in page and "VBox(children" not in page
    assert "event time; ingested_at is processing time" not in page
    executed = nbformat.read(str(out / "notebooks" / "01_pass.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_build_grades_the_pack(built):
    out, _ = built
    rows = {r["id"]: r for r in json.loads((out / "score.json").read_text())["criteria"]}
    assert rows["P.integrity"]["level"] == 4
    assert rows["C1.run"]["level"] == 4 and rows["C1.checks"]["level"] == 4
    assert rows["C2.run"]["level"] == 2 and rows["C2.checks"]["level"] == 2
    assert rows["C3.run"]["status"] == "not-built"


def _copy_notebook(tmp_path, edit):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.read(str(NOTEBOOKS / "01_pass.ipynb"), as_version=4)
    edit(nb)
    nbformat.write(nb, str(folder / "01_pass.ipynb"))
    return folder


def test_unknown_parameter_is_refused_before_running(tmp_path):
    def drop_scale(nb):
        nb.cells[1].source = 'seed = 0\nevidence_dir = "../evidence"\nquiz_answers = None'

    folder = _copy_notebook(tmp_path, drop_scale)
    with pytest.raises(NotebookParameterError, match=r"unknown parameter\(s\) \['scale'\]"):
        build_evidence(tmp_path / "out", notebooks=folder, scale=2)
    assert not (tmp_path / "out").exists()
    with pytest.raises(NotebookParameterError, match="sede"):
        check_parameters(NOTEBOOKS / "01_pass.ipynb", {"sede": 1})


def test_missing_parameters_cell_is_refused(tmp_path, capsys):
    def untag(nb):
        nb.cells[1].metadata["tags"] = []

    folder = _copy_notebook(tmp_path, untag)
    assert main(["evidence", "build", "--out", str(tmp_path / "out"), "--notebooks", str(folder)]) == 2
    assert "expected exactly one cell tagged 'parameters'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_build_inputs(tmp_path):
    with pytest.raises(EvidenceError, match="No notebook for chapter"):
        build_evidence(tmp_path / "out", notebooks=NOTEBOOKS, chapters=[5])
    with pytest.raises(EvidenceError, match="No chapter notebooks"):
        build_evidence(tmp_path / "out", notebooks=tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.docx").write_text("mine")
    with pytest.raises(ValidationError, match="not evidence"):
        build_evidence(tmp_path / "out", notebooks=NOTEBOOKS, chapters=[2])


def test_timeouts_and_dead_kernels_fail_the_chapter_not_the_build(tmp_path, monkeypatch):
    import os

    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    seen = []

    def fake_execute(input_path, output_path, **kwargs):
        seen.append({k: os.environ.get(k) for k in ("IPYTHONDIR", "MPLCONFIGDIR", "MPLBACKEND")})
        seen[-1]["cwd"] = os.getcwd()  # the kernel starts here (papermill's own cwd= is not used)
        assert "cwd" not in kwargs
        if input_path.endswith("01_pass.ipynb"):
            raise CellTimeoutError("Cell execution timed out")
        raise DeadKernelError("Kernel died")

    monkeypatch.delenv("MPLBACKEND", raising=False)
    before = os.environ.get("IPYTHONDIR")
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    started_in = os.getcwd()
    result = build_evidence(tmp_path / "out", notebooks=NOTEBOOKS, grade=False,
                            progress=lambda line: None, jobs=1)  # in-process: the fake is seen
    assert result.failed == [1, 2] and os.getcwd() == started_in
    assert "CellTimeoutError" in result.chapters["1"]["error"]
    assert "DeadKernelError" in result.chapters["2"]["error"]
    work = (tmp_path / "out" / "work" / "_build").resolve()
    assert seen[0]["IPYTHONDIR"] == str(work / "ipython") and seen[0]["MPLBACKEND"] is None
    assert seen[0]["MPLCONFIGDIR"] == str(work / "mpl") and seen[0]["cwd"] == str(NOTEBOOKS)
    assert os.environ.get("IPYTHONDIR") == before  # restored after the build
    assert verify_pack(tmp_path / "out") == []


def test_quiz_answers_key_reaches_each_chapter_filtered_to_its_banks(tmp_path, monkeypatch):
    import papermill

    from mlops_kit.evidence import load_bank

    folder = tmp_path / "nbs"
    folder.mkdir()
    for name in ("01_intro.ipynb", "06_capstone.ipynb"):
        shutil.copy(NOTEBOOKS / "01_pass.ipynb", folder / name)
    passed = {}

    def fake_execute(input_path, output_path, *, parameters, **kwargs):
        passed[Path(input_path).name] = parameters

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    build_evidence(tmp_path / "out", notebooks=folder, quiz_answers="key", seed=1, scale=0.5,
                   grade=False, progress=lambda line: None, jobs=1)
    expected6 = {q.id: q.answer for name in ("ch06", "mock_exam") for q in load_bank(name).questions}
    assert passed["06_capstone.ipynb"]["quiz_answers"] == expected6
    assert set(passed["01_intro.ipynb"]["quiz_answers"]) == set(load_bank("ch01").ids)
    assert passed["01_intro.ipynb"]["seed"] == 1 and passed["01_intro.ipynb"]["scale"] == 0.5
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["parameters"]["quiz_answers_source"] == "key"
    assert manifest["chapters"]["1"]["status"] == "incomplete"  # the fake never completed it
