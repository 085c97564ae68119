"""Spark failures as ``OfflineEngineError``: unreadable offline files and failed jobs.

Two layers. Before a job is submitted, ``check_readable`` opens every committed file the job
will read (from the driver): a file removed or made unreadable after the manifest listed it
is refused by name, before anything runs. A file the driver can read but the executors
cannot (a path not shared with the workers) or a file that turns out to be corrupt is only
seen inside the job: ``spark_failures`` turns the Spark/Py4J exception into an
``OfflineEngineError`` with ``reason="path-unreadable"`` (Spark could not open a path) or
``reason="job-failed"`` (anything else, e.g. every attempt of a task failed because its
workers were lost). Callers write nothing online before the job has finished, so a failure
leaves the online store and the watermark as they were.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import OfflineEngineError

__all__ = ["check_readable", "spark_failures", "is_spark_error"]

_PATH_MARKERS = ("PATH_NOT_FOUND", "FileNotFoundException", "AccessDeniedException",
                 "Permission denied", "No such file or directory")
_PATH_FIX = ("Restore the file, or drop it from the manifest with store.forget_offline_files([path]) "
             "(mlops-kit doctor WORKSPACE lists every missing file); on a cluster, put the workspace "
             "on storage every worker can read at the same path.")


def check_readable(files: Sequence[Path], what: str) -> None:
    """Raise ``OfflineEngineError(reason="path-unreadable")`` for the first file the driver cannot read."""
    for path in files:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            cause = "it is missing" if not os.path.exists(path) else f"it cannot be opened ({exc.strerror})"
            raise OfflineEngineError(
                f"{what}: the committed offline file {str(path)!r} cannot be read: {cause}.",
                fix=_PATH_FIX, reason="path-unreadable", path=str(path)) from None


def is_spark_error(exc: BaseException) -> bool:
    """True for the exceptions a Spark job raises in the driver (PySpark or Py4J errors)."""
    try:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException
    except ImportError:  # pragma: no cover - pyspark is present whenever a job ran
        return False
    return isinstance(exc, (PySparkException, Py4JError))


def _summary(text: str) -> str:
    """The most telling line: a Python worker's exception if there is one, else the first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    python = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", line)
              and not line.startswith(("org.", "java.", "py4j.", "Py4J"))]
    if "Traceback" in text and python:
        head = python[-1]
    else:  # a Py4J error's first line only names the call; the Java exception follows it
        useful = [line for line in lines if not line.startswith(("An error occurred while calling", "at "))]
        head = useful[0] if useful else lines[0] if lines else "no message"
    return head if len(head) <= 300 else head[:297] + "..."


@contextmanager
def spark_failures(what: str, files: Sequence[Path] = ()) -> Iterator[None]:
    """Translate a Spark job's failure inside the block into an ``OfflineEngineError``."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, OfflineEngineError) or not is_spark_error(exc):
            raise
        text = str(exc)
        path = next((str(p) for p in files if str(p) in text), None)
        if any(marker in text for marker in _PATH_MARKERS):
            shown = f" {path!r}" if path else ""
            raise OfflineEngineError(
                f"{what}: Spark could not read the offline file{shown} ({_summary(text)}).",
                fix=_PATH_FIX, reason="path-unreadable", path=path) from None
        shown = f" reading {path!r}" if path else ""
        raise OfflineEngineError(
            f"{what}: the Spark job failed{shown} ({_summary(text)}).",
            fix="Check that the workers are alive and can read the workspace (mlops-kit doctor WORKSPACE "
                "checks the files), then run it again: nothing was written online.",
            reason="job-failed", path=path) from None
