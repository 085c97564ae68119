"""Online store benchmark: materialization throughput and get_online_features latency.

Scenarios (defaults):
- materialize A: 1M offline rows over 100k entities -> 100k online rows (scan + dedupe + write);
- materialize B: 1M offline rows, 1M distinct entities -> 1M online rows (the write path);
- get_online_features over 2,000 calls with 1 key and 2,000 calls with 100 keys (random keys
  among 1M stored entities, 5 float features), p50/p99, measured twice: as shipped (with the
  governance read hook, which counts usage in memory and flushes it in batches) and with the
  hook replaced by a no-op (the serving path alone); baseline in the same run: the same
  lookups as one raw prepared ``sqlite3`` query each.

    python benchmarks/online.py [--rows 1000000] [--calls 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_kit._time import FixedClock  # noqa: E402
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field  # noqa: E402

T0 = pd.Timestamp("2024-01-01", tz="UTC")
FEATURES = [f"f{i}" for i in range(5)]


def frame(n_rows: int, n_entities: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n_rows) % n_entities if n_entities < n_rows else rng.permutation(n_rows)
    ts = T0 + pd.to_timedelta(rng.integers(0, 86_400 * 10**6, n_rows), unit="us")
    df = pd.DataFrame({"user_id": ids.astype("int64"), "event_timestamp": ts.astype("datetime64[us, UTC]")})
    df["created"] = df["event_timestamp"] + pd.Timedelta(minutes=1)
    for name in FEATURES:
        df[name] = rng.normal(size=n_rows)
    return df


def new_store(name: str) -> FeatureStore:
    store = FeatureStore(tempfile.mkdtemp(prefix=f"online-bench-{name}-"),
                         clock=FixedClock(T0.to_pydatetime() + timedelta(days=1)))
    user = Entity(name="user", join_keys=["user_id"])
    store.apply([FeatureView(name="stats", entities=[user], ttl=timedelta(days=7),
                             created_timestamp_column="created",
                             schema=[Field(name=c, dtype="float64") for c in FEATURES])])
    return store


def time_materialize(df: pd.DataFrame, repeats: int, label: str) -> tuple[float, list[float], int]:
    runs, written = [], 0
    for i in range(repeats):
        store = new_store(f"{label}{i}")
        store.ingest("stats", df)
        t = time.perf_counter()
        report = store.materialize(T0, T0 + pd.Timedelta(days=2))
        runs.append(time.perf_counter() - t)
        written = report.rows_written
        store.online.close()
        shutil.rmtree(store.workspace.root, ignore_errors=True)
    return statistics.median(runs), runs, written


class _NoGovernance:
    """Stands in for the governance hook to time the serving path alone."""

    def check_read(self, views, *, principal, purpose, channel):
        return None


def raw_sqlite_floor(df: pd.DataFrame) -> float:
    """Baseline: one executemany of the same rows (already Python tuples) into an empty table."""
    import sqlite3

    folder = tempfile.mkdtemp(prefix="online-bench-raw-")
    con = sqlite3.connect(os.path.join(folder, "raw.sqlite"), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE t (user_id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, cr INTEGER NOT NULL, "
                + ", ".join(f"{c} REAL" for c in FEATURES) + ")")
    ts = df["event_timestamp"].astype("int64").tolist()
    rows = sorted(zip(df["user_id"].tolist(), ts, ts, *(df[c].tolist() for c in FEATURES)))
    t = time.perf_counter()
    con.execute("BEGIN")
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * 8)})", rows)
    con.execute("COMMIT")
    elapsed = time.perf_counter() - t
    con.close()
    shutil.rmtree(folder, ignore_errors=True)
    return elapsed


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    proc = psutil.Process()

    med_a, runs_a, written_a = time_materialize(frame(args.rows, args.rows // 10, args.seed), args.repeats, "a")
    df_b = frame(args.rows, args.rows, args.seed)
    med_b, runs_b, written_b = time_materialize(df_b, args.repeats, "b")
    floor_b = raw_sqlite_floor(df_b)

    store = new_store("reads")
    store.ingest("stats", df_b)
    store.materialize(T0, T0 + pd.Timedelta(days=2))
    refs = [f"stats:{c}" for c in FEATURES]
    rng = np.random.default_rng(args.seed + 1)
    con = store.online.connection
    cols = ", ".join(FEATURES)
    lat: dict[str, list[float]] = {k: [] for k in (
        "kit 1 key", "serving 1 key", "raw 1 key", "kit 100 keys", "serving 100 keys", "raw 100 keys")}
    governed = store.governance
    bare = _NoGovernance()
    for _ in range(50):  # warm-up: statement cache, page cache
        store.get_online_features(refs, [{"user_id": 1}])
    sql_one = f"SELECT user_id, __event_ts, {cols} FROM fv_stats_v1 WHERE user_id = ?"
    sql_many = f"SELECT user_id, __event_ts, {cols} FROM fv_stats_v1 WHERE user_id IN ({', '.join('?' * 100)})"
    for _ in range(args.calls):
        key = int(rng.integers(0, args.rows))
        keys = [int(k) for k in rng.integers(0, args.rows, 100)]
        rows = [{"user_id": k} for k in keys]
        for label, hook in (("kit", governed), ("serving", bare)):
            store._governance = hook
            t = time.perf_counter_ns()
            store.get_online_features(refs, [{"user_id": key}])
            lat[f"{label} 1 key"].append((time.perf_counter_ns() - t) / 1e6)
            t = time.perf_counter_ns()
            store.get_online_features(refs, rows)
            lat[f"{label} 100 keys"].append((time.perf_counter_ns() - t) / 1e6)
        t = time.perf_counter_ns()
        con.execute(sql_one, (key,)).fetchall()
        lat["raw 1 key"].append((time.perf_counter_ns() - t) / 1e6)
        t = time.perf_counter_ns()
        con.execute(sql_many, keys).fetchall()
        lat["raw 100 keys"].append((time.perf_counter_ns() - t) / 1e6)

    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, "
          f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, load avg {os.getloadavg()[0]:.2f}")
    print(f"materialize A ({args.rows:,} offline rows, {args.rows // 10:,} entities, {written_a:,} written): "
          f"median {med_a:.3f} s runs {[round(r, 3) for r in runs_a]} (target <= 0.5 s)")
    print(f"materialize B ({args.rows:,} offline rows, {args.rows:,} entities, {written_b:,} written): "
          f"median {med_b:.3f} s runs {[round(r, 3) for r in runs_b]} (target <= 0.5 s)")
    print(f"baseline: raw sqlite3 executemany of the same {len(df_b):,} rows (prebuilt tuples, sorted, "
          f"empty table): {floor_b:.3f} s; materialize B / baseline: {med_b / floor_b:.2f}x")
    for name, values in lat.items():
        print(f"{name:>16}: p50 {pct(values, 50):.4f} ms  p99 {pct(values, 99):.4f} ms  ({len(values)} calls)")
    print("targets: p99 <= 0.1 ms (1 key), <= 1 ms (100 keys)")
    print(f"peak RSS: {proc.memory_info().rss / 2**20:.0f} MiB")
    store.online.close()
    shutil.rmtree(store.workspace.root, ignore_errors=True)


if __name__ == "__main__":
    main()
