"""Benchmark: the full evidence pack (six chapters, HTML, manifest, grade), serial vs parallel.

Runs ``mlops-kit evidence build --quiz-answers key`` on the course notebooks in a subprocess
with ``--jobs 1`` and ``--jobs N`` (alternating, ``--repeats`` each) and samples, every
100 ms, the memory of the whole process tree (the build, every kernel, the subprocesses the
chapters start): the RSS sum, which counts shared library pages once per process, and the PSS
sum, which does not. Reports the median wall time, both peaks and the per-chapter durations
the manifest recorded; the serial build is the baseline. ``--write-durations`` stores the
serial build's median per-chapter seconds in ``notebooks/durations.json``, the order a fresh
parallel build starts chapters in (``mlops_kit.evidence.schedule``).

    python benchmarks/evidence_pack.py --repeats 2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _procs import wait_peak_memory

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("mlops-kit")


def build(jobs: int, out: Path) -> dict:
    env = dict(os.environ)
    started = time.perf_counter()
    proc = subprocess.Popen([str(CLI), "evidence", "build", "--out", str(out), "--quiz-answers", "key",
                             "--jobs", str(jobs)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak, peak_pss = wait_peak_memory(proc)
    wall = time.perf_counter() - started
    output = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"build failed (jobs={jobs}):\n{output}")
    manifest = json.loads((out / "manifest.json").read_text())
    score = json.loads((out / "score.json").read_text())
    return {"wall": wall, "peak": peak, "pss": peak_pss, "points": f"{score['points']:g}/{score['max_points']}",
            "chapters": {n: c["duration_s"] for n, c in manifest["chapters"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--write-durations", action="store_true",
                        help="store the serial median per-chapter seconds in notebooks/durations.json")
    args = parser.parse_args()
    runs: dict[int, list[dict]] = {1: [], args.jobs: []}
    with tempfile.TemporaryDirectory(prefix="pack-bench-") as tmp:
        for r in range(args.repeats):
            for jobs in (1, args.jobs):
                out = Path(tmp) / f"pack-{jobs}-{r}"
                runs[jobs].append(build(jobs, out))
                print(f"jobs={jobs} run {r + 1}: {runs[jobs][-1]['wall']:.1f} s, "
                      f"peak RSS {runs[jobs][-1]['peak'] / 2**20:.0f} MiB, PSS {runs[jobs][-1]['pss'] / 2**20:.0f} MiB, "
                      f"{runs[jobs][-1]['points']}", flush=True)
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    print("| jobs | median wall s | peak tree RSS MiB (max) | peak tree PSS MiB (max) | ratio to serial | per-chapter s (last run) |")
    print("|---:|---:|---:|---:|---:|---|")
    serial = statistics.median(r["wall"] for r in runs[1])
    for jobs, rs in runs.items():
        wall = statistics.median(r["wall"] for r in rs)
        print(f"| {jobs} | {wall:.1f} | {max(r['peak'] for r in rs) / 2**20:.0f} | "
              f"{max(r['pss'] for r in rs) / 2**20:.0f} | {wall / serial:.2f}x | "
              f"{', '.join(f'{n}: {s}' for n, s in sorted(rs[-1]['chapters'].items()))} |")
    if args.write_durations:
        chapters = sorted({n for r in runs[1] for n in r["chapters"]}, key=int)
        medians = {n: round(statistics.median(r["chapters"][n] for r in runs[1]), 1) for n in chapters}
        target = ROOT / "notebooks" / "durations.json"
        target.write_text(json.dumps(medians, indent=1) + "\n")
        print(f"wrote {target.relative_to(ROOT)}: {medians}")


if __name__ == "__main__":
    main()
