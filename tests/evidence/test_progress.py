"""``mlops-kit progress`` and ``grade --self`` on a chapter 1 pack with one exercise done.

The pack is built from a student release in which Exercise 1.1's solution cell is copied
back from the source notebook and Exercise 1.2 is left as its stub, so the run stops there.
"""

from __future__ import annotations

import ast
import json
import re

import nbformat
import pytest

from mlops_kit.cli import main
from mlops_kit.errors import ValidationError
from mlops_kit.evidence import (build_evidence, load_bank, pack_progress, progress_text,
                                progress_widget, release, self_grade, start_chapter)
from mlops_kit.evidence.leaks import answer_literals, solution_sources
from mlops_kit.evidence.runner import default_notebooks_dir

SOURCE = default_notebooks_dir() / "01_foundations.ipynb"


def _check_ids(nb) -> list[str]:
    """Check ids of every ``rec.check("id", ...)`` call, read with ast (not a regex)."""
    ids = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(ln for ln in cell.source.split("\n") if not ln.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(code)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "check" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "rec" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                ids.append(node.args[0].value)
    return list(dict.fromkeys(ids))


@pytest.fixture(scope="module")
def half_done(tmp_path_factory):
    root = tmp_path_factory.mktemp("half")
    release(root / "release")
    source = nbformat.read(str(SOURCE), as_version=4)
    path = root / "release" / SOURCE.name
    student = nbformat.read(str(path), as_version=4)
    for index, cell in enumerate(source.cells):
        if "exercise-1.1" in cell.metadata.get("tags", []):
            assert "ExerciseNotDoneError" in student.cells[index].source
            student.cells[index].source = cell.source
    nbformat.write(student, str(path))
    result = build_evidence(root / "pack", notebooks=root / "release", chapters=[1],
                            quiz_answers=None, progress=lambda _line: None)
    assert result.failed == [1]
    return root / "pack", source


def test_progress_states_and_counts(half_done):
    pack, source = half_done
    (p,) = pack_progress(pack, chapters=[1])
    recorded = json.loads((pack / "ch01" / "checks.json").read_text())["checks"]
    ids = _check_ids(source)
    assert p.built and not p.complete
    assert {e.id: e.state for e in p.exercises} == {"1.1": "done", "1.2": "not done"}
    assert p.checks_total == len(ids) == 14
    assert p.checks_passed == sum(c["passed"] for c in recorded) == len(recorded)
    # the run stopped at the 1.2 stub: every check before it was recorded, none after
    stub_check = "1.4-exercise-asof-join"
    assert [c["id"] for c in recorded] == ids[:ids.index(stub_check)]
    assert "1.2-exercise-quality-slo" in {c["id"] for c in recorded}   # exercise 1.1's check
    assert p.next_step.startswith("do Exercise 1.2")
    assert p.quiz is None                                            # the quiz cell never ran


def test_progress_of_a_chapter_not_built(half_done):
    pack, _ = half_done
    (p,) = pack_progress(pack, chapters=[2])
    assert not p.built and p.checks_passed == 0 and p.checks_total > 0
    assert {e.state for e in p.exercises} == {"not done"}
    assert p.next_step.startswith("run 02_")


def test_progress_cli_json_and_text(half_done, capsys):
    pack, _ = half_done
    assert main(["progress", str(pack), "--chapters", "1", "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert [(e["id"], e["state"]) for e in data["exercises"]] == [("1.1", "done"), ("1.2", "not done")]
    assert main(["progress", str(pack), "--chapters", "1"]) == 0
    out = capsys.readouterr().out
    assert "Exercise 1.1: done" in out and "Exercise 1.2: not done" in out and "quiz not taken" in out
    assert f"checks {data['checks_passed']}/14 passed" in out


def test_failing_exercise_shows_the_checks_look_at(tmp_path):
    rec = start_chapter(1, evidence_dir=tmp_path, seed=7, scale=1)
    with pytest.raises(Exception):
        rec.check("1.2-exercise-quality-slo", False, detail="x", look_at="the SLO's objective")
    (p,) = pack_progress(tmp_path, chapters=[1])
    states = {e.id: (e.state, e.look_at) for e in p.exercises}
    assert states["1.1"] == ("failing", "the SLO's objective")
    assert p.next_step == "fix Exercise 1.1: the SLO's objective"
    assert "Exercise 1.1: failing — the SLO's objective" in progress_text([p])


def test_self_grade_names_short_criteria_without_answer_keys(half_done, capsys):
    pack, source = half_done
    score_before = (pack / "score.json").read_bytes()
    report, text = self_grade(pack)
    assert (pack / "score.json").read_bytes() == score_before       # nothing rewritten
    short = [r["id"] for r in report.results if r["status"] == "graded" and r["level"] < 4]
    assert short and all(f"- {cid} (" in text for cid in short)
    assert "Exercise 1.2" in text and "Quiz section" in text
    bank = load_bank(1)
    for q in bank.questions:                                         # no quiz key
        assert q.explanation not in text
        assert not re.search(rf"{re.escape(q.id)}\W+{q.answer}\b", text)
    for r in report.results:                                         # no grader findings
        if len(r["why"]) > 20:
            assert r["why"] not in text
    solution = solution_sources(source)["1.2"]                       # no answer literal
    assert not [lit.text for lit in answer_literals(solution) if lit.search(text)]
    assert main(["grade", "--self", str(pack)]) == 0
    assert capsys.readouterr().out.strip() == text


def test_progress_widget_has_a_plain_text_fallback(half_done):
    pack, _ = half_done
    progress = pack_progress(pack, chapters=[1])
    bundle = progress_widget(progress)._repr_mimebundle_()
    assert bundle["text/plain"] == progress_text(progress)
    assert "1.2 not done" in bundle["text/html"]


def test_start_chapter_shows_nothing_outside_a_kernel(tmp_path, capsys):
    start_chapter(1, evidence_dir=tmp_path, seed=7, scale=1)
    assert capsys.readouterr().out == ""


def test_progress_rejects_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValidationError):
        pack_progress(tmp_path / "f")
