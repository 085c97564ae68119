"""SQLite online store benchmark: materialization and reads, each beside raw baselines in one run.

Materialize (``--entities``, default 10k and 100k; 1M offline rows each, 5 float features and a
created column, every row inside the window): the kit's ``store.materialize`` on a fresh store
after one ingest, against the raw pipeline doing the same work by hand on the same Parquet file:

- raw DuckDB: one ``GROUP BY user_id`` with ``arg_max(..., event_timestamp)`` over
  ``read_parquet`` on a fresh connection, fetched as Python tuples (the scan + dedupe floor);
- raw sqlite3: ``executemany`` of those winners (prebuilt tuples) into an empty table of the
  kit's layout (integer key as rowid, WAL, ``synchronous=NORMAL``, one transaction);
- raw total = the two added up.

Reads (``--read-entities`` stored, default 100k): random keys, 1 key and 100 keys per call,
``--calls`` calls of each per round, ``--rounds`` rounds; p50/p99 pooled over all rounds and
the p99 of each round. Variants, interleaved call by call (which one goes first rotates, since the
first read of fresh keys pays the CPU-cache misses): ``get_online_features`` as shipped
(governance hook included), the serving path alone (hook replaced by a no-op), the store's
``read_rows`` alone, and raw sqlite3 on a copy written with plain ``executemany`` in the same
table layout and page cache size (one prepared ``WHERE user_id = ?`` / ``IN (...)`` query).

    python benchmarks/online.py [--entities 10000,100000] [--calls 10000] [--rounds 3] [--repeats 5]
                                [--row-group-rows N] [--skip-reads]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_kit._time import FixedClock  # noqa: E402
from mlops_kit.features import offline as offline_writer  # noqa: E402
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field  # noqa: E402

T0 = pd.Timestamp("2024-01-01", tz="UTC")
END = T0 + pd.Timedelta(days=2)
FEATURES = [f"f{i}" for i in range(5)]
COLUMNS = ["user_id", "__event_ts", "__created_ts", *FEATURES]


def frame(n_rows: int, n_entities: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n_rows) % n_entities
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


def raw_duckdb(path: Path) -> tuple[float, list[tuple]]:
    """The scan + dedupe floor: one hand-written aggregate over the file, fetched as tuples."""
    con = duckdb.connect(":memory:")
    con.sql("SELECT 1").fetchall()
    feats = ", ".join(f"arg_max({c}, event_timestamp)" for c in FEATURES)
    sql = (f"SELECT user_id, epoch_us(max(event_timestamp)), epoch_us(arg_max(created, event_timestamp)), "
           f"{feats} FROM read_parquet('{path}') WHERE event_timestamp >= TIMESTAMPTZ '{T0}' "
           f"AND event_timestamp < TIMESTAMPTZ '{END}' GROUP BY user_id ORDER BY user_id")
    t = time.perf_counter()
    rows = con.sql(sql).fetchall()
    elapsed = time.perf_counter() - t
    con.close()
    return elapsed, rows


def raw_sqlite_db(path: str, rows: list[tuple]) -> tuple[float, sqlite3.Connection]:
    """``executemany`` of prebuilt rows into an empty table of the kit's layout, one transaction."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA cache_size=-65536")  # the kit's page cache size
    con.execute("CREATE TABLE t (user_id INTEGER PRIMARY KEY, __event_ts INTEGER NOT NULL, "
                "__created_ts INTEGER NOT NULL, " + ", ".join(f"{c} REAL" for c in FEATURES) + ")")
    t = time.perf_counter()
    con.execute("BEGIN")
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(COLUMNS))})", rows)
    con.execute("COMMIT")
    return time.perf_counter() - t, con


def materialize_round(df: pd.DataFrame, label: str) -> dict[str, float]:
    store = new_store(label)
    store.ingest("stats", df)
    t = time.perf_counter()
    report = store.materialize(T0, END)
    kit = time.perf_counter() - t
    scan, rows = raw_duckdb(store.offline_files("stats")[0])
    folder = tempfile.mkdtemp(prefix="online-bench-raw-")
    write, con = raw_sqlite_db(os.path.join(folder, "raw.sqlite"), rows)
    kit_rows = store.online.connection.execute(
        f"SELECT {', '.join(COLUMNS)} FROM fv_stats_v1 ORDER BY user_id").fetchall()
    if kit_rows != rows or report.rows_written != len(rows):  # same winners, or the timing means nothing
        raise SystemExit(f"{label}: kit and raw pipeline disagree ({report.rows_written} vs {len(rows)} rows)")
    con.close()
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(store.workspace.root, ignore_errors=True)
    return {"kit": kit, "raw duckdb": scan, "raw sqlite3": write, "raw total": scan + write}


class _NoGovernance:
    """Stands in for the governance hook to time the serving path alone."""

    def check_read(self, views, *, principal, purpose, channel):
        return None


def measure_reads(n_entities: int, calls: int, rounds: int, seed: int) -> dict[str, list[list[float]]]:
    df = frame(1_000_000, n_entities, seed)
    store = new_store("reads")
    store.ingest("stats", df)
    store.materialize(T0, END)
    folder = tempfile.mkdtemp(prefix="online-bench-raw-reads-")
    kit_rows = store.online.connection.execute(f"SELECT {', '.join(COLUMNS)} FROM fv_stats_v1").fetchall()
    _, raw = raw_sqlite_db(os.path.join(folder, "raw.sqlite"), kit_rows)
    cols = ", ".join(["user_id", "__event_ts", *FEATURES])
    one = f"SELECT {cols} FROM t WHERE user_id = ?"
    many = f"SELECT {cols} FROM t WHERE user_id IN ({', '.join('?' * 100)})"
    refs = [f"stats:{c}" for c in FEATURES]
    fv = store.get_feature_view("stats")
    online = store.online
    governed, bare = store.governance, _NoGovernance()
    for con in (online.connection, raw):  # both databases fully in SQLite's page cache
        con.execute(f"SELECT sum(f0 + f1 + f2 + f3 + f4) FROM {'fv_stats_v1' if con is not raw else 't'}")
    for _ in range(500):
        store.get_online_features(refs, [{"user_id": 1}])
        online.read_rows(fv, FEATURES, [(1,)])
        raw.execute(one, (1,)).fetchall()
    names = [f"{v} {n}" for n in ("1 key", "100 keys") for v in ("kit", "serving", "read_rows", "raw")]
    lat: dict[str, list[list[float]]] = {k: [] for k in names}
    rng = np.random.default_rng(seed + 1)
    clock = time.perf_counter_ns
    def one_key(label: str, key: int, keys: list, rows: list, tuples: list) -> None:
        if label == "raw":
            raw.execute(one, (key,)).fetchall()
        elif label == "read_rows":
            online.read_rows(fv, FEATURES, [(key,)])
        else:
            store._governance = governed if label == "kit" else bare
            store.get_online_features(refs, [{"user_id": key}])

    def many_keys(label: str, key: int, keys: list, rows: list, tuples: list) -> None:
        if label == "raw":
            raw.execute(many, keys).fetchall()
        elif label == "read_rows":
            online.read_rows(fv, FEATURES, tuples)
        else:
            store._governance = governed if label == "kit" else bare
            store.get_online_features(refs, rows)

    variants = ["kit", "serving", "read_rows", "raw"]
    for _ in range(rounds):
        cur: dict[str, list[float]] = {k: [] for k in names}
        for i in range(calls):
            key = int(rng.integers(0, n_entities))
            keys = [int(k) for k in rng.integers(0, n_entities, 100)]
            args = (key, keys, [{"user_id": k} for k in keys], [(k,) for k in keys])
            # the first read of fresh keys pays the CPU-cache misses: rotate who goes first
            for label in variants[i % 4:] + variants[:i % 4]:
                t = clock(); one_key(label, *args); cur[f"{label} 1 key"].append(clock() - t)  # noqa: E702
            for label in variants[i % 4:] + variants[:i % 4]:
                t = clock(); many_keys(label, *args); cur[f"{label} 100 keys"].append(clock() - t)  # noqa: E702
        store._governance = governed
        for k, v in cur.items():
            lat[k].append([x / 1e6 for x in v])
    raw.close()
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(store.workspace.root, ignore_errors=True)
    return lat


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", default="10000,100000", help="comma-separated entity counts")
    parser.add_argument("--read-entities", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--row-group-rows", default="",
                        help="comma-separated rows per offline row group, measured interleaved "
                             "(default: the kit's)")
    parser.add_argument("--skip-reads", action="store_true", help="materialize only")
    args = parser.parse_args()
    kit_rows = offline_writer.ROW_GROUP_ROWS
    group_sizes = [int(x) for x in args.row_group_rows.split(",") if x] or [kit_rows]
    load_start = os.getloadavg()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, "
          f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, Python {platform.python_version()}, "
          f"sqlite {sqlite3.sqlite_version}, duckdb {duckdb.__version__}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in load_start)}")
    for n in (int(x) for x in args.entities.split(",")):
        df = frame(1_000_000, n, args.seed)
        by_size: dict[int, list[dict[str, float]]] = {g: [] for g in group_sizes}
        for i in range(args.repeats):  # row group sizes interleaved, run by run
            for g in group_sizes:
                offline_writer.ROW_GROUP_ROWS = g
                by_size[g].append(materialize_round(df, f"m{n}-{g}-{i}"))
        offline_writer.ROW_GROUP_ROWS = kit_rows
        for g, runs in by_size.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"materialize 1,000,000 rows / {n:,} entities, row groups of {g:,} rows "
                  f"(median of {args.repeats} s; runs):")
            for k, v in med.items():
                print(f"  {k:>12}: {v:.4f}  {[round(r[k], 4) for r in runs]}")
            print(f"  kit / raw total {med['kit'] / med['raw total']:.2f}x; kit - raw total "
                  f"{(med['kit'] - med['raw total']) * 1e3:+.1f} ms")
    if args.skip_reads:
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return
    lat = measure_reads(args.read_entities, args.calls, args.rounds, args.seed)
    print(f"reads over {args.read_entities:,} stored entities, {args.rounds} rounds x {args.calls:,} calls "
          f"(p50 / p99 ms pooled; p99 per round):")
    for k, per_round in lat.items():
        pooled = [x for r in per_round for x in r]
        print(f"  {k:>18}: {pct(pooled, 50):.4f} / {pct(pooled, 99):.4f}   "
              f"p99 by round {[round(pct(r, 99), 4) for r in per_round]}")
    for n in ("1 key", "100 keys"):
        pooled = {v: [x for r in lat[f"{v} {n}"] for x in r] for v in ("kit", "serving", "read_rows", "raw")}
        print(f"  {n}: kit / raw p50 {pct(pooled['kit'], 50) / pct(pooled['raw'], 50):.2f}x "
              f"p99 {pct(pooled['kit'], 99) / pct(pooled['raw'], 99):.2f}x; read_rows / raw p50 "
              f"{pct(pooled['read_rows'], 50) / pct(pooled['raw'], 50):.2f}x")
    print("targets: materialize 1M rows / 10k entities <= 0.1 s; kit read p99 <= 0.08 ms (1 key), "
          "<= 0.4 ms (100 keys)")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"peak RSS {psutil.Process().memory_info().rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
