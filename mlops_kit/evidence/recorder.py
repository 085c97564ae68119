"""``Recorder``: one per chapter run; writes artifacts and checks into ``<evidence_dir>/chNN/``.

Every write is atomic (temporary file, then rename), and ``checks.json`` is rewritten after
every check, so the evidence of a run that stops half-way is still readable. Only
``complete()`` (the notebook's last cell) writes the completion marker ``complete.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._io import atomic_path, atomic_write_json, atomic_write_text, json_default, sha256_file
from ..errors import CheckFailedError, EvidenceError, ValidationError
from .layout import (AUDIT_EXPORT, RESERVED, WORK_DIR, WORK_ENV, chapter_dirname, kit_version,
                     validate_chapter)
from .learners import SEED_SOURCES, resolve_seed, validate_learner_id
from .quiz import ANSWER_LETTERS, show_quiz

__all__ = ["Recorder", "start_chapter", "ANSWER_LETTERS"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SUFFIXES = {"json": (".json",), "table": (".csv", ".parquet"), "figure": (".png",),
             "markdown": (".md",), "file": None}


def _jsonable(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{what} is not JSON-serializable: {exc}.",
            fix="Record numbers, strings, booleans, lists and dicts; round floats and replace "
            "NaN/inf (e.g. with None).",
        ) from exc


def _validate_answers(quiz_answers: Any) -> dict[str, str | None] | None:
    if quiz_answers is None:
        return None
    if not isinstance(quiz_answers, Mapping):
        raise ValidationError(
            f"quiz_answers must be a dict of question id -> letter or None, got "
            f"{type(quiz_answers).__name__}.",
            fix="Pass e.g. quiz_answers={'q1.1': 'B'}, or None to leave the quiz unanswered.",
        )
    out: dict[str, str | None] = {}
    for qid, letter in quiz_answers.items():
        if letter is not None and (not isinstance(letter, str)
                                   or letter.strip().upper() not in ANSWER_LETTERS):
            raise ValidationError(
                f"quiz_answers[{qid!r}] must be one of A, B, C, D or None, got {letter!r}.",
                fix="Answer with a single letter, e.g. 'B'.",
            )
        out[str(qid)] = None if letter is None else letter.strip().upper()
    return out


class Recorder:
    """Records one chapter run's evidence.

    Parameters
    ----------
    chapter:
        Chapter number (1-99); the folder is ``<evidence_dir>/chNN``.
    evidence_dir:
        The evidence pack folder (the notebook's ``evidence_dir`` parameter). Relative paths
        are resolved against the current directory (the notebook's folder).
    seed, scale:
        The run's ``seed`` (int >= 0) and ``scale`` parameters, recorded in ``run.json``.
    quiz_answers:
        The ``quiz_answers`` parameter: question id -> letter, or None (unanswered).
    learner, seed_source:
        The learner id the run is for (or None) and how the seed was chosen (one of
        ``learners.SEED_SOURCES``), recorded in ``run.json``; ``start_chapter`` fills both.

    Starting a recorder clears the chapter's previous evidence and scratch workspaces, so
    re-running a notebook never mixes two runs.
    """

    def __init__(self, chapter: int, *, evidence_dir: str | os.PathLike[str], seed: int,
                 scale: Any, quiz_answers: Mapping[str, str | None] | None = None,
                 learner: str | None = None, seed_source: str = "explicit") -> None:
        self.chapter = validate_chapter(chapter)
        self.learner = validate_learner_id(learner) if learner is not None else None
        if seed_source not in SEED_SOURCES:
            raise ValidationError(f"Recorder: seed_source must be one of {SEED_SOURCES}, got {seed_source!r}.",
                                  fix="Let start_chapter choose it from the seed and learner parameters.")
        self.seed_source = seed_source
        if evidence_dir is None or str(evidence_dir) == "":
            raise ValidationError("Recorder: evidence_dir is empty.",
                                  fix="Pass the evidence pack folder, e.g. '../evidence'.")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValidationError(f"Recorder: seed must be an integer >= 0, got {seed!r}.",
                                  fix="Pass e.g. seed=7.")
        self.seed = seed
        self.scale = _jsonable(scale, "Recorder: scale")
        self.quiz_answers = _validate_answers(quiz_answers)
        self.evidence_dir = Path(evidence_dir).expanduser().resolve()
        if self.evidence_dir.exists() and not self.evidence_dir.is_dir():
            raise ValidationError(f"Recorder: evidence_dir {str(self.evidence_dir)!r} is a file.",
                                  fix="Pass a folder path.")
        self.dir = self.evidence_dir / chapter_dirname(self.chapter)
        work_root = os.environ.get(WORK_ENV) or str(self.evidence_dir / WORK_DIR)
        self.work_dir = Path(work_root).expanduser().resolve() / chapter_dirname(self.chapter)
        for folder in (self.dir, self.work_dir):
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
        self._checks: dict[str, dict[str, Any]] = {}
        self._answers: dict[str, dict[str, Any]] = {}
        self._used_answer_ids: set[str] = set()
        self.completed = False
        atomic_write_json(self.dir / "run.json", {
            "chapter": self.chapter, "seed": self.seed, "scale": self.scale,
            "kit_version": kit_version(), "quiz_answers_given": self.quiz_answers is not None,
            "learner": self.learner, "seed_source": self.seed_source,
        })

    def __repr__(self) -> str:
        return f"Recorder(chapter={self.chapter}, dir={str(self.dir)!r})"

    # -- artifacts --------------------------------------------------------------------
    def _target(self, name: str, kind: str, default_suffix: str | None) -> Path:
        if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
            raise ValidationError(
                f"Recorder: artifact name {name!r} is not a plain file name.",
                fix="Use letters, digits, '_', '-' and '.', e.g. 'leakage_auc' (no folders).",
            )
        allowed = _SUFFIXES[kind]
        suffix = Path(name).suffix.lower()
        if allowed is not None and suffix not in allowed:
            if suffix and suffix[1:].isalpha() and len(suffix) <= 8:
                raise ValidationError(
                    f"Recorder: {kind} artifact {name!r} must end with one of {allowed}.",
                    fix=f"Drop the suffix (the recorder adds {default_suffix}) or use one of "
                    f"{allowed}.",
                )
            name = name + (default_suffix or "")
        if name in RESERVED:
            raise ValidationError(f"Recorder: {name!r} is reserved for the recorder itself.",
                                  fix="Choose another artifact name.")
        return self.dir / name

    def save_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as pretty JSON with sorted keys; returns the file path."""
        target = self._target(name, "json", ".json")
        return atomic_write_json(target, _jsonable(obj, f"save_json({name!r})"))

    def save_table(self, name: str, df: Any, *, max_rows: int = 20_000) -> Path:
        """Write a small DataFrame sample as CSV (default) or Parquet (``name.parquet``).

        Tables are samples for the grader to recompute from, so they are kept small:
        more than ``max_rows`` rows is refused.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise ValidationError(f"save_table({name!r}): expected a pandas DataFrame, got "
                                  f"{type(df).__name__}.", fix="Pass a DataFrame (.df() for DuckDB).")
        if len(df) > max_rows:
            raise ValidationError(
                f"save_table({name!r}): {len(df)} rows is more than max_rows={max_rows}.",
                fix="Save a seeded sample, e.g. df.sample(n=5000, random_state=seed).",
            )
        target = self._target(name, "table", ".csv")
        with atomic_path(target) as tmp:
            if target.suffix == ".parquet":
                df.to_parquet(tmp, index=False)
            else:
                df.to_csv(tmp, index=False, lineterminator="\n")
        return target

    def save_figure(self, name: str, fig: Any, *, dpi: int = 100) -> Path:
        """Save a matplotlib figure as PNG with reproducible bytes (no Software metadata).

        The figure is not closed, so the cell can still display it.
        """
        if not hasattr(fig, "savefig"):
            raise ValidationError(f"save_figure({name!r}): expected a matplotlib Figure, got "
                                  f"{type(fig).__name__}.", fix="Pass fig from plt.subplots().")
        target = self._target(name, "figure", ".png")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
        return target

    def save_markdown(self, name: str, text: str) -> Path:
        """Write a Markdown document (runbook, postmortem, changelog)."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(f"save_markdown({name!r}): text is empty or not a string.",
                                  fix="Pass the Markdown text.")
        target = self._target(name, "markdown", ".md")
        return atomic_write_text(target, text if text.endswith("\n") else text + "\n")

    def path(self, name: str) -> Path:
        """A path inside the chapter folder for a tool that writes its own file.

        Example: ``registry.audit.export(rec.path("audit_export.jsonl"))``.
        """
        return self._target(name, "file", None)

    def save_audit_export(self, registry: Any) -> Path:
        """Export the registry's audit log as ``audit_export.jsonl`` (JSON lines).

        Accepts a ``ModelRegistry`` (uses ``registry.audit.export``) or its audit log. The
        grader re-verifies this hash chain independently and the build records its head hash.
        """
        audit = getattr(registry, "audit", registry)
        if not callable(getattr(audit, "export", None)):
            raise ValidationError("save_audit_export: object has no audit.export(path).",
                                  fix="Pass a ModelRegistry, e.g. ws.registry.")
        target = self.path(AUDIT_EXPORT)
        audit.export(target)
        return target

    def assumptions(self, **items: Any) -> Path:
        """Record the run's explicit assumptions (``assumptions.json``), e.g. latency budget."""
        if not items:
            raise ValidationError("assumptions(): nothing given.",
                                  fix="Pass keyword arguments, e.g. allowed_staleness_h=24.")
        return self.save_json("assumptions", items)

    def note(self, text: str) -> Path:
        """Append a line to ``notes.md`` (observations worth keeping with the evidence)."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("note(): text is empty.", fix="Pass a sentence.")
        target = self.dir / "notes.md"
        old = target.read_text(encoding="utf-8") if target.exists() else ""
        return atomic_write_text(target, old + f"- {text.strip()}\n")

    # -- checks -----------------------------------------------------------------------
    def check(self, id: str, passed: Any, observed: Any = None, threshold: Any = None,
              detail: str = "", *, look_at: str = "") -> dict[str, Any]:
        """Record a named check; raise ``CheckFailedError`` when it did not pass.

        Parameters
        ----------
        id:
            Stable check id, e.g. ``"2.3-pit-join-no-leak"``. Re-running the same id replaces
            the earlier record.
        passed:
            The verdict (bool or numpy bool).
        observed, threshold:
            The measured value and the limit it was compared with (JSON-serializable).
        detail:
            What was checked, in one sentence (printed and stored).
        look_at:
            Where to look when it fails (used in the error message).
        """
        if not isinstance(id, str) or not id.strip():
            raise ValidationError("check(): id must be a non-empty string.",
                                  fix="Pass e.g. '2.3-no-leak'.")
        if type(passed).__name__ not in ("bool", "bool_"):
            raise ValidationError(f"check({id!r}): passed must be a bool, got "
                                  f"{type(passed).__name__} {passed!r}.",
                                  fix="Pass a comparison, e.g. passed=auc_gap < 0.01.")
        record = {"id": id, "passed": bool(passed),
                  "observed": _jsonable(observed, f"check({id!r}) observed"),
                  "threshold": _jsonable(threshold, f"check({id!r}) threshold"),
                  "detail": str(detail), "look_at": str(look_at)}
        self._checks.pop(id, None)
        self._checks[id] = record
        atomic_write_json(self.dir / "checks.json",
                          {"chapter": self.chapter, "checks": list(self._checks.values())})
        measured = "" if observed is None else f" (observed {observed!r}, threshold {threshold!r})"
        if record["passed"]:
            print(f"check {id} passed: {detail}{measured}")
            return record
        raise CheckFailedError(
            f"Check {id!r} failed: {detail or 'no detail given'}{measured}.",
            fix=look_at or "Look at the cells above that computed the observed value.",
            check=record,
        )

    @property
    def checks(self) -> list[dict[str, Any]]:
        """The recorded checks, in order (copies)."""
        return [dict(c) for c in self._checks.values()]

    # -- quiz -------------------------------------------------------------------------
    def quiz(self, bank: Any = None) -> Any:
        """Record the quiz answers headlessly and return the answer form (ipywidgets).

        ``bank`` defaults to this chapter's bank; pass ``"mock_exam"`` for the mock exam or a
        path to a bank file. See ``mlops_kit.evidence.show_quiz``.
        """
        return show_quiz(self.chapter if bank is None else bank, self, answers=self.quiz_answers)

    def _record_answers(self, bank_name: str, answers: Mapping[str, str | None],
                        source: str) -> Path:
        self._answers[bank_name] = {"answers": dict(sorted(answers.items())), "source": source}
        if source == "parameter":
            self._used_answer_ids.update(answers)
        return atomic_write_json(self.dir / "answers.json",
                                 {"chapter": self.chapter, "banks": self._answers})

    # -- workspace and completion ----------------------------------------------------
    def workspace(self, name: str = "main") -> Any:
        """A scratch ``Workspace`` for this run at ``<evidence_dir>/work/chNN/<name>``.

        Scratch is not part of the pack: the manifest and grader ignore ``work/``. Save what
        the grader must read (samples, exports) with the ``save_*`` methods.
        """
        from .._front import Workspace

        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValidationError(f"workspace(): name {name!r} is not a plain folder name.",
                                  fix="Use e.g. 'main' or 'rebuild'.")
        return Workspace(self.work_dir / name)

    def complete(self) -> Path:
        """Write the completion marker; call only in the notebook's last cell.

        Refuses when a recorded check failed, when no check was recorded, or when
        ``quiz_answers`` named questions that no quiz of this chapter asked.
        """
        failed = [c["id"] for c in self._checks.values() if not c["passed"]]
        if failed:
            raise CheckFailedError(f"Chapter {self.chapter}: checks failed: {failed}.",
                                   fix="Fix them and re-run the notebook from the top.")
        if not self._checks:
            raise EvidenceError(f"Chapter {self.chapter}: no check was recorded.",
                                fix="Assert each control with rec.check(...) before complete().")
        unknown = sorted(set(self.quiz_answers or {}) - self._used_answer_ids)
        if unknown:
            raise EvidenceError(
                f"Chapter {self.chapter}: quiz_answers has ids no quiz here asked: {unknown}.",
                fix="Check the question ids (e.g. 'q1.3') in the quiz_answers parameter.",
            )
        artifacts = {p.name: sha256_file(p) for p in sorted(self.dir.iterdir())
                     if p.is_file() and p.name != "complete.json" and not p.name.startswith(".")}
        marker = atomic_write_json(self.dir / "complete.json", {
            "chapter": self.chapter, "seed": self.seed, "scale": self.scale, "learner": self.learner,
            "checks": [{"id": c["id"], "passed": c["passed"]} for c in self._checks.values()],
            "artifacts": artifacts,
        })
        self.completed = True
        print(f"Chapter {self.chapter} complete: {len(self._checks)} of {len(self._checks)} "
              f"checks passed, {len(artifacts)} files recorded in {self.dir.name}/.")
        return marker


def start_chapter(chapter: int, *, evidence_dir: str | os.PathLike[str], seed: int | None = None,
                  scale: Any, quiz_answers: Mapping[str, str | None] | None = None,
                  learner: str | None = None) -> Recorder:
    """Create the chapter's ``Recorder`` from the notebook's ``parameters`` values.

    The seed is chosen by ``learners.resolve_seed``: ``seed=None`` runs the learner's own
    world (derived from ``learner``), or the course default (7) without a learner; an explicit
    seed wins and, with a learner, is recorded as an override. The notebook then reads the
    seed it runs on from ``rec.seed``.

    Examples
    --------
    >>> import tempfile
    >>> rec = start_chapter(1, evidence_dir=tempfile.mkdtemp(), seed=7, scale=1)
    >>> rec.dir.name
    'ch01'
    >>> start_chapter(1, evidence_dir=tempfile.mkdtemp(), scale=1, learner="ada").seed_source
    'learner'

    Inside a notebook kernel it first shows the learner's progress (``progress_widget``) as it
    stood before this run clears the chapter's earlier evidence.
    """
    seed, source = resolve_seed(seed, learner)
    _show_progress(chapter, evidence_dir)
    return Recorder(chapter, evidence_dir=evidence_dir, seed=seed, scale=scale,
                    quiz_answers=quiz_answers, learner=learner, seed_source=source)


def _show_progress(chapter: Any, evidence_dir: Any) -> None:
    """Display the progress table when running in an IPython kernel; never fails the run."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return
    if shell is None or not hasattr(shell, "kernel"):
        return
    from IPython.display import display

    from .progress import chapter_progress, progress_widget

    try:
        progress = chapter_progress(Path(evidence_dir), validate_chapter(chapter))
    except Exception:  # noqa: BLE001 - a progress view must never stop the chapter
        return
    display(progress_widget([progress]))

