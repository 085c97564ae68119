"""Point-in-time join benchmark: kit vs one hand-written DuckDB ASOF query vs pandas merge_asof.

Sizes (defaults): 10k entities, 1M feature rows (5 float features, a created column,
TTL 48 h), 100k entity rows. All three run in the same process over the same data,
interleaved, ``--repeats`` times; the script prints medians, the kit/raw ratio and peak RSS.

The raw baseline is what one would write by hand for the same question: a single ASOF
LEFT JOIN over the same Parquet files, the TTL applied to the matched row, the result in
input order as a pandas DataFrame. It does not break ties on the created timestamp
(DuckDB's ASOF picks an arbitrary row among equal timestamps); the kit does.

    python benchmarks/pit_join.py [--entities 10000] [--feature-rows 1000000]
                                  [--entity-rows 100000] [--repeats 3]

Scale run (kit only, feature rows generated and ingested in chunks, RSS sampled every 50 ms):

    python benchmarks/pit_join.py --entities 1000000 --feature-rows 100000000 \
        --entity-rows 10000000 --chunks 20 --kit-only --repeats 1
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_kit.errors import LateDataWarning  # noqa: E402
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field  # noqa: E402

T0 = pd.Timestamp("2024-01-01", tz="UTC")
FEATURES = [f"f{i}" for i in range(5)]


def make_data(n_entities: int, n_rows: int, n_entity_rows: int, seed: int):
    rng = np.random.default_rng(seed)
    span_us = 30 * 86_400 * 10**6
    ts = T0 + pd.to_timedelta(rng.integers(0, span_us, n_rows), unit="us")
    feats = pd.DataFrame({"user_id": rng.integers(0, n_entities, n_rows).astype("int64"),
                          "event_timestamp": ts.astype("datetime64[us, UTC]")})
    feats["created"] = (feats["event_timestamp"]
                        + pd.to_timedelta(rng.integers(0, 3_600 * 10**6, n_rows), unit="us"))
    for name in FEATURES:
        feats[name] = rng.normal(size=n_rows)
    ets = T0 + pd.to_timedelta(rng.integers(0, span_us, n_entity_rows), unit="us")
    entity_df = pd.DataFrame({"user_id": rng.integers(0, n_entities, n_entity_rows).astype("int64"),
                              "event_timestamp": ets.astype("datetime64[us, UTC]")})
    return feats, entity_df


class PeakRss:
    """Samples this process's RSS every 50 ms in a background thread."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.proc.memory_info().rss)


def raw_duckdb(con, files: list[Path], entity_df: pd.DataFrame) -> pd.DataFrame:
    e = entity_df.assign(__rid=np.arange(len(entity_df)))
    con.register("e_raw", e)
    files_sql = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    cols = ", ".join(f"CASE WHEN f.event_timestamp >= e.event_timestamp - INTERVAL 48 HOURS "
                     f"THEN f.{c} END AS {c}" for c in FEATURES)
    sql = (f"SELECT e.user_id, e.event_timestamp, {cols} FROM e_raw e "
           f"ASOF LEFT JOIN read_parquet({files_sql}) f ON e.user_id = f.user_id "
           f"AND e.event_timestamp >= f.event_timestamp ORDER BY e.__rid")
    out = con.sql(sql).df()
    con.unregister("e_raw")
    return out


def pandas_merge_asof(feats: pd.DataFrame, entity_df: pd.DataFrame) -> pd.DataFrame:
    left = entity_df.assign(__rid=np.arange(len(entity_df))).sort_values("event_timestamp")
    right = feats.sort_values(["event_timestamp", "created"])
    out = pd.merge_asof(left, right.rename(columns={"event_timestamp": "feature_ts"}),
                        left_on="event_timestamp", right_on="feature_ts", by="user_id",
                        direction="backward", tolerance=pd.Timedelta(hours=48), allow_exact_matches=True)
    return out.sort_values("__rid").drop(columns=["__rid", "feature_ts", "created"]).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--feature-rows", type=int, default=1_000_000)
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--kit-only", action="store_true")
    parser.add_argument("--chunks", type=int, default=1)
    args = parser.parse_args()
    sampler = PeakRss()

    per_chunk = args.feature_rows // args.chunks
    feats, entity_df = make_data(args.entities, per_chunk, args.entity_rows, args.seed)
    root = Path(tempfile.mkdtemp(prefix="pit-bench-"))
    store = FeatureStore(root)
    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(name="user_stats", entities=[user], schema=[Field(name=c, dtype="float64") for c in FEATURES],
                       ttl=timedelta(hours=48), created_timestamp_column="created")
    store.apply([view])
    t = time.perf_counter()
    store.ingest("user_stats", feats)
    for chunk in range(1, args.chunks):
        del feats
        feats, _ = make_data(args.entities, per_chunk, 0, args.seed + chunk)
        store.ingest("user_stats", feats)
    ingest_s = time.perf_counter() - t
    files = store.offline_files("user_stats")
    refs = [f"user_stats:{c}" for c in FEATURES]
    raw_con = duckdb.connect()
    runs = {"kit": [], "raw_duckdb_asof": [], "pandas_merge_asof": []}
    kit_out = raw_out = None
    if args.chunks > 1:
        del feats
        args.skip_pandas = True
    for _ in range(args.repeats):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LateDataWarning)
            kit_out = store.get_historical_features(entity_df, refs)
        runs["kit"].append(time.perf_counter() - t)
        if args.kit_only:
            continue
        t = time.perf_counter()
        raw_out = raw_duckdb(raw_con, files, entity_df)
        runs["raw_duckdb_asof"].append(time.perf_counter() - t)
        if not args.skip_pandas:
            t = time.perf_counter()
            pandas_merge_asof(feats, entity_df)
            runs["pandas_merge_asof"].append(time.perf_counter() - t)
    peak = sampler.stop()
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
          f"load avg {os.getloadavg()[0]:.2f}")
    print(f"versions: python {platform.python_version()}, duckdb {duckdb.__version__}, pandas {pd.__version__}")
    print(f"sizes: {args.entities:,} entities, {args.feature_rows:,} feature rows, "
          f"{args.entity_rows:,} entity rows, 5 float features, created column, TTL 48h")
    print(f"ingest: {ingest_s:.3f} s")
    for name, values in runs.items():
        if values:
            print(f"{name:>18}: median {med[name]:.3f} s  runs {[round(v, 3) for v in values]}")
    if "raw_duckdb_asof" in med:
        print(f"ratio kit / raw_duckdb_asof: {med['kit'] / med['raw_duckdb_asof']:.2f}x (target <= 1.00x)")
        agree = float(np.mean(np.isclose(kit_out["f0"].to_numpy(dtype=float, na_value=np.nan),
                                         raw_out["f0"].to_numpy(dtype=float), equal_nan=True)))
        print(f"kit and raw agree on f0 for {agree:.4%} of rows (a difference would be a tie the raw "
              "query broke arbitrarily)")
    if "pandas_merge_asof" in med:
        print(f"ratio kit / pandas_merge_asof: {med['kit'] / med['pandas_merge_asof']:.2f}x")
    print(f"kit output: {len(kit_out):,} rows, {int(kit_out['f0'].notna().sum()):,} with a value")
    print(f"peak RSS of the process (sampled every 50 ms, includes the generated data): {peak / 2**20:.0f} MiB")
    store.online.close()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
