"""Point-in-time join benchmark: the Spark engine (local[2]) against the DuckDB engine.

Sizes are ``ENTITY_ROWS:FEATURE_ROWS`` pairs (``k``/``M`` suffixes), one view of 5 float features
with a created column and a TTL of 48 h, ``ENTITY_ROWS / 10`` entities, feature rows spread
over 30 days. Each size runs in its own subprocess (a fresh JVM, so peak memory is that size's
alone). The data comes from a seeded generator and is written in the kit's layout by
``FeatureStore.ingest`` in chunks; generation and ingest are timed apart from the joins.

Sizes up to ``--duckdb-max`` feature rows: both engines on the same store, one warm-up then
``--runs`` interleaved runs of ``get_historical_features`` each, medians, the two results
compared with ``pandas.testing.assert_frame_equal`` (exact), ratio Spark / DuckDB.
Larger sizes: Spark only, the engine's result DataFrame written to Parquet (not collected to
the driver), ``--big-runs`` runs. Peak memory of the Python process and of the JVM (in local
mode the executors run inside the driver JVM) is sampled every 100 ms and read from VmHWM.

    python benchmarks/pit_join_spark.py --sizes 100k:1M,1M:10M,10M:100M --write-results
    python benchmarks/pit_join_spark.py --sizes 1k:10k --runs 1          # smoke check
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import warnings
from datetime import date
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlops_kit.errors import LateDataWarning  # noqa: E402
from mlops_kit.features import FeatureStore  # noqa: E402

from _spark_bench_world import (FEATURES, build_store, entity_rows, label,  # noqa: E402
                               parse_count, parse_sizes)

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MARK_START, MARK_END = "<!-- pit-spark:start -->", "<!-- pit-spark:end -->"
REFS = [f"user_stats:{c}" for c in FEATURES]
CORES = 2  # local[2]


def vm_hwm(pid: int) -> int:
    """Peak resident set (VmHWM) of a live process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """RSS of this process and of its JVM every 100 ms; peaks per phase."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.java: psutil.Process | None = None
        self.phase = "generate"
        self.peaks: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def find_java(self) -> None:
        found = [p for p in self.me.children(recursive=True) if p.name() == "java"]
        self.java = found[0] if found else None

    def _sample(self) -> None:
        peak = self.peaks.setdefault(self.phase, {"python": 0, "java": 0})
        peak["python"] = max(peak["python"], self.me.memory_info().rss)
        if self.java is not None:
            try:
                peak["java"] = max(peak["java"], self.java.memory_info().rss)
            except psutil.Error:
                pass

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._sample()
        hwm = {"python": vm_hwm(self.me.pid), "java": vm_hwm(self.java.pid) if self.java else 0}
        return {"phases": self.peaks, "vmhwm": hwm}


# -- engines ------------------------------------------------------------------------------------
def spark_session(driver_memory: str, shuffle_partitions: int, local_dir: Path):
    """local[2] with the kit's settings, plus driver memory, shuffle partitions and a scratch dir."""
    from pyspark.sql import SparkSession

    from mlops_kit.features.spark_engine import SPARK_CONF, check_java

    check_java()
    builder = SparkSession.builder.master("local[2]").appName("pit-join-spark-bench")
    conf = dict(SPARK_CONF, **{"spark.driver.memory": driver_memory, "spark.local.dir": str(local_dir),
                               "spark.sql.shuffle.partitions": str(shuffle_partitions)})
    for key, value in conf.items():
        builder = builder.config(key, value)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python tasks use this interpreter
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_to_parquet(store: FeatureStore, entity_df: pd.DataFrame, out: Path, via: str) -> int:
    """The Spark engine's join plan for ``entity_df``, written to Parquet on the executors.

    Builds the same request ``get_historical_features`` builds and the same DataFrame
    ``run_spark_pit_join`` builds, but writes it instead of collecting it through Arrow.
    With ``via='retrieval'`` it calls ``historical_retrieval(...).to_parquet`` instead.
    Returns the rows written (from the Parquet footers).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlops_kit.features.pit import ViewRequest
    from mlops_kit.features.spark_engine import _source, _view_columns
    from mlops_kit.features.validation import prepare_entity_df

    view = store.get_feature_view("user_stats")
    entity = prepare_entity_df(entity_df, ["user_id"], {"user_id": "int64"}.get)
    bounds = pc.min_max(pc.cast(entity.column("event_timestamp"), "int64")).as_py()
    req = ViewRequest(view=view, features=tuple(FEATURES), out_names=tuple(FEATURES),
                      files=store._files_for(view, bounds["min"], bounds["max"]),
                      key_types={"user_id": "int64"}, has_ties=store.meta.has_ties(view.name, view.version))
    spark = store.config.offline.session
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if via == "retrieval":  # the public API: RetrievalJob.to_parquet, written by the executors
        store.historical_retrieval(entity_df, REFS).to_parquet(out / "result")
        return sum(pq.ParquetFile(f).metadata.num_rows for f in (out / "result").glob("*.parquet"))
    pq.write_table(entity, out / "entity.parquet")
    frame = spark.read.parquet(str(out / "entity.parquet"))
    result = frame.select("__row_id").join(_view_columns(frame, _source(spark, req), 0, req, False),
                                           "__row_id", "left")
    result.write.mode("overwrite").parquet(str(out / "result"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in (out / "result").glob("*.parquet"))


def timed(fn):
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LateDataWarning)
        value = fn()
    return time.perf_counter() - t, value


def run_one(args: argparse.Namespace) -> dict:
    n_ent_rows, n_feat = parse_sizes(args.one)[0]
    n_entities = max(1, n_ent_rows // 10)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the kit binds the driver to loopback too
    compare = n_feat <= args.duckdb_max
    sampler = Sampler()
    work = Path(args.work_dir) / f"{label(n_ent_rows)}x{label(n_feat)}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = {"entity_rows": n_ent_rows, "feature_rows": n_feat, "entities": n_entities, "compare": compare,
           "disk_free_gb_before": shutil.disk_usage(work).free / 2**30}
    out.update(build_store(work / "store", n_entities, n_feat, args.seed, args.chunk_rows))
    t = time.perf_counter()
    entity_df = entity_rows(n_entities, n_ent_rows, args.seed)
    out["generate_s"] += time.perf_counter() - t
    partitions = args.shuffle_partitions or (4 if n_feat <= 10_000_000 else n_feat // 2_000_000)
    sampler.phase = "spark session"
    out["spark_start_s"], session = timed(lambda: spark_session(args.driver_memory, partitions, work / "spark-local"))
    sampler.find_java()
    out["shuffle_partitions"] = partitions
    spark_store = FeatureStore(work / "store", offline_engine=session)
    if compare:
        duck_store = FeatureStore(work / "store")
        runs: dict[str, list[float]] = {"duckdb": [], "spark": []}
        results: dict[str, pd.DataFrame] = {}
        for i in range(args.warmup + args.runs):
            for name, store in (("duckdb", duck_store), ("spark", spark_store)):
                sampler.phase = name
                seconds, results[name] = timed(lambda: store.get_historical_features(entity_df, REFS))
                if i >= args.warmup:
                    runs[name].append(seconds)
            pd.testing.assert_frame_equal(results["duckdb"], results["spark"], check_exact=True)
        out["runs"] = runs
        out["identical"] = True  # assert_frame_equal above raised otherwise
        out["with_value"] = int(results["spark"]["f0"].notna().sum())
        duck_store.close()
    sampler.phase = "spark parquet"
    parquet_runs = []
    for _ in range(args.parquet_runs if compare else args.big_runs):
        seconds, rows = timed(lambda: spark_to_parquet(spark_store, entity_df, work / "spark-out", args.parquet_via))
        assert rows == n_ent_rows, f"Spark wrote {rows} rows, expected {n_ent_rows}"
        parquet_runs.append(seconds)
    out["parquet_runs"] = parquet_runs
    out["disk_free_gb_after"] = shutil.disk_usage(work).free / 2**30
    out["memory"] = sampler.stop()
    out["java_xmx"] = next((a for a in sampler.java.cmdline() if a.startswith("-Xmx")), None) if sampler.java else None
    spark_store.close()
    session.stop()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return out


# -- report -------------------------------------------------------------------------------------
def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    import duckdb
    import pyspark

    return {"platform": platform.platform(), "cpu": cpu, "nproc": os.cpu_count(),
            "ram_gib": psutil.virtual_memory().total / 2**30, "python": platform.python_version(),
            "pyspark": pyspark.__version__, "duckdb": duckdb.__version__, "pandas": pd.__version__,
            "java": java.strip()}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


def per_core(rows: int, seconds: float) -> str:
    return f"{rows / seconds / CORES:,.0f}"


def report(cmd: str, info: dict, load0: str, load1: str, sizes: list[dict], args) -> str:
    lines = [MARK_START, "## Point-in-time join on Spark (`benchmarks/pit_join_spark.py`)", "",
             f"`{cmd}` (recorded {date.today().isoformat()}); the script holds `/tmp/bench.lock` (flock) for the whole run.",
             "", f"- machine: {info['platform']}, {info['cpu']}, nproc {info['nproc']}, "
             f"{info['ram_gib']:.1f} GiB RAM, no swap",
             f"- versions: Python {info['python']}, pyspark {info['pyspark']}, {info['java']}, "
             f"duckdb {info['duckdb']}, pandas {info['pandas']}",
             f"- load at start: `{load0}`", f"- load at end: `{load1}`",
             f"- Spark: local[2], the kit's `SPARK_CONF` plus `spark.driver.memory={args.driver_memory}`, "
             "`spark.local.dir` under the work dir, shuffle partitions as listed; the session is passed "
             "to the kit as `FeatureStore(root, offline_engine=session)`. In local mode the executors "
             "are threads of the driver JVM: the JVM figure is driver and executors together.",
             f"- Spark -> Parquet: `--parquet-via {args.parquet_via}`",
             "- data: ENTITY_ROWS / 10 entities, 5 float features, a created column, TTL 48 h, 30 days; "
             f"seed {args.seed}; ingested through `FeatureStore.ingest` in chunks of {args.chunk_rows:,} rows "
             "(30 daily Parquet files per chunk)", ""]
    lines += ["| entity rows x feature rows | generate s | ingest s | Parquet files / MB | DuckDB median s "
              "| Spark median s | Spark / DuckDB | identical | Spark -> Parquet s | runs |",
              "|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for s in sizes:
        name = f"{label(s['entity_rows'])} x {label(s['feature_rows'])}"
        files = f"{s['files']} / {s['parquet_mb']:,.0f}"
        pq_s = ", ".join(f"{v:.2f}" for v in s["parquet_runs"])
        if s["compare"]:
            d, k = statistics.median(s["runs"]["duckdb"]), statistics.median(s["runs"]["spark"])
            runs = (f"{len(s['runs']['duckdb'])} + {args.warmup} warm-up; DuckDB "
                    f"{', '.join(f'{v:.2f}' for v in s['runs']['duckdb'])}; Spark "
                    f"{', '.join(f'{v:.2f}' for v in s['runs']['spark'])}")
            lines.append(f"| {name} | {s['generate_s']:.1f} | {s['ingest_s']:.1f} | {files} | {d:.2f} | {k:.2f} "
                         f"| **{k / d:.1f}x** | {s['identical']} | {pq_s} | {runs} |")
        else:
            lines.append(f"| {name} | {s['generate_s']:.1f} | {s['ingest_s']:.1f} | {files} | not run | "
                         f"| | | {pq_s} | {len(s['parquet_runs'])} run, no warm-up, Spark only |")
    lines += ["", "Peak memory (GiB, sampled every 100 ms per phase; VmHWM is the process lifetime peak):", "",
              "| size | shuffle partitions | Python peak (join phases) | JVM peak (join phases) | Python VmHWM "
              "| JVM VmHWM | JVM -Xmx | Spark session start s |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for s in sizes:
        ph = s["memory"]["phases"]
        joins = [p for p in ("duckdb", "spark", "spark parquet") if p in ph]
        py = max(ph[p]["python"] for p in joins)
        jv = max(ph[p]["java"] for p in joins)
        lines.append(f"| {label(s['entity_rows'])} x {label(s['feature_rows'])} | {s['shuffle_partitions']} "
                     f"| {gib(py)} | {gib(jv)} | {gib(s['memory']['vmhwm']['python'])} "
                     f"| {gib(s['memory']['vmhwm']['java'])} | {s['java_xmx']} | {s['spark_start_s']:.1f} |")
    lines += ["", "Per-core throughput: input rows (entity + feature rows) joined per second per core "
              f"(both engines use {CORES} cores; median times):", "",
              "| size | DuckDB | Spark (collected to pandas) | Spark (written to Parquet) |", "|---|---:|---:|---:|"]
    for s in sizes:
        rows = s["entity_rows"] + s["feature_rows"]
        pq_med = statistics.median(s["parquet_runs"])
        if s["compare"]:
            lines.append(f"| {label(s['entity_rows'])} x {label(s['feature_rows'])} "
                         f"| {per_core(rows, statistics.median(s['runs']['duckdb']))} "
                         f"| {per_core(rows, statistics.median(s['runs']['spark']))} | {per_core(rows, pq_med)} |")
        else:
            lines.append(f"| {label(s['entity_rows'])} x {label(s['feature_rows'])} | | | {per_core(rows, pq_med)} |")
    lines += ["", "<!-- crossover text -->", MARK_END]
    return "\n".join(lines)


def write_results(section: str) -> None:
    text = RESULTS.read_text()
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        old = MARK_START + rest.split(MARK_END, 1)[0] + MARK_END
        keep = re.search(r"<!-- crossover text -->\n(.*?)\n" + re.escape(MARK_END), old, re.S)
        if keep and keep.group(1).strip():  # keep the hand-written crossover text of an earlier run
            section = section.replace("<!-- crossover text -->", "<!-- crossover text -->\n" + keep.group(1))
        RESULTS.write_text(text.replace(old, section))
    else:
        RESULTS.write_text(text.rstrip("\n") + "\n\n" + section + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k:1M,1M:10M,10M:100M", help="ENTITY_ROWS:FEATURE_ROWS,...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine (compared sizes)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--parquet-runs", type=int, default=1, help="Spark -> Parquet runs (compared sizes)")
    parser.add_argument("--big-runs", type=int, default=1, help="Spark -> Parquet runs (Spark-only sizes)")
    parser.add_argument("--duckdb-max", type=parse_count, default=10_000_000,
                        help="largest feature-row count that also runs DuckDB (default 10M)")
    parser.add_argument("--chunk-rows", type=parse_count, default=5_000_000)
    parser.add_argument("--parquet-via", choices=["plan", "retrieval"], default="plan",
                        help="plan: the engine's DataFrame + write.parquet (as recorded); "
                             "retrieval: RetrievalJob.to_parquet")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--shuffle-partitions", type=int, default=0,
                        help="0: the kit's 4 up to 10M feature rows, else feature rows / 2M")
    parser.add_argument("--work-dir", default=str(ROOT / "build" / "bench-pit-spark"))
    parser.add_argument("--timeout", type=float, default=2400, help="seconds per size (default 40 min)")
    parser.add_argument("--keep", action="store_true", help="keep each size's store")
    parser.add_argument("--write-results", action="store_true", help="write the section of RESULTS.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.big_runs < 1 or args.parquet_runs < 0:
        raise SystemExit("--runs and --big-runs must be >= 1, --warmup and --parquet-runs >= 0.")
    if args.one:
        Path(args.json_out).write_text(json.dumps(run_one(args)))
        return
    sizes = parse_sizes(args.sizes)
    lock = open("/tmp/bench.lock", "a")  # noqa: SIM115 - held until exit: one benchmark at a time
    print("waiting for /tmp/bench.lock ...", flush=True)
    fcntl.flock(lock, fcntl.LOCK_EX)
    load0, info = uptime(), machine()
    print(f"start: {load0}\ndisk free: {shutil.disk_usage(ROOT).free / 2**30:.0f} GiB", flush=True)
    done: list[dict] = []
    failed: list[str] = []
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    for n_ent, n_feat in sizes:
        size = f"{n_ent}:{n_feat}"
        out_json = Path(args.work_dir) / f"result-{n_ent}-{n_feat}.json"
        cmd = [sys.executable, __file__, *sys.argv[1:], "--one", size, "--json-out", str(out_json)]
        out_json.unlink(missing_ok=True)
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, start_new_session=True)  # its own group: the JVM goes with it
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait()
            failed.append(f"{label(n_ent)} x {label(n_feat)}: stopped after the {args.timeout:.0f} s time limit")
        else:
            if code != 0:
                failed.append(f"{label(n_ent)} x {label(n_feat)}: the run failed (exit code {code}, see its output)")
        if out_json.exists():
            done.append(json.loads(out_json.read_text()))
        print(f"{label(n_ent)} x {label(n_feat)}: exit {code} after {time.perf_counter() - t:.0f} s; {uptime()}",
              flush=True)
    cmd = "python benchmarks/pit_join_spark.py " + " ".join(sys.argv[1:])
    section = report(cmd, info, load0, uptime(), done, args)
    if failed:
        section = section.replace("<!-- crossover text -->", "Did not finish: " + "; ".join(failed)
                                  + ".\n\n<!-- crossover text -->")
    print(section)
    if args.write_results:
        write_results(section)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
