"""Quiz banks: validation, scoring, headless recording, the widget form, shipped banks."""

from __future__ import annotations

import copy
import json

import pytest

from mlops_kit.errors import NotFoundError, ValidationError
from mlops_kit.evidence import bank_names, load_bank, score_answers, start_chapter, validate_bank

from .conftest import FIXTURES

GOOD = json.loads((FIXTURES / "quizzes" / "ch01.json").read_text())


def test_fixture_bank_loads_by_path():
    bank = load_bank(FIXTURES / "quizzes" / "ch01.json")
    assert bank.name == "ch01" and bank.chapter == 1 and bank.ids == ["t1.1", "t1.2", "t1.3"]
    assert [q.answer for q in bank.questions] == ["B", "A", "C"]


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b["questions"][0]["options"].pop("D"), "exactly the keys A, B, C, D"),
    (lambda b: b["questions"][0]["options"].update(E="x"), "exactly the keys"),
    (lambda b: b["questions"][0].update(answer="E"), "'answer' must be one of"),
    (lambda b: b["questions"][1].update(explanation="  "), "'explanation'"),
    (lambda b: b["questions"][2].update(id="t1.1"), "duplicate question id"),
    (lambda b: b.update(questions=[]), "non-empty list"),
    (lambda b: b.update(chapter="1"), "'chapter'"),
    (lambda b: b["questions"][0]["options"].update(A=""), "non-empty string"),
])
def test_bad_banks_are_refused(mutate, match):
    bank = copy.deepcopy(GOOD)
    mutate(bank)
    with pytest.raises(ValidationError, match=match):
        validate_bank(bank, name="bad")


def test_unknown_bank_name_is_not_found():
    with pytest.raises(NotFoundError, match="No quiz bank"):
        load_bank("ch99")


def test_scoring_against_hand_counted_key():
    bank = validate_bank(GOOD, name="ch01")
    score = score_answers(bank, {"t1.1": "B", "t1.2": "c", "other": "A"})
    assert (score.right, score.wrong, score.unanswered, score.total) == (1, 1, 1, 3)
    assert score.verdicts == {"t1.1": "right", "t1.2": "wrong", "t1.3": "unanswered"}
    assert score_answers(bank, None).unanswered == 3


def test_headless_default_is_unanswered_not_an_error(tmp_path, test_bank_dir, capsys):
    rec = start_chapter(1, evidence_dir=tmp_path, seed=0, scale=1)
    rec.quiz()
    out = capsys.readouterr().out
    assert "not answered yet" in out
    recorded = json.loads((rec.dir / "answers.json").read_text())
    assert recorded == {"chapter": 1, "banks": {"ch01": {
        "answers": {"t1.1": None, "t1.2": None, "t1.3": None}, "source": "parameter"}}}
    rec.check("a", True)
    rec.complete()


def test_headless_answers_from_parameter(tmp_path, test_bank_dir):
    rec = start_chapter(1, evidence_dir=tmp_path, seed=0, scale=1,
                        quiz_answers={"t1.1": "b", "t1.3": "C"})
    rec.quiz()
    banks = json.loads((rec.dir / "answers.json").read_text())["banks"]
    assert banks["ch01"]["answers"] == {"t1.1": "B", "t1.2": None, "t1.3": "C"}
    assert "answer" not in json.dumps(banks).replace('"answers"', "")  # no key recorded


def test_widget_records_on_submit_and_reveals_only_then(tmp_path, test_bank_dir):
    import ipywidgets as widgets

    rec = start_chapter(1, evidence_dir=tmp_path, seed=0, scale=1)
    form = rec.quiz()
    radios = [w for w in _walk(form) if isinstance(w, widgets.RadioButtons)]
    feedback = [w for w in _walk(form) if isinstance(w, widgets.HTML) and w.value == ""]
    assert len(radios) == 3 and len(feedback) == 4  # one per question + the status line
    explanations = [q["explanation"] for q in GOOD["questions"]]
    before = " ".join(w.value for w in _walk(form) if isinstance(w, widgets.HTML))
    assert not any(e in before for e in explanations)
    radios[0].value, radios[1].value = "B", "D"
    button = next(w for w in _walk(form) if isinstance(w, widgets.Button))
    button.click()
    recorded = json.loads((rec.dir / "answers.json").read_text())["banks"]["ch01"]
    assert recorded == {"answers": {"t1.1": "B", "t1.2": "D", "t1.3": None}, "source": "widget"}
    after = " ".join(w.value for w in _walk(form) if isinstance(w, widgets.HTML))
    assert all(e in after for e in explanations) and "1 right, 1 wrong, 1 unanswered" in after
    assert json.loads((tmp_path / "quiz_answers.json").read_text()) == {"t1.1": "B", "t1.2": "D"}


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_every_shipped_bank_is_valid():
    names = bank_names()
    for name in names:
        bank = load_bank(name)
        assert all(len(q.options) == 4 for q in bank.questions)
    ids = [qid for name in names for qid in load_bank(name).ids]
    assert len(ids) == len(set(ids)), "question ids must be unique across banks"


def test_static_rendering_lists_questions_without_the_key(tmp_path, test_bank_dir):
    rec = start_chapter(1, evidence_dir=tmp_path, seed=0, scale=1, quiz_answers={"t1.2": "D"})
    bundle = rec.quiz()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    for mime in ("text/plain", "text/html"):
        shown = bundle[mime]
        assert "Which timestamp says when an event happened?" in shown and "event_timestamp" in shown
        assert "recorded: D" in shown
        assert not any(q["explanation"] in shown for q in GOOD["questions"])
        assert "answer:" not in shown.lower()
