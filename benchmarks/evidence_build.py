"""Benchmark: what the evidence build adds on top of running a notebook with papermill.

Runs, interleaved ``--repeats`` times in this one process, (a) the baseline: papermill's
Python API on the fixture chapter notebook ``tests/evidence/fixtures/notebooks/01_pass.ipynb``
and (b) the kit's ``build_evidence`` on the same chapter (papermill + parameter checks +
offline HTML + manifest + grading). It then times grading the resulting pack against
hashing it alone. Reports medians and ratios; writes them into RESULTS.md.

    python benchmarks/evidence_build.py                 # 3 repeats; updates RESULTS.md
    python benchmarks/evidence_build.py --repeats 1 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- evidence:start -->", "<!-- evidence:end -->"
FIXTURES = ROOT / "tests" / "evidence" / "fixtures" / "notebooks"


def _median_time(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import papermill

    from mlops_kit.evidence import build_evidence, grade_pack, verify_pack

    scratch = Path(tempfile.mkdtemp(prefix="bench-evidence-"))
    source = FIXTURES / "01_pass.ipynb"
    raw_times, kit_times = [], []
    for i in range(args.repeats):
        ev = scratch / f"raw{i}"
        started = time.perf_counter()
        papermill.execute_notebook(str(source), str(scratch / f"raw{i}.ipynb"),
                                   parameters={"evidence_dir": str(ev)}, kernel_name="python3",
                                   cwd=str(FIXTURES), progress_bar=False)
        raw_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        build_evidence(scratch / f"kit{i}", notebooks=FIXTURES, chapters=[1],
                       progress=lambda line: None)
        kit_times.append(time.perf_counter() - started)
    pack = scratch / "kit0"
    files = len(list(p for p in pack.rglob("*") if p.is_file() and "work" not in p.parts))
    hash_s = _median_time(lambda: verify_pack(pack), 5)
    grade_s = _median_time(lambda: grade_pack(pack, write=False), 5)
    shutil.rmtree(scratch, ignore_errors=True)

    raw, kit = statistics.median(raw_times), statistics.median(kit_times)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"`python benchmarks/evidence_build.py --repeats {args.repeats}` (medians; recorded "
        f"{date.today().isoformat()}). Shared machine, load average {load} at the end: read "
        "the ratios, not the absolute seconds.",
        "",
        f"- machine: {platform.platform()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, papermill {papermill.__version__}",
        f"- notebook: the fixture chapter `01_pass.ipynb` (10 cells, one figure, a quiz); "
        f"pack of {files} files",
        "",
        "| step | median | ratio |",
        "|---|---:|---:|",
        f"| papermill Python API alone (baseline) | {raw:.2f} s | 1.00x |",
        f"| `build_evidence` (papermill + HTML + manifest + grade) | {kit:.2f} s | {kit / raw:.2f}x |",
        f"| hash-verify the pack (`verify_pack`) | {hash_s * 1000:.1f} ms | |",
        f"| grade the pack (`grade_pack`, all criteria, hashing included) | "
        f"{grade_s * 1000:.1f} ms | {grade_s / hash_s:.1f}x of hashing |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.no_write:
        return
    block = f"{START}\n## Evidence build and grading (`benchmarks/evidence_build.py`)\n\n{text}\n{END}"
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if START in current:
        current = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, current,
                         flags=re.S)
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(current, encoding="utf-8")


if __name__ == "__main__":
    main()
