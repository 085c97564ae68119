"""Process helpers for the benchmarks: a child process's peak memory, whole tree included."""

from __future__ import annotations

import subprocess
import time

import psutil

__all__ = ["tree_rss", "wait_peak_rss"]


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of ``proc`` and all its descendants, in bytes (processes that exit are skipped)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def wait_peak_rss(proc: subprocess.Popen, interval_s: float = 0.1) -> int:
    """Wait for ``proc`` to exit, sampling its tree's RSS every ``interval_s``; return the peak in bytes."""
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(interval_s)
    return peak
