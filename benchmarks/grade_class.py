"""Benchmark: grading a class of 60 submissions made from three real learner packs.

Builds three six-chapter packs with ``--learner`` (cached under ``build/bench-class-packs/``
and reused when present and intact), then makes a class folder: the three honest packs,
renamed copies of them under other ids (one of them tampered: a saved table edited), a
corrupt zip and a roster id without a submission: 60 roster ids, 59 submissions. Copies are
hard links where the file system allows (the grader never writes to a submission; the
tampered file is replaced, not edited in place).

Measured:
- per pack, in this process: CPU seconds of ``grade_submission`` (grader + world check) and
  of ``check_world`` alone, on a fresh seed each time (the cache helps only within a pack);
- the class, as ``mlops-kit grade-class`` in a subprocess: wall time, CPU seconds of the
  whole process tree (``RUSAGE_CHILDREN``) and peak tree RSS sampled every 100 ms, with
  ``--jobs 1`` and ``--jobs 2``, for the first 20 roster ids and for all 60.

    flock /tmp/bench.lock python benchmarks/grade_class.py --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _procs import wait_peak_rss

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("mlops-kit")
# The first three ids of tests/evidence/learner_packs.py: packs built there can seed the cache.
LEARNERS = ("dl8x856w", "n2t011vi", "tckda6rl")


def _intact(pack: Path, learner: str) -> bool:
    from mlops_kit.evidence import verify_pack

    try:
        manifest = json.loads((pack / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    # a chapter that failed for this learner still leaves a pack to grade: the cost is what is measured
    return manifest["parameters"].get("learner") == learner and len(manifest["chapters"]) == 6 and verify_pack(pack) == []


def packs(cache: Path, learners: tuple[str, ...]) -> dict[str, Path]:
    """Learner -> a real pack built for them, from the cache or built now (``--jobs 2``)."""
    found = {}
    for learner in learners:
        pack = cache / learner
        if not _intact(pack, learner):
            shutil.rmtree(pack, ignore_errors=True)
            started = time.perf_counter()
            subprocess.run([str(CLI), "evidence", "build", "--out", str(pack), "--learner", learner,
                            "--quiz-answers", "key", "--jobs", "2"], cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
            print(f"built {learner} in {time.perf_counter() - started:.0f} s", flush=True)
        found[learner] = pack
    return found


def _copy(src: Path, dst: Path) -> None:
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("work"), copy_function=link)


def make_class(folder: Path, sources: dict[str, Path], size: int) -> list[str]:
    """``size`` roster ids: the honest packs, renamed copies (one tampered), a corrupt zip, one missing."""
    folder.mkdir(parents=True)
    honest = list(sources)
    roster = honest + [f"s{n:03d}" for n in range(1, size - len(honest) + 1)]
    for position, learner in enumerate(roster):
        if learner in sources:
            _copy(sources[learner], folder / learner)
        elif learner == roster[-1]:
            continue                                                   # on the roster, no submission
        elif learner == roster[-2]:
            (folder / f"{learner}.zip").write_bytes(b"PK\x03\x04 not a zip")
        else:
            _copy(sources[honest[position % len(honest)]], folder / learner)
    tampered = folder / roster[len(honest)] / "ch02" / "profile_history.csv"
    text = tampered.read_text()
    tampered.unlink()                                                  # break the hard link, then edit
    tampered.write_text(text.replace(",active,", ",closed,", 1))
    (folder / "roster.csv").write_text("id,name,section\n" + "".join(f"{x},{x},A\n" for x in roster))
    return roster


def grade_class_run(subs: Path, out: Path, jobs: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen([str(CLI), "grade-class", str(subs), "--out", str(out), "--jobs", str(jobs)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = wait_peak_rss(proc)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    flags = json.loads((out / "flags.json").read_text())
    return {"wall": wall, "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "peak": peak, "exit": proc.returncode, "flags": {k: len(v) for k, v in flags.items() if v}}


def per_pack(subs: Path, roster: list[str], scratch: Path, n: int) -> dict:
    """CPU seconds per pack in this process: the whole grade_submission, and check_world alone."""
    from mlops_kit.evidence import check_world
    from mlops_kit.evidence.gradebook import grade_submission
    from mlops_kit.evidence.rubric import default_rubric_path

    folders = [x for x in roster if (subs / x).is_dir()][: n + 1]
    grade_submission(folders[0], str(subs / folders[0]), "folder", str(default_rubric_path()), str(scratch))  # warm-up
    grading, world = [], []
    for learner in folders[1:]:
        t = time.process_time()
        grade_submission(learner, str(subs / learner), "folder", str(default_rubric_path()), str(scratch))
        grading.append(time.process_time() - t)
        t = time.process_time()
        check_world(subs / learner, learner + "-x")        # another fresh seed: nothing cached
        world.append(time.process_time() - t)
    return {"grade": statistics.median(grading), "grade_max": max(grading),
            "world": statistics.median(world), "world_max": max(world), "n": len(grading)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--per-pack", type=int, default=10, help="packs timed one by one in-process")
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "bench-class-packs")
    args = parser.parse_args()
    load_start = os.getloadavg()
    sources = packs(args.cache, LEARNERS)
    work = ROOT / "build" / "bench-class-work"
    shutil.rmtree(work, ignore_errors=True)
    rows = []
    try:
        classes = {size: make_class(work / f"class{size}", sources, size) for size in (20, 60)}
        with tempfile.TemporaryDirectory(prefix="grade-class-bench-") as tmp:
            pp = per_pack(work / "class60", classes[60], Path(tmp) / "pp", args.per_pack)
            print(f"per pack (median of {pp['n']}): grading {pp['grade']:.2f} s CPU (max {pp['grade_max']:.2f}), "
                  f"world check {pp['world']:.2f} s CPU (max {pp['world_max']:.2f})", flush=True)
            for r in range(args.repeats):
                for size, jobs in ((20, 2), (60, 1), (60, 2)):
                    res = grade_class_run(work / f"class{size}", Path(tmp) / f"book-{size}-{jobs}-{r}", jobs)
                    rows.append({"size": size, "jobs": jobs, **res})
                    print(f"class {size}, jobs {jobs}: {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, "
                          f"peak {res['peak'] / 2**20:.0f} MiB, exit {res['exit']}, flags {res['flags']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load at start {load_start}, at end {os.getloadavg()}")
    print("| submissions | jobs | median wall s | CPU s (tree) | CPU s per submission | peak tree RSS MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, jobs in ((20, 2), (60, 1), (60, 2)):
        mine = [r for r in rows if (r["size"], r["jobs"]) == (size, jobs)]
        wall, cpu = statistics.median(r["wall"] for r in mine), statistics.median(r["cpu"] for r in mine)
        print(f"| {size} | {jobs} | {wall:.1f} | {cpu:.1f} | {cpu / (size - 1):.2f} | "
              f"{max(r['peak'] for r in mine) / 2**20:.0f} |")


if __name__ == "__main__":
    main()
