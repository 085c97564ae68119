"""Benchmark: generating the seeded data world and writing it to Parquet.

Each size runs in a fresh subprocess (so peak RSS is that size's alone), ``--repeats``
times, and reports the median generation time, the median Parquet write time and the peak
RSS. A baseline measured in the same subprocess gives the floor: drawing nine random
columns of the same length and sorting one of them (the least any generator of this
table must do). Target: 10^7 transactions generated in <= 60 s on 2 cores.

    python benchmarks/datagen.py                       # 1e5, 1e6, 1e7; updates RESULTS.md
    python benchmarks/datagen.py --sizes 100000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- datagen:start -->", "<!-- datagen:end -->"
TARGET_S = 60.0


def _child(n: int, repeats: int) -> dict:
    """Run inside the subprocess: time baseline, generation and write for ``n`` transactions."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from mlops_kit.datasets import Scenario, generate_world

    scenario = Scenario.default().with_scale(n / Scenario.default().n_transactions)
    base, gen, write, sizes = [], [], [], {}
    for r in range(repeats):  # interleaved: baseline, generation, write
        t0 = time.perf_counter()
        rng = np.random.default_rng(r)
        cols = [rng.random(n) for _ in range(9)]
        np.argsort((cols[0] * 1e12).astype(np.int64), kind="stable")
        base.append(time.perf_counter() - t0)
        del cols
        t0 = time.perf_counter()
        world = generate_world(scenario, seed=r)
        gen.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory(prefix="datagen-bench-") as tmp:
            t0 = time.perf_counter()
            world.to_parquet(tmp)
            write.append(time.perf_counter() - t0)
            sizes = {p.name: p.stat().st_size for p in Path(tmp).glob("*.parquet")}
        rows = {name: len(frame) for name, frame in world.tables().items()}
        del world
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "base": statistics.median(base), "gen": statistics.median(gen),
            "write": statistics.median(write), "gen_all": gen, "peak_rss_mb": peak_mb,
            "parquet_mb": sum(sizes.values()) / 2**20, "rows": rows, "repeats": repeats}


def _machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy, pandas, pyarrow  # noqa: E401

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.platform()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {numpy.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, "
            f"load average {load} at start")


def _table(results: list[dict]) -> str:
    lines = ["| transactions | users | merchants | profile rows | runs | baseline s | generate s (median) "
             "| ratio to baseline | write Parquet s | Parquet MB | peak RSS MB | target |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        rows = r["rows"]
        target = (f"{'met' if r['gen'] <= TARGET_S else 'MISSED'} (<= {TARGET_S:.0f} s)"
                  if r["n"] >= 10_000_000 else "")
        lines.append(
            f"| {rows['transactions']:,} | {rows['users']:,} | {rows['merchants']:,} | {rows['profiles']:,} "
            f"| {r['repeats']} | {r['base']:.2f} | {r['gen']:.2f} | {r['gen'] / r['base']:.1f}x "
            f"| {r['write']:.2f} | {r['parquet_mb']:.1f} | {r['peak_rss_mb']:,.0f} | {target} |")
    return "\n".join(lines)


def _write_section(text: str) -> None:
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{text.rstrip()}\n{END}"
    if START in current and END in current:
        updated = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, current, flags=re.S)
    else:
        updated = current.rstrip() + "\n\n" + block + "\n"
    tmp = RESULTS.with_suffix(".md.tmp-datagen")
    tmp.write_text(updated, encoding="utf-8")
    os.replace(tmp, RESULTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.repeats)))
        return 0
    machine = _machine()
    print(machine)
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--repeats", str(args.repeats)],
                             check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"n={n:>11,}  baseline {result['base']:.2f}s  generate {result['gen']:.2f}s "
              f"(runs {', '.join(f'{g:.2f}' for g in result['gen_all'])})  write {result['write']:.2f}s  "
              f"peak RSS {result['peak_rss_mb']:,.0f} MB", flush=True)
    table = _table(results)
    print(table)
    if not args.no_write:
        _write_section(
            "## Data generation (`benchmarks/datagen.py`)\n\n"
            f"`python benchmarks/datagen.py --sizes {args.sizes} --repeats {args.repeats}` "
            f"(recorded {date.today().isoformat()}). Each size runs in its own subprocess; times are "
            "medians over the runs (seeds 0..runs-1) of the default scenario scaled to the size. "
            "The baseline draws nine random columns of the same length and sorts one (a floor for "
            "any generator of this table). Generation and the Parquet write (five files and "
            "`world.json`, snappy) are timed separately; peak RSS covers the whole subprocess.\n\n"
            f"- machine: {machine}\n\n{table}\n")
        print(f"updated {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
