"""Evidence: record what a chapter proved, build a tamper-evident pack, grade it.

In a chapter notebook
---------------------
The ``parameters`` cell (tagged ``parameters``; exactly one per notebook)::

    seed = 7
    scale = 1
    evidence_dir = "../evidence"
    quiz_answers = None          # dict of question id -> letter; None = unanswered

The setup cell::

    from mlops_kit.evidence import start_chapter
    rec = start_chapter(2, evidence_dir=evidence_dir, seed=seed, scale=scale,
                        quiz_answers=quiz_answers)
    ws = rec.workspace()         # fresh scratch Workspace at <evidence_dir>/work/ch02/main

In the sections::

    rec.assumptions(allowed_staleness_h=24, latency_budget_ms=50)
    rec.save_json("leakage_auc", {"leaky": 0.93, "point_in_time": 0.78})  # sorted keys
    rec.save_table("training_sample", df.sample(2000, random_state=seed))  # CSV; .parquet too
    rec.save_figure("leakage_gap", fig)            # reproducible PNG bytes
    rec.save_markdown("runbook", text)
    rec.save_audit_export(ws.registry)             # ch04: audit_export.jsonl for the grader
    rec.check("2.3-no-leak", passed=gap < 0.01, observed=round(gap, 4), threshold=0.01,
              detail="point-in-time join uses no feature newer than the label time",
              look_at="the as-of condition in your join (exercise 2.2)")

A failing check raises ``CheckFailedError`` (papermill and nbval fail the run) and is still
written to ``checks.json``, which is rewritten after every check. The quiz cell (tag it
``nbval-ignore-output``)::

    rec.quiz()                   # ch06 also: rec.quiz("mock_exam")

and the last cell, only::

    rec.complete()

Building and grading
--------------------
``mlops-kit evidence build`` (``build_evidence``) runs the notebooks with papermill into a
pack (see ``layout`` for the folder layout), writes ``manifest.json`` and grades it with
``rubric.md`` (``grade_pack``). ``mlops-kit release`` writes the student notebooks
(``release``), ``mlops-kit check-notebooks`` keeps sources clean (``check_notebooks``).
"""

from .grading import Grade, GradeReport, GradingContext, criterion, grade_pack
from .gradebook import ClassResult, grade_class
from .hygiene import NotebookProblem, check_notebook, check_notebooks, fix_notebook
from .html import external_references, notebook_to_html, render_html
from .layout import AUDIT_EXPORT, chapter_dirname
from .manifest import IntegrityProblem, read_manifest, verify_pack, write_manifest
from .leaks import Leak, LeakReport, answer_literals, check_release_leaks, find_leaks
from .progress import ChapterProgress, pack_progress, progress_text, progress_widget, self_grade
from .quiz import (Question, QuizBank, QuizScore, bank_names, load_bank, record_quiz,
                   score_answers, show_quiz, validate_bank)
from .recorder import Recorder, start_chapter
from .release import Exercise, release, release_notebook
from .rubric import Criterion, load_rubric, parse_rubric
from .runner import BuildResult, build_evidence, check_parameters, find_chapters
from .widgets import explore
from .world_check import WorldCheck, check_world

__all__ = [
    "AUDIT_EXPORT", "BuildResult", "ChapterProgress", "ClassResult", "grade_class", "Criterion", "Exercise", "Grade",
    "GradeReport", "Leak", "LeakReport", "answer_literals", "check_release_leaks", "find_leaks",
    "pack_progress", "progress_text", "progress_widget", "self_grade",
    "GradingContext", "IntegrityProblem", "NotebookProblem", "Question", "QuizBank",
    "QuizScore", "Recorder", "bank_names", "build_evidence", "chapter_dirname",
    "check_notebook", "check_notebooks", "check_parameters", "criterion", "explore", "external_references",
    "find_chapters", "fix_notebook", "grade_pack", "load_bank", "load_rubric",
    "notebook_to_html", "parse_rubric", "read_manifest", "record_quiz", "release",
    "release_notebook", "render_html", "score_answers", "show_quiz", "start_chapter",
    "validate_bank", "verify_pack", "write_manifest", "WorldCheck", "check_world",
]
