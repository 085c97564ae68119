"""Process helpers for the benchmarks: a child process's peak memory, whole tree included."""

from __future__ import annotations

import subprocess
import time

import psutil

__all__ = ["tree_memory", "tree_rss", "wait_peak_memory", "wait_peak_rss"]


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


def tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """``(rss, pss)`` of ``proc`` and its descendants, in bytes.

    RSS counts a page shared by several processes (the same libraries mapped in every kernel)
    once per process; PSS (``/proc/PID/smaps_rollup``) splits it between them, so the PSS sum
    is the memory the tree takes from the machine.
    """
    rss = pss = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


def wait_peak_memory(proc: subprocess.Popen, interval_s: float = 0.1) -> tuple[int, int]:
    """Wait for ``proc`` to exit, sampling its tree; return the peak ``(rss, pss)`` sums in bytes."""
    watched, peak_rss, peak_pss = psutil.Process(proc.pid), 0, 0
    while proc.poll() is None:
        rss, pss = tree_memory(watched)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(interval_s)
    return peak_rss, peak_pss
