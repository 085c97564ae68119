"""Engines for a build go to the chapters that declare them, are validated first, and are recorded."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mlops_kit.cli import main
from mlops_kit.errors import NotebookParameterError, StoreConfigError, ValidationError
from mlops_kit.evidence import build_evidence
from mlops_kit.evidence.engines import engine_plans
from mlops_kit.evidence.runner import default_notebooks_dir, find_chapters


def _chapter(folder, number: int, params: str, body: str = "print('ok')") -> None:
    cell = new_code_cell(f"seed = 7\nscale = 1\nevidence_dir = '.'\nquiz_answers = None\n{params}")
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(folder / f"{number:02d}_t{number}.ipynb"))


@pytest.fixture()
def folder(tmp_path):
    _chapter(tmp_path, 1, "")
    _chapter(tmp_path, 2, "online_store = 'sqlite'\noffline_engine = 'duckdb'")
    _chapter(tmp_path, 6, "online_store = 'sqlite'")
    return tmp_path


def test_each_engine_goes_only_to_the_chapters_that_declare_it(folder):
    selected = find_chapters(folder, None)
    plans = engine_plans(selected, {"online_store": "redis://127.0.0.1:6390/2", "offline_engine": "spark"})
    assert plans == {1: {}, 2: {"online_store": "redis://127.0.0.1:6390/2", "offline_engine": "spark"},
                     6: {"online_store": "redis://127.0.0.1:6390/2"}}
    assert engine_plans(selected, None) == {1: {}, 2: {}, 6: {}}
    assert engine_plans(selected, {"online_store": None}) == {1: {}, 2: {}, 6: {}}


def test_an_engine_no_selected_chapter_takes_is_refused(folder):
    with pytest.raises(NotebookParameterError, match="No selected chapter takes 'offline_engine'"):
        engine_plans(find_chapters(folder, [1, 6]), {"offline_engine": "spark"})


@pytest.mark.parametrize("engines, error, text", [
    ({"online_store": "memcached://x"}, StoreConfigError, "redis"),
    ({"offline_engine": "postgres"}, StoreConfigError, "spark"),
    ({"online": "sqlite"}, ValidationError, "unknown engine setting"),
    ({"online_store": 6379}, ValidationError, "must be a string"),
    (["online_store"], ValidationError, "must map"),
])
def test_bad_engine_values_are_refused_before_anything_runs(folder, engines, error, text):
    with pytest.raises(error, match=text):
        engine_plans(find_chapters(folder, None), engines)


def test_build_passes_engines_and_records_them_masked(folder, tmp_path_factory):
    _chapter(folder, 3, "online_store = 'sqlite'", body="assert online_store.startswith('redis://')")
    out = tmp_path_factory.mktemp("pack") / "pack"
    # the chapters only read the parameter here, so no server is needed for this build
    result = build_evidence(out, notebooks=folder, chapters=[1, 3], grade=False, jobs=1,
                            progress=lambda line: None,
                            engines={"online_store": "redis://:s3cret@127.0.0.1:6391/0"})
    assert result.chapters["3"]["status"] != "failed", result.chapters["3"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["engines"] == {"3": {"online_store": "redis://:***@127.0.0.1:6391/0"}}
    assert "s3cret" not in (out / "manifest.json").read_text()


def test_engines_and_extra_parameters_may_not_both_set_one(folder, tmp_path):
    with pytest.raises(ValidationError, match="both as an engine"):
        build_evidence(tmp_path / "pack", notebooks=folder, chapters=[2], grade=False,
                       progress=lambda line: None, engines={"online_store": "sqlite"},
                       extra_parameters={"online_store": "sqlite"})
    assert not (tmp_path / "pack").exists()


def test_cli_flags_reach_the_right_chapters_and_fail_fast(tmp_path, capsys):
    assert main(["evidence", "build", "--out", str(tmp_path / "p"), "--chapters", "1",
                 "--offline-engine", "spark"]) == 2
    assert main(["evidence", "build", "--out", str(tmp_path / "p"), "--chapters", "2",
                 "--online-store", "mongodb://h"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "No selected chapter takes 'offline_engine'" in err[0] and "redis" in err[1]
    assert not (tmp_path / "p").exists()



def test_the_course_chapters_declare_their_engines():
    selected = find_chapters(default_notebooks_dir(), None)
    plans = engine_plans(selected, {"online_store": "sqlite"})
    assert [n for n, chosen in plans.items() if chosen] == [2, 6]
