"""Online engines side by side: SQLite and Redis, each beside a raw client baseline, one run.

- materialize: 1M offline rows over 100k entities -> 100k online rows, kit (DuckDB scan +
  dedupe + guarded write) vs the raw write of the same 100k winners: ``sqlite3.executemany``
  into an empty table, and a redis-py pipeline of HSETs in the kit's hash layout;
- reads: random keys among the 100k stored, 1 key and 100 keys per call, p50/p99 over
  ``--calls`` calls each: ``get_online_features`` as shipped, the store's ``read_rows`` alone,
  and the raw client (one prepared SQLite query; HMGET / a pipeline of HMGETs).

Starts its own ``redis-server`` on a free loopback port and stops it at the end.

    python benchmarks/online_redis.py [--rows 1000000] [--entities 100000] [--calls 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import hiredis
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_kit._time import FixedClock  # noqa: E402
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field  # noqa: E402

T0 = pd.Timestamp("2024-01-01", tz="UTC")
FEATURES = [f"f{i}" for i in range(5)]
OFFSET = 2**63


def frame(n_rows: int, n_entities: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n_rows) % n_entities
    ts = T0 + pd.to_timedelta(rng.integers(0, 86_400 * 10**6, n_rows), unit="us")
    df = pd.DataFrame({"user_id": ids.astype("int64"), "event_timestamp": ts.astype("datetime64[us, UTC]")})
    df["created"] = df["event_timestamp"] + pd.Timedelta(minutes=1)
    for name in FEATURES:
        df[name] = rng.normal(size=n_rows)
    return df


def winners(df: pd.DataFrame) -> list[tuple]:
    """The latest row per entity as (key, event_us, created_us, features...), sorted by key."""
    last = df.sort_values(["user_id", "event_timestamp", "created"]).drop_duplicates("user_id", keep="last")
    ts = last["event_timestamp"].dt.as_unit("us").astype("int64").tolist()
    cr = last["created"].dt.as_unit("us").astype("int64").tolist()
    return list(zip(last["user_id"].tolist(), ts, cr, *(last[c].tolist() for c in FEATURES)))


def new_store(online_store: str) -> FeatureStore:
    store = FeatureStore(tempfile.mkdtemp(prefix="online-redis-bench-"), online_store=online_store,
                         clock=FixedClock(T0.to_pydatetime() + timedelta(days=1)))
    user = Entity(name="user", join_keys=["user_id"])
    store.apply([FeatureView(name="stats", entities=[user], ttl=timedelta(days=7),
                             created_timestamp_column="created",
                             schema=[Field(name=c, dtype="float64") for c in FEATURES])])
    return store


def start_redis(folder: str) -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, protocol=2, socket_connect_timeout=0.2)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.RedisError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def raw_sqlite_write(rows: list[tuple]) -> float:
    folder = tempfile.mkdtemp(prefix="online-redis-bench-raw-")
    con = sqlite3.connect(os.path.join(folder, "raw.sqlite"), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE t (user_id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, cr INTEGER NOT NULL, "
                + ", ".join(f"{c} REAL" for c in FEATURES) + ")")
    t = time.perf_counter()
    con.execute("BEGIN")
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * 8)})", rows)
    con.execute("COMMIT")
    elapsed = time.perf_counter() - t
    con.close()
    shutil.rmtree(folder, ignore_errors=True)
    return elapsed


def raw_redis_write(client: redis.Redis, rows: list[tuple], prefix: str) -> float:
    """Pipelined HSETs of the kit's layout (``__ts`` + one field per feature), 1,000 per round trip."""
    client.flushall()
    t = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i, (k, e, c, *vals) in enumerate(rows, 1):
        pipe.execute_command("HSET", prefix + "i%d" % k, "__ts", "%020d%020d" % (e + OFFSET, c + OFFSET),
                             *[x for pair in zip(FEATURES, vals) for x in pair])
        if i % 1000 == 0:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - t


def time_materialize(df: pd.DataFrame, url: str, client: redis.Redis | None) -> tuple[float, int]:
    if client is not None:
        client.flushall()
    store = new_store(url)
    store.ingest("stats", df)
    t = time.perf_counter()
    report = store.materialize(T0, T0 + pd.Timedelta(days=2))
    elapsed = time.perf_counter() - t
    store.close()
    shutil.rmtree(store.workspace.root, ignore_errors=True)
    return elapsed, report.rows_written


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def measure_reads(store: FeatureStore, raw_one, raw_many, n_entities: int, calls: int, seed: int) -> dict:
    refs = [f"stats:{c}" for c in FEATURES]
    fv = store.get_feature_view("stats")
    rng = np.random.default_rng(seed)
    lat: dict[str, list[float]] = {k: [] for k in (
        "kit 1 key", "read_rows 1 key", "raw 1 key", "kit 100 keys", "read_rows 100 keys", "raw 100 keys")}
    for _ in range(200):
        store.get_online_features(refs, [{"user_id": 1}])
    clock = time.perf_counter_ns
    for _ in range(calls):
        key = int(rng.integers(0, n_entities))
        keys = [int(k) for k in rng.integers(0, n_entities, 100)]
        rows = [{"user_id": k} for k in keys]
        tuples = [(k,) for k in keys]
        t = clock(); store.get_online_features(refs, [{"user_id": key}]); lat["kit 1 key"].append(clock() - t)  # noqa: E702
        t = clock(); store.online.read_rows(fv, FEATURES, [(key,)]); lat["read_rows 1 key"].append(clock() - t)  # noqa: E702
        t = clock(); raw_one(key); lat["raw 1 key"].append(clock() - t)  # noqa: E702
        t = clock(); store.get_online_features(refs, rows); lat["kit 100 keys"].append(clock() - t)  # noqa: E702
        t = clock(); store.online.read_rows(fv, FEATURES, tuples); lat["read_rows 100 keys"].append(clock() - t)  # noqa: E702
        t = clock(); raw_many(keys); lat["raw 100 keys"].append(clock() - t)  # noqa: E702
    return {k: (pct(v, 50) / 1e6, pct(v, 99) / 1e6) for k, v in lat.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_start = os.getloadavg()
    folder = tempfile.mkdtemp(prefix="online-redis-bench-srv-")
    proc, port = start_redis(folder)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis(port=port, protocol=2)
    try:
        df = frame(args.rows, args.entities, args.seed)
        best = winners(df)
        mat: dict[str, list[float]] = {k: [] for k in ("kit sqlite", "raw sqlite3", "kit redis", "raw redis")}
        written = {}
        for _ in range(args.repeats):  # interleaved: each variant once per round
            s, written["sqlite"] = time_materialize(df, "sqlite", None)
            mat["kit sqlite"].append(s)
            mat["raw sqlite3"].append(raw_sqlite_write(best))
            s, written["redis"] = time_materialize(df, url, client)
            mat["kit redis"].append(s)
            mat["raw redis"].append(raw_redis_write(client, best, "mk:raw:stats:v1:"))

        reads = {}
        store = new_store("sqlite")
        store.ingest("stats", df)
        store.materialize(T0, T0 + pd.Timedelta(days=2))
        con = store.online.connection
        cols = ", ".join(FEATURES)
        one = f"SELECT user_id, __event_ts, {cols} FROM fv_stats_v1 WHERE user_id = ?"
        many = f"SELECT user_id, __event_ts, {cols} FROM fv_stats_v1 WHERE user_id IN ({', '.join('?' * 100)})"
        reads["sqlite"] = measure_reads(store, lambda k: con.execute(one, (k,)).fetchall(),
                                        lambda ks: con.execute(many, ks).fetchall(),
                                        args.entities, args.calls, args.seed + 1)
        store.close()
        shutil.rmtree(store.workspace.root, ignore_errors=True)

        client.flushall()
        store = new_store(url)
        store.ingest("stats", df)
        store.materialize(T0, T0 + pd.Timedelta(days=2))
        prefix = store.online.prefix(store.get_feature_view("stats"))
        fields = ["__ts", *FEATURES]

        def raw_many(keys):
            pipe = client.pipeline(transaction=False)
            for k in keys:
                pipe.execute_command("HMGET", prefix + "i%d" % k, *fields)
            return pipe.execute()

        reads["redis"] = measure_reads(store, lambda k: client.execute_command("HMGET", prefix + "i%d" % k, *fields),
                                       raw_many, args.entities, args.calls, args.seed + 1)
        store.close()
        shutil.rmtree(store.workspace.root, ignore_errors=True)
    finally:
        client.close()
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)

    server = subprocess.run([shutil.which("redis-server") or "redis-server", "--version"],
                            capture_output=True, text=True).stdout.split()[2]
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"redis-py {redis.__version__} + hiredis {hiredis.__version__}, redis-server {server}, "
          f"sqlite {sqlite3.sqlite_version}")
    print(f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
          f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"materialize: {args.rows:,} offline rows, {args.entities:,} entities, written {written}; "
          f"medians of {args.repeats} interleaved runs (s)")
    med = {k: statistics.median(v) for k, v in mat.items()}
    for k, v in mat.items():
        print(f"  {k:>12}: median {med[k]:.3f}  runs {[round(x, 3) for x in v]}")
    print(f"  kit sqlite / raw sqlite3: {med['kit sqlite'] / med['raw sqlite3']:.2f}x; "
          f"kit redis / raw redis pipeline: {med['kit redis'] / med['raw redis']:.2f}x (target <= 1.5x)")
    for engine, lat in reads.items():
        print(f"reads, {engine} ({args.calls:,} calls each): p50 / p99 ms")
        for k, (p50, p99) in lat.items():
            print(f"  {k:>18}: {p50:.4f} / {p99:.4f}")
        for n in ("1 key", "100 keys"):
            print(f"  {n}: kit / raw p50 {lat['kit ' + n][0] / lat['raw ' + n][0]:.2f}x, "
                  f"read_rows / raw p50 {lat['read_rows ' + n][0] / lat['raw ' + n][0]:.2f}x")
    print("target: kit redis 100-key read <= 1.3x raw redis-py pipeline")


if __name__ == "__main__":
    main()
