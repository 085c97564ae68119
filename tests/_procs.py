"""Run worker functions in child processes (forkserver) and collect what they report (concurrency tests).

Each worker is called as ``fn(*args, out)`` and puts ``(name, kind, payload)`` tuples on the
``out`` queue (``kind`` "error" for an exception with its traceback).
"""

from __future__ import annotations

import multiprocessing
import queue as queue_mod

CTX = multiprocessing.get_context("forkserver")  # no fork of a parent with running threads


def run(targets: list[tuple], timeout: float = 120) -> tuple[dict[str, list], list[int]]:
    """Start ``(function, args)`` processes (``out`` queue appended); collect their reports."""
    out = CTX.Queue()
    procs = [CTX.Process(target=fn, args=(*args, out)) for fn, args in targets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
    reports: dict[str, list] = {}
    while True:
        try:
            name, kind, payload = out.get(timeout=0.5)
        except queue_mod.Empty:
            break
        reports.setdefault(kind, []).append((name, payload))
    return reports, [p.exitcode for p in procs]


def no_errors(reports: dict[str, list]) -> None:
    """Fail the test with every worker's traceback when any worker reported an error."""
    assert not reports.get("error"), "\n\n".join(f"{n}: {e}" for n, e in reports["error"])
