"""``build_evidence``: execute the chapter notebooks with papermill, keep them, hash and grade.

Notebooks run through papermill's Python API (kernel ``python3``, working directory = the
notebooks folder, absolute evidence paths as parameters), one after another or, with
``jobs > 1``, side by side, each chapter in its own kernel driven from a thread of this process
(``evidence.parallel``; chapters share nothing but the pack folder, each writing only its own
``chNN/``, executed notebook and HTML page). Parameters are checked against each notebook's
``parameters`` cell before anything runs. A failing chapter is recorded and the build continues.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
import threading
from contextlib import chdir, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._time import system_clock
from ..errors import EvidenceError, NotebookParameterError, ValidationError
from .engines import engine_plans
from .layout import CHAPTER_RE, IGNORED_TOP, WORK_DIR, WORK_ENV, chapter_dirname
from .learners import resolve_seed, validate_learner_id
from .manifest import write_manifest
from .parallel import run_side_by_side
from .schedule import longest_first

__all__ = ["BuildResult", "build_evidence", "default_notebooks_dir", "find_chapters",
           "check_parameters"]

_KNOWN_TOP = IGNORED_TOP | {"quiz_answers.json", "notebooks", "html", WORK_DIR}


@dataclass(kw_only=True)
class BuildResult:
    """Per-chapter statuses of a build plus the grade report (None when not graded)."""

    out: Path
    chapters: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Any = None

    @property
    def failed(self) -> list[int]:
        return [int(k) for k, v in self.chapters.items() if v["status"] != "ok"]


def default_notebooks_dir() -> Path:
    """The checkout's ``notebooks/`` folder (beside the ``mlops_kit`` source folder)."""
    path = Path(__file__).resolve().parents[2] / "notebooks"
    if not path.is_dir():
        raise EvidenceError(f"No notebooks folder next to the kit's source ({str(path)!r}).",
                            fix="Pass --notebooks DIR (e.g. your released copy of the notebooks).")
    return path


def find_chapters(folder: str | os.PathLike[str],
                  chapters: list[int] | None = None) -> dict[int, Path]:
    """Chapter number -> notebook path for ``NN_title.ipynb`` files in ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise EvidenceError(f"Notebooks folder {str(root)!r} does not exist.",
                            fix="Pass --notebooks DIR pointing at the chapter notebooks.")
    found: dict[int, Path] = {}
    for path in sorted(root.iterdir()):
        match = CHAPTER_RE.match(path.name)
        if match:
            number = int(match.group(1))
            if number in found:
                raise EvidenceError(f"Two notebooks for chapter {number}: {found[number].name}, "
                                    f"{path.name}.", fix="Keep one notebook per chapter.")
            found[number] = path
    if chapters is not None:
        missing = sorted(set(chapters) - set(found))
        if missing:
            raise EvidenceError(f"No notebook for chapter(s) {missing} in {str(root)!r}.",
                                fix=f"Choose from {sorted(found)} or add NN_title.ipynb files.")
        found = {n: p for n, p in found.items() if n in chapters}
    if not found:
        raise EvidenceError(f"No chapter notebooks (NN_title.ipynb) in {str(root)!r}.",
                            fix="Pass --notebooks DIR holding the chapter notebooks.")
    return dict(sorted(found.items()))


def check_parameters(notebook: Path, parameters: Mapping[str, Any]) -> None:
    """Refuse a notebook without exactly one ``parameters`` cell, or unknown parameter names."""
    import nbformat
    import papermill

    nb = nbformat.read(str(notebook), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise NotebookParameterError(
            f"{notebook.name}: expected exactly one cell tagged 'parameters', found {len(tagged)}.",
            fix="Tag the cell that sets seed, evidence_dir, scale and quiz_answers with 'parameters'.",
            notebook=notebook.name)
    declared = set(papermill.inspect_notebook(str(notebook)))
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise NotebookParameterError(
            f"{notebook.name}: unknown parameter(s) {unknown}; its parameters cell declares "
            f"{sorted(declared)}.", fix="Fix the parameter names or add them to the parameters cell.",
            notebook=notebook.name, unknown=unknown)


@contextmanager
def _hermetic_env(work: Path, workspace: Path | None) -> Iterator[None]:
    """Point Jupyter/IPython/matplotlib state into the build folder (MPLBACKEND is untouched)."""
    values = {"IPYTHONDIR": work / "ipython", "JUPYTER_CONFIG_DIR": work / "jupyter-config",
              "JUPYTER_DATA_DIR": work / "jupyter-data", "MPLCONFIGDIR": work / "mpl"}
    if workspace is not None:
        values[WORK_ENV] = workspace
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        Path(value).mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(value)
    profile = values["IPYTHONDIR"] / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    # Kernels started for the build log only errors (not the transport notice) to the console.
    (profile / "ipython_kernel_config.py").write_text('c.IPKernelApp.log_level = "ERROR"\n')
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _prepare_out(out: Path, chapters: dict[int, Path]) -> None:
    if out.exists() and not out.is_dir():
        raise ValidationError(f"--out {str(out)!r} is a file.", fix="Pass a folder.")
    existing = list(out.iterdir()) if out.is_dir() else []
    unknown = sorted(p.name for p in existing if p.name not in _KNOWN_TOP
                     and not (p.is_dir() and re.fullmatch(r"ch\d\d", p.name)))
    if unknown:
        raise ValidationError(f"--out {str(out)!r} holds files that are not evidence: {unknown}.",
                              fix="Build into an empty folder or an earlier evidence pack.")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("notebooks", "html", *(p.name for p in out.glob("ch[0-9][0-9]"))):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in ("manifest.json", "manifest.sha256", "score.json", "SCORE.md"):
        (out / name).unlink(missing_ok=True)


def _load_answers(quiz_answers: str | os.PathLike[str] | None, out: Path) -> tuple[Any, str]:
    from .quiz import bank_names, load_bank

    if quiz_answers == "key":
        key = {}
        for name in bank_names():
            key.update({q.id: q.answer for q in load_bank(name).questions})
        return key, "key"
    path = Path(quiz_answers) if quiz_answers is not None else out / "quiz_answers.json"
    if quiz_answers is None and not path.exists():
        return {}, "none"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationError(f"--quiz-answers {str(path)!r} is not a readable JSON file ({exc}).",
                              fix="Pass a JSON object of question id -> letter, or 'key'.") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"--quiz-answers {str(path)!r} must hold a JSON object.",
                              fix="Write e.g. {\"q1.1\": \"B\"}.")
    return data, "file"


def _chapter_answers(chapter: int, answers: Mapping[str, Any]) -> dict[str, Any]:
    from .quiz import bank_names, load_bank

    ids: set[str] = set()
    for name in bank_names():
        bank = load_bank(name)
        if bank.chapter == chapter:
            ids.update(bank.ids)
    return {k: v for k, v in answers.items() if k in ids}


def _masked(per_chapter: Mapping[int, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Engines per chapter for the manifest, with any password in a URL masked."""
    from ..features.config import mask_url

    return {str(n): {k: mask_url(v) for k, v in chosen.items()} for n, chosen in per_chapter.items() if chosen}


def _status_line(status: Mapping[str, Any]) -> str:
    return (f"{status['status']} in {status['duration_s']} s"
            + (f": {status['error']}" if status["error"] else ""))


_HTML_LOCK = threading.Lock()  # one nbconvert export at a time (it is CPU-bound Python anyway)


def _crashed(task: tuple[Any, ...], exc: Exception) -> dict[str, Any]:
    """The status of a chapter whose driver itself raised (``run_chapter`` reports the rest)."""
    return {"notebook": Path(task[1]).name, "status": "failed",
            "error": f"{type(exc).__name__}: {str(exc)[:300]}", "duration_s": 0.0}


def run_chapter(number: int, notebook: str, executed_path: str, parameters: dict[str, Any],
                timeout: int, out: str) -> dict[str, Any]:
    """Execute one chapter notebook with papermill and export its HTML; returns its status.

    The kernel starts in the process's working directory (``build_evidence`` enters the
    notebooks folder once for all chapters: papermill's own ``cwd=`` changes the directory of
    the whole process, which chapters run from threads would race on). Every failure of the
    chapter is reported in the status, never raised.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from .html import notebook_to_html

    path, executed, root = Path(notebook), Path(executed_path), Path(out)
    executed.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    status: dict[str, Any] = {"notebook": path.name, "status": "ok", "error": None}
    try:
        papermill.execute_notebook(
            str(path), str(executed), parameters=parameters, kernel_name="python3",
            progress_bar=False, log_output=False,
            request_save_on_cell_execute=True, execution_timeout=timeout)
    except PapermillExecutionError as exc:
        status.update(status="failed", error=f"cell {exc.exec_count}: {exc.ename}: "
                      f"{str(exc.evalue)[:300]}")
    except (CellTimeoutError, DeadKernelError, RuntimeError, OSError) as exc:
        # timeouts, a kernel that died or never started: the chapter fails, the build goes on
        status.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
    marker = root / chapter_dirname(number) / "complete.json"
    if status["status"] == "ok" and not marker.exists():
        status.update(status="incomplete", error="ran to the end without rec.complete()")
    status["duration_s"] = round(time.perf_counter() - started, 1)
    if executed.exists():
        try:
            with _HTML_LOCK:
                notebook_to_html(executed, root / "html" / (path.stem + ".html"))
        except (EvidenceError, ValueError, OSError) as exc:
            status["html_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return status


def build_evidence(out: str | os.PathLike[str], *, notebooks: str | os.PathLike[str] | None = None,
                   chapters: list[int] | None = None, seed: int | None = None,
                   learner: str | None = None, scale: Any = None, quiz_answers: str | os.PathLike[str] | None = None,
                   workspace: str | os.PathLike[str] | None = None, timeout: int = 600,
                   grade: bool = True, rubric: str | os.PathLike[str] | None = None,
                   progress: Callable[[str], None] = print, jobs: int | None = None,
                   extra_parameters: Mapping[str, Any] | None = None,
                   engines: Mapping[str, Any] | None = None) -> BuildResult:
    """Execute chapter notebooks into an evidence pack at ``out``, write the manifest, grade.

    Parameters
    ----------
    out:
        The pack folder (replaced chapter by chapter; unknown files there are refused).
    notebooks:
        Folder of ``NN_title.ipynb`` notebooks (default: the checkout's ``notebooks/``).
    chapters:
        Chapter numbers to build (default: every notebook found).
    seed, scale:
        Passed as parameters when given; otherwise each notebook's defaults apply.
    learner:
        The learner id the pack is for: every chapter runs on that learner's world (the seed
        ``learners.derive_seed(learner)``) unless ``seed`` is given, which then wins and is
        recorded as an override. The manifest's parameters record ``learner``, the ``seed``
        used and its ``seed_source``.
    quiz_answers:
        A JSON file of question id -> letter, or ``'key'`` for the answer key (reference
        builds). Default: ``<out>/quiz_answers.json`` if the learner's form saved one.
    workspace:
        Where scratch workspaces go (default ``<out>/work``).
    timeout:
        Per-cell timeout in seconds.
    grade, rubric:
        Grade the pack afterwards (default) with ``rubric`` (default: the checkout's
        ``rubric.md``).
    progress:
        Called with one line per chapter start and end (default ``print``); with several
        jobs, one line per chapter as it finishes, led by a progress bar.
    jobs:
        Chapters run at the same time, each in its own kernel (default: the core count).
        The pack is the same as a serial build's except for measured durations.
    extra_parameters:
        More papermill parameters for every selected chapter, e.g. ``{"online_store":
        "redis://127.0.0.1:6379/0"}``; each notebook must declare them.
    engines:
        ``{"online_store": ..., "offline_engine": ...}``: each goes to the selected chapters
        whose parameters cell declares it (see ``evidence.engines``) and is recorded in the
        manifest's parameters.

    Returns
    -------
    BuildResult
        Per-chapter status (``ok``, ``failed``, ``incomplete``), error and duration, and the
        grade report. Chapter failures are reported here, never raised.

    Raises
    ------
    NotebookParameterError
        A notebook lacks its ``parameters`` cell or does not declare a passed parameter
        (checked for every notebook before any runs).
    EvidenceError, ValidationError
        Bad folders, chapters, seed, timeout or quiz-answers file (nothing written).
    """
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValidationError(f"--jobs must be a positive integer, got {jobs!r}.", fix="Pass e.g. --jobs 2.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValidationError(f"--seed must be an integer >= 0, got {seed!r}.", fix="Pass e.g. 7.")
    if learner is not None:
        validate_learner_id(learner, what="--learner")
    used_seed, seed_source = resolve_seed(seed, learner)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise ValidationError(f"--timeout must be a positive number of seconds, got {timeout!r}.",
                              fix="Pass e.g. --timeout 600.")
    if grade:  # a missing or malformed rubric is refused before any notebook runs
        from .rubric import default_rubric_path, load_rubric

        rubric = Path(rubric) if rubric is not None else default_rubric_path()
        load_rubric(rubric)
    extra = dict(extra_parameters) if isinstance(extra_parameters, Mapping) else extra_parameters
    managed = {"evidence_dir", "seed", "learner", "scale", "quiz_answers"}
    if extra is not None and (not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra)
                              or managed & set(extra)):
        raise ValidationError(f"extra_parameters must map parameter names to values, without "
                              f"{sorted(managed)}; got {extra_parameters!r}.",
                              fix="Pass e.g. {'online_store': 'sqlite'}; use the seed/scale/quiz_answers arguments.")
    folder = Path(notebooks).resolve() if notebooks is not None else default_notebooks_dir()
    selected = find_chapters(folder, chapters)
    root = Path(out).resolve()
    answers, source = _load_answers(quiz_answers, root)
    per_chapter = engine_plans(selected, engines)
    given = sorted({k for chosen in per_chapter.values() for k in chosen})
    if extra and set(extra) & set(given):
        raise ValidationError(f"{sorted(set(extra) & set(given))} given both as an engine and in extra_parameters.",
                              fix="Pass each engine once, with engines= (the CLI's --online-store/--offline-engine).")
    plans: dict[int, dict[str, Any]] = {}
    for number, path in selected.items():
        params: dict[str, Any] = {"evidence_dir": str(root), **(extra or {}), **per_chapter[number]}
        if seed is not None:
            params["seed"] = seed
        if learner is not None:
            params["learner"] = learner
        if scale is not None:
            params["scale"] = scale
        mine = _chapter_answers(number, answers)
        if mine:
            params["quiz_answers"] = mine
        check_parameters(path, params)
        plans[number] = params
    order = longest_first(selected, root)  # read the previous manifest before it is removed
    _prepare_out(root, selected)
    work = root / WORK_DIR / "_build"
    result = BuildResult(out=root)
    jobs = min(jobs, len(selected))
    tasks = [(number, str(path), str(root / "notebooks" / path.name), plans[number], timeout, str(root))
             for number, path in selected.items()]
    with _hermetic_env(work, Path(workspace).resolve() if workspace else None), chdir(folder):
        if jobs == 1:
            for position, task in enumerate(tasks, start=1):
                progress(f"[{position}/{len(tasks)}] chapter {task[0]}: {Path(task[1]).name} ...")
                status = run_chapter(*task)
                result.chapters[str(task[0])] = status
                progress(f"    {_status_line(status)}")
        else:
            progress(f"Building {len(tasks)} chapter(s) with {jobs} kernels at a time ...")
            done: dict[int, dict[str, Any]] = {}
            by_number = {task[0]: task for task in tasks}
            for task, status in run_side_by_side([by_number[n] for n in order], jobs,
                                                 lambda t: run_chapter(*t), _crashed):
                done[task[0]] = status
                bar = "#" * len(done) + "." * (len(tasks) - len(done))
                progress(f"[{bar}] {len(done)}/{len(tasks)} chapter {task[0]}: {_status_line(status)}")
            result.chapters = {str(n): done[n] for n in sorted(done)}
    write_manifest(root, chapters=result.chapters,
                   parameters={"seed": used_seed, "seed_source": seed_source, "learner": learner,
                               "scale": scale, "quiz_answers_source": source,
                               "timeout_s": timeout,
                               **({"engines": _masked(per_chapter)} if given else {})},
                   built_at=system_clock().isoformat(timespec="seconds"))
    if grade:
        from .grading import grade_pack

        result.report = grade_pack(root, rubric=rubric)
        progress(f"Graded: {result.report.points} / {result.report.max_points} points "
                 f"({result.report.percent} %); report in {root.name}/SCORE.md")
    return result
