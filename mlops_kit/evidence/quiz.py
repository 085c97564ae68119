"""Quizzes: question banks shipped as package data, a plain scoring path and an ipywidgets form.

A bank is ``mlops_kit/evidence/quizzes/<name>.json`` (``ch01`` ... ``ch06``, ``mock_exam``)::

    {"chapter": 1, "title": "...", "questions": [
        {"id": "q1.1", "question": "...", "options": {"A": "...", "B": "...", "C": "...",
         "D": "..."}, "answer": "B", "explanation": "..."}]}

The answer key stays in the package data: notebook cells call ``rec.quiz()`` and never show
it. Headless runs (papermill, nbval) record the ``quiz_answers`` parameter (None means
unanswered, which is scored as unanswered, not as an error). In JupyterLab the form's
submit button records the learner's answers and only then reveals right/wrong and the
explanations. Nothing graded depends on the widget: it calls ``record_quiz``, the same plain
function the headless path calls.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..errors import NotFoundError, ValidationError

__all__ = ["ANSWER_LETTERS", "Question", "QuizBank", "QuizScore", "bank_names", "load_bank",
           "validate_bank", "score_answers", "record_quiz", "quiz_listing", "show_quiz"]

ANSWER_LETTERS = ("A", "B", "C", "D")  # defined here, used by the recorder: quiz never imports it
_BANK_RE = re.compile(r"^(ch\d{2}|mock_exam)\.json$")


@dataclass(frozen=True, kw_only=True)
class Question:
    """One multiple-choice question with exactly four options A-D."""

    id: str
    question: str
    options: Mapping[str, str]
    answer: str
    explanation: str


@dataclass(frozen=True, kw_only=True)
class QuizBank:
    """A validated question bank (``name`` is the file stem, e.g. ``'ch03'``)."""

    name: str
    chapter: int
    title: str
    questions: tuple[Question, ...]

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.questions]


@dataclass(frozen=True, kw_only=True)
class QuizScore:
    """Right / wrong / unanswered counts and a per-question verdict."""

    bank: str
    total: int
    right: int
    wrong: int
    unanswered: int
    verdicts: dict[str, str] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.right / self.total if self.total else 0.0

    def summary(self) -> str:
        return (f"Quiz {self.bank}: {self.right} right, {self.wrong} wrong, {self.unanswered} "
                f"unanswered of {self.total}.")


def _bad(source: str, what: str) -> ValidationError:
    return ValidationError(f"Quiz bank {source}: {what}.",
                           fix="Follow the bank format in mlops_kit/evidence/quiz.py.")


def validate_bank(data: Any, *, name: str, source: str | None = None) -> QuizBank:
    """Validate a parsed bank: four options A-D, the answer among them, an explanation."""
    src = source or name
    if not isinstance(data, dict):
        raise _bad(src, f"top level must be an object, got {type(data).__name__}")
    chapter = data.get("chapter")
    if isinstance(chapter, bool) or not isinstance(chapter, int) or chapter < 1:
        raise _bad(src, f"'chapter' must be a positive integer, got {chapter!r}")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _bad(src, "'title' must be a non-empty string")
    raw = data.get("questions")
    if not isinstance(raw, list) or not raw:
        raise _bad(src, "'questions' must be a non-empty list")
    questions, seen = [], set()
    for i, q in enumerate(raw):
        where = f"question #{i + 1}"
        if not isinstance(q, dict):
            raise _bad(src, f"{where} must be an object")
        qid = q.get("id")
        if not isinstance(qid, str) or not qid.strip():
            raise _bad(src, f"{where}: 'id' must be a non-empty string")
        if qid in seen:
            raise _bad(src, f"duplicate question id {qid!r}")
        seen.add(qid)
        for key in ("question", "explanation"):
            if not isinstance(q.get(key), str) or not q[key].strip():
                raise _bad(src, f"{qid}: {key!r} must be a non-empty string")
        options = q.get("options")
        if not isinstance(options, dict) or sorted(options) != list(ANSWER_LETTERS):
            got = sorted(options) if isinstance(options, dict) else options
            raise _bad(src, f"{qid}: 'options' must have exactly the keys A, B, C, D, got {got!r}")
        if any(not isinstance(v, str) or not v.strip() for v in options.values()):
            raise _bad(src, f"{qid}: every option must be a non-empty string")
        if q.get("answer") not in ANSWER_LETTERS:
            raise _bad(src, f"{qid}: 'answer' must be one of A, B, C, D, got {q.get('answer')!r}")
        questions.append(Question(id=qid, question=q["question"], options=dict(sorted(options.items())),
                                  answer=q["answer"], explanation=q["explanation"]))
    return QuizBank(name=name, chapter=chapter, title=title, questions=tuple(questions))


def _bank_dir() -> Any:
    return resources.files("mlops_kit.evidence").joinpath("quizzes")


def bank_names() -> list[str]:
    """Names of the banks shipped with the kit, sorted (e.g. ``['ch01', ..., 'mock_exam']``).

    Banks are the files ``chNN.json`` and ``mock_exam.json``; other JSON files in the folder
    (e.g. a review checklist) are not question banks.
    """
    folder = _bank_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if _BANK_RE.match(p.name))


def load_bank(which: int | str | os.PathLike[str]) -> QuizBank:
    """Load and validate a bank: a chapter number, a bank name, or a path to a JSON file."""
    if isinstance(which, int) and not isinstance(which, bool):
        which = f"ch{which:02d}"
    if isinstance(which, os.PathLike) or (isinstance(which, str) and which.endswith(".json")):
        path = Path(which)
        if not path.is_file():
            raise NotFoundError(f"Quiz bank file {str(path)!r} does not exist.",
                                fix="Pass an existing bank file or a bank name.")
        text, name = path.read_text(encoding="utf-8"), path.stem
    elif isinstance(which, str):
        resource = _bank_dir().joinpath(f"{which}.json")
        if not resource.is_file():
            raise NotFoundError(f"No quiz bank named {which!r}.",
                                fix=f"Use one of {bank_names()} or a path to a bank file.")
        text, name = resource.read_text(encoding="utf-8"), which
    else:
        raise ValidationError(f"load_bank: expected a chapter number, name or path, got {which!r}.",
                              fix="Pass e.g. 3, 'mock_exam' or Path('bank.json').")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(name, f"not valid JSON ({exc})") from exc
    return validate_bank(data, name=name, source=str(which))


def score_answers(bank: QuizBank, answers: Mapping[str, str | None] | None) -> QuizScore:
    """Score answers against the key; ids of other banks are ignored, missing ids unanswered."""
    answers = answers or {}
    verdicts = {}
    for q in bank.questions:
        given = answers.get(q.id)
        verdicts[q.id] = ("unanswered" if given is None
                          else "right" if str(given).upper() == q.answer else "wrong")
    counts = {v: sum(1 for x in verdicts.values() if x == v) for v in ("right", "wrong", "unanswered")}
    return QuizScore(bank=bank.name, total=len(bank.questions), verdicts=verdicts, **counts)


def record_quiz(recorder: Any, bank: QuizBank, answers: Mapping[str, str | None] | None, *,
                source: str) -> QuizScore:
    """Record ``answers`` for ``bank`` into the recorder's ``answers.json``; return the score.

    ``source`` is ``'parameter'`` (headless) or ``'widget'`` (the JupyterLab form). Only the
    bank's own ids are recorded; letters must be A-D or None.
    """
    given = dict(answers or {})
    bad = {k: v for k, v in given.items() if v is not None and str(v).upper() not in ANSWER_LETTERS}
    if bad:
        raise ValidationError(f"Quiz {bank.name}: answers must be A-D or None, got {bad}.",
                              fix="Answer with a single letter per question.")
    own = {q.id: (None if given.get(q.id) is None else str(given[q.id]).upper())
           for q in bank.questions}
    recorder._record_answers(bank.name, own, source)
    return score_answers(bank, own)


def _save_learner_answers(recorder: Any, answers: Mapping[str, str | None]) -> None:
    """Keep widget answers in ``<evidence_dir>/quiz_answers.json`` for the next build."""
    path = Path(recorder.evidence_dir) / "quiz_answers.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except json.JSONDecodeError:
        saved = {}
    saved.update({k: v for k, v in answers.items() if v is not None})
    atomic_write_json(path, saved)


def quiz_listing(bank: QuizBank, answers: Mapping[str, str | None] | None = None) -> tuple[str, str]:
    """Plain-text and HTML listings of a bank's questions and options (never the key).

    Used as the form's static rendering, so executed notebooks and their HTML pages show the
    questions (and the recorded letters) where no widget frontend is running.
    """
    answers = answers or {}
    lines = [f"{bank.title} ({len(bank.questions)} questions)"]
    parts = [f"<h4>{html.escape(bank.title)}</h4><ol>"]
    for q in bank.questions:
        given = answers.get(q.id)
        mark = f"  [recorded: {given}]" if given else ""
        lines.append(f"{q.id}. {q.question}{mark}")
        lines += [f"    {k}. {v}" for k, v in q.options.items()]
        options = "".join(f"<li>{k}. {html.escape(v)}</li>" for k, v in q.options.items())
        parts.append(f"<li><b>{html.escape(q.id)}</b> {html.escape(q.question)}"
                     f"{html.escape(mark)}<ul style='list-style:none'>{options}</ul></li>")
    parts.append("</ol>")
    return "\n".join(lines), "".join(parts)


def show_quiz(which: Any, recorder: Any, *, answers: Mapping[str, str | None] | None = None) -> Any:
    """Record ``answers`` headlessly, print the score, and return the ipywidgets form.

    Parameters
    ----------
    which:
        Chapter number, bank name, path or ``QuizBank``.
    recorder:
        The chapter's ``Recorder``.
    answers:
        The ``quiz_answers`` parameter (question id -> letter), or None for unanswered.

    Returns
    -------
    ipywidgets.VBox
        The form: one RadioButtons per question and a submit button. Submitting records the
        answers (source ``'widget'``) and only then shows right/wrong and explanations.
        Without a widget frontend it renders as a plain listing of the questions.
    """
    bank = which if isinstance(which, QuizBank) else load_bank(which)
    score = record_quiz(recorder, bank, answers, source="parameter")
    print(score.summary() if answers else
          f"Quiz {bank.name}: {score.total} questions, not answered yet (answer in the form below).")
    import ipywidgets as widgets

    text, listing = quiz_listing(bank, answers)

    class QuizForm(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle.update({"text/plain": text, "text/html": listing})
            return bundle

    rows, radios, feedback = [], {}, {}
    for q in bank.questions:
        radios[q.id] = widgets.RadioButtons(
            options=[(f"{k}. {v}", k) for k, v in q.options.items()],
            value=(answers or {}).get(q.id), layout=widgets.Layout(width="auto"))
        feedback[q.id] = widgets.HTML("")
        rows.append(widgets.VBox([
            widgets.HTML(f"<b>{html.escape(q.id)}</b> {html.escape(q.question)}"),
            radios[q.id], feedback[q.id]]))
    status = widgets.HTML("")
    button = widgets.Button(description="Submit answers", button_style="primary")

    def _submit(_: Any) -> None:
        chosen = {qid: radio.value for qid, radio in radios.items()}
        result = record_quiz(recorder, bank, chosen, source="widget")
        _save_learner_answers(recorder, chosen)
        for q in bank.questions:
            verdict = result.verdicts[q.id]
            mark = {"right": "&#10004; right", "wrong": f"&#10008; wrong (answer: {q.answer})",
                    "unanswered": f"not answered (answer: {q.answer})"}[verdict]
            feedback[q.id].value = f"<i>{mark}.</i> {html.escape(q.explanation)}"
        status.value = (f"<b>{html.escape(result.summary())}</b> Recorded in "
                        f"{recorder.dir.name}/answers.json.")

    button.on_click(_submit)
    return QuizForm([widgets.HTML(f"<h4>{html.escape(bank.title)}</h4>"), *rows, button, status])
