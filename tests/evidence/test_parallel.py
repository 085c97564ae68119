"""Chapters side by side in threads: the bound on running tasks, crash reports, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import nbformat
import psutil
from hypothesis import given, settings, strategies as st

from mlops_kit.evidence import build_evidence
from mlops_kit.evidence.parallel import run_side_by_side

from .test_build import NOTEBOOKS


@settings(max_examples=25, deadline=None)
@given(durations=st.lists(st.integers(0, 3), min_size=0, max_size=8), jobs=st.integers(1, 4),
       broken=st.sets(st.integers(0, 7)))
def test_every_task_reports_once_and_never_more_than_jobs_run_at_once(durations, jobs, broken):
    running, most, lock = [0], [0], threading.Lock()

    def run(task):
        index, ms = task
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(ms / 1000)
        with lock:
            running[0] -= 1
        if index in broken:
            raise RuntimeError(f"task {index} broke")
        return ("ok", index)

    tasks = list(enumerate(durations))
    results = dict(run_side_by_side(tasks, jobs, run, lambda task, exc: ("crashed", str(exc))))
    assert sorted(results) == tasks  # every task exactly once
    for (index, _), outcome in results.items():
        assert outcome == (("crashed", f"task {index} broke") if index in broken else ("ok", index))
    assert most[0] <= min(jobs, max(len(tasks), 1))


def test_tasks_start_in_the_order_given():
    started: list[int] = []
    list(run_side_by_side([3, 1, 2], 1, started.append, lambda task, exc: None))
    assert started == [3, 1, 2]


def test_a_parallel_build_leaves_the_working_directory_as_it_was(tmp_path):
    before = os.getcwd()
    result = build_evidence(tmp_path / "out", notebooks=NOTEBOOKS, grade=False, jobs=2,
                            progress=lambda line: None)
    assert os.getcwd() == before
    assert result.chapters["1"]["status"] == "ok"  # its quiz path is relative to the notebooks folder


def _sleeping_chapter(path, seconds: int) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('evidence_dir = "../evidence"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})")]
    nbformat.write(nb, str(path))


def _kernels(parent: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in parent.children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_ctrl_c_stops_a_parallel_build_and_its_kernels(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in ("01_sleep.ipynb", "02_sleep.ipynb"):
        _sleeping_chapter(notebooks / name, 120)
    code = ("import sys; from mlops_kit.evidence import build_evidence; "
            "build_evidence(sys.argv[1], notebooks=sys.argv[2], grade=False, jobs=2)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out"), str(notebooks)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        build = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        kernels: list[psutil.Process] = []
        while len(kernels) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            kernels = _kernels(build)
        assert len(kernels) == 2, "two kernels should be running side by side"
        time.sleep(1.0)  # both chapters are in their sleeping cell
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr.read()
        gone, alive = psutil.wait_procs(kernels, timeout=10)
        assert not alive, f"kernels still running after Ctrl-C: {[k.pid for k in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
