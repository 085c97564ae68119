"""Run chapters side by side: one driver thread per running chapter, each with its own kernel.

A chapter's work happens in its kernel, a process of its own; the build's side of it (relaying
messages, saving the executed notebook, exporting HTML) is light. Driving the kernels from
threads of the build's process instead of a pool of worker processes saves each worker's
imports of papermill, nbformat and nbconvert (about 4 s of CPU and 190 MiB resident per worker,
measured; see ``benchmarks/RESULTS.md``).

Two papermill habits decide how: it changes the process's working directory while a notebook
runs (``cwd=``), which threads would race on, so the build enters the notebooks folder once for
every chapter and passes no ``cwd``; and nothing can stop a thread from outside, so the threads
are daemons: on Ctrl-C the main thread's ``KeyboardInterrupt`` ends the process, and every kernel
(which polls its parent process) exits within a second.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["run_side_by_side"]

T = TypeVar("T")
R = TypeVar("R")


def run_side_by_side(tasks: Sequence[T], jobs: int, run: Callable[[T], R],
                     crashed: Callable[[T, Exception], R]) -> Iterator[tuple[T, R]]:
    """Run ``run(task)`` for every task, at most ``jobs`` at a time, in the order given.

    Yields ``(task, result)`` as each finishes. A task whose ``run`` raises yields
    ``crashed(task, exc)`` instead, so one broken task never hides the others.
    """
    todo: queue.SimpleQueue[T] = queue.SimpleQueue()
    for task in tasks:
        todo.put(task)
    finished: queue.SimpleQueue[tuple[T, R]] = queue.SimpleQueue()

    def drive() -> None:
        while True:
            try:
                task = todo.get_nowait()
            except queue.Empty:
                return
            try:
                result = run(task)
            except Exception as exc:  # reported as the task's result, never lost
                result = crashed(task, exc)
            finished.put((task, result))

    for index in range(min(jobs, len(tasks))):
        threading.Thread(target=drive, name=f"mlops-kit-chapter-{index + 1}", daemon=True).start()
    for _ in range(len(tasks)):
        item = None
        while item is None:  # short waits: Ctrl-C reaches the main thread between them
            try:
                item = finished.get(timeout=0.5)
            except queue.Empty:
                pass
        yield item
