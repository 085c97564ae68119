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
    python benchmarks/pit_join.py --sizes 100k:1M,1M:10M --row-group-rows 1048576,262144,131072

``--sizes E:F,...`` runs each size (E entity rows against F feature rows over F/100 entities)
in turn; ``--row-group-rows`` writes one store per offline row group size and interleaves them
run by run; ``--memory-limit`` sets the DuckDB memory limit of the kit's store and of the raw
baseline's connection alike (both spill to a temp folder of the workspace).

Scale run (feature rows generated and ingested in chunks once into ``--workspace``, reused by
later runs; RSS sampled every 50 ms, reported per variant; ``--generate-only`` stops after the ingest):

    python benchmarks/pit_join.py --sizes 10M:100M --chunks 20 --workspace build/bench-10m --generate-only
    python benchmarks/pit_join.py --sizes 10M:100M --chunks 20 --workspace build/bench-10m \
        --memory-limit 1500MB --skip-pandas --repeats 1
"""

from __future__ import annotations

import argparse
import json
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


SPAN_US = 30 * 86_400 * 10**6
_UNITS = {"k": 10**3, "m": 10**6, "g": 10**9}


def count(text: str) -> int:
    """``100k`` / ``10M`` / ``1000`` -> an int."""
    text = text.strip().lower()
    return int(float(text[:-1]) * _UNITS[text[-1]]) if text[-1:] in _UNITS else int(text)


def make_entity_df(n_entities: int, n_entity_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 1])
    ets = T0 + pd.to_timedelta(rng.integers(0, SPAN_US, n_entity_rows), unit="us")
    return pd.DataFrame({"user_id": rng.integers(0, n_entities, n_entity_rows).astype("int64"),
                         "event_timestamp": ets.astype("datetime64[us, UTC]")})


def make_data(n_entities: int, n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    span_us = SPAN_US
    ts = T0 + pd.to_timedelta(rng.integers(0, span_us, n_rows), unit="us")
    feats = pd.DataFrame({"user_id": rng.integers(0, n_entities, n_rows).astype("int64"),
                          "event_timestamp": ts.astype("datetime64[us, UTC]")})
    feats["created"] = (feats["event_timestamp"]
                        + pd.to_timedelta(rng.integers(0, 3_600 * 10**6, n_rows), unit="us"))
    for name in FEATURES:
        feats[name] = rng.normal(size=n_rows)
    return feats


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

    def reset(self) -> int:
        """The peak since the last reset (or start); starts a new interval."""
        peak, self.peak = max(self.peak, self.proc.memory_info().rss), self.proc.memory_info().rss
        return peak

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.proc.memory_info().rss)


def raw_connection(memory_limit: str | None, spill: Path) -> duckdb.DuckDBPyConnection:
    if memory_limit is None:
        return duckdb.connect()
    spill.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(spill)})


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


def build_store(root: Path, sizes: tuple[int, int, int], chunks: int, seed: int,
                memory_limit: str | None) -> tuple[FeatureStore, float | None]:
    """A store holding the feature rows: reused when ``root`` already holds the same data."""
    n_entities, n_rows, _ = sizes
    from mlops_kit.features import offline as offline_writer
    marker = root / "bench-data.json"
    spec = {"entities": n_entities, "feature_rows": n_rows, "chunks": chunks, "seed": seed,
            "row_group_rows": offline_writer.ROW_GROUP_ROWS}
    kwargs = {} if memory_limit is None else {"duckdb_memory_limit": memory_limit}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return FeatureStore(root, **kwargs), None
    if root.exists():
        shutil.rmtree(root)
    store = FeatureStore(root, **kwargs)
    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(name="user_stats", entities=[user], schema=[Field(name=c, dtype="float64") for c in FEATURES],
                       ttl=timedelta(hours=48), created_timestamp_column="created")
    store.apply([view])
    t = time.perf_counter()
    for chunk in range(chunks):
        store.ingest("user_stats", make_data(n_entities, n_rows // chunks, seed + chunk))
    elapsed = time.perf_counter() - t
    marker.write_text(json.dumps(spec))
    return store, elapsed


def run_size(args: argparse.Namespace, sizes: tuple[int, int, int], sampler: PeakRss) -> None:
    from mlops_kit.features import offline as offline_writer
    n_entities, n_rows, n_entity_rows = sizes
    group_sizes = [count(x) for x in args.row_group_rows.split(",") if x] or [offline_writer.ROW_GROUP_ROWS]
    kit_rows = offline_writer.ROW_GROUP_ROWS
    base = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="pit-bench-"))
    stores: dict[int, FeatureStore] = {}
    for g in group_sizes:
        offline_writer.ROW_GROUP_ROWS = g
        root = base if len(group_sizes) == 1 else base / f"rg{g}"
        stores[g], gen_s = build_store(root, sizes, args.chunks, args.seed, args.memory_limit)
        print(f"row groups of {g:,} rows: " + ("data reused from " + str(root) if gen_s is None else
              f"generated and ingested {n_rows:,} rows in {args.chunks} chunk(s) in {gen_s:.1f} s"))
    offline_writer.ROW_GROUP_ROWS = kit_rows
    if args.generate_only:
        return
    entity_df = make_entity_df(n_entities, n_entity_rows, args.seed)
    feats = None if args.skip_pandas or args.chunks > 1 else make_data(n_entities, n_rows, args.seed)
    refs = [f"user_stats:{c}" for c in FEATURES]
    raw_cons = {g: raw_connection(args.memory_limit, stores[g].workspace.tmp_dir / "raw-duckdb")
                for g in group_sizes}
    runs: dict[str, list[float]] = {}
    peaks: dict[str, int] = {}
    agree: dict[int, float] = {}
    with_value: dict[int, int] = {}
    sampler.reset()
    for _ in range(args.repeats):
        for g in group_sizes:
            store = stores[g]
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LateDataWarning)
                out = store.get_historical_features(entity_df, refs)
            runs.setdefault(f"kit rg={g}", []).append(time.perf_counter() - t)
            peaks[f"kit rg={g}"] = max(peaks.get(f"kit rg={g}", 0), sampler.reset())
            kit_f0 = out["f0"].to_numpy(dtype=float, na_value=np.nan)
            with_value[g] = int(np.count_nonzero(~np.isnan(kit_f0)))
            del out
            if args.kit_only:
                continue
            t = time.perf_counter()
            out = raw_duckdb(raw_cons[g], store.offline_files("user_stats"), entity_df)
            runs.setdefault(f"raw rg={g}", []).append(time.perf_counter() - t)
            peaks[f"raw rg={g}"] = max(peaks.get(f"raw rg={g}", 0), sampler.reset())
            agree[g] = float(np.mean(np.isclose(kit_f0, out["f0"].to_numpy(dtype=float), equal_nan=True)))
            del out
            if feats is not None:
                t = time.perf_counter()
                pandas_merge_asof(feats, entity_df)
                runs.setdefault(f"pandas rg={g}", []).append(time.perf_counter() - t)
                peaks[f"pandas rg={g}"] = max(peaks.get(f"pandas rg={g}", 0), sampler.reset())
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"sizes: {n_entity_rows:,} entity rows x {n_rows:,} feature rows, {n_entities:,} entities, "
          f"5 float features, created column, TTL 48h; DuckDB memory_limit "
          f"{args.memory_limit or 'kit default / DuckDB default'}; load avg {os.getloadavg()[0]:.2f}")
    for name, values in runs.items():
        print(f"{name:>22}: median {med[name]:.3f} s  runs {[round(v, 3) for v in values]}  "
              f"peak RSS {peaks.get(name, 0) / 2**20:,.0f} MiB")
    for g in group_sizes:
        if f"raw rg={g}" in med:
            print(f"row groups {g:,}: kit / raw_duckdb_asof {med[f'kit rg={g}'] / med[f'raw rg={g}']:.2f}x; "
                  f"kit and raw agree on f0 for {agree[g]:.4%} of rows")
        if f"pandas rg={g}" in med:
            print(f"row groups {g:,}: kit / pandas_merge_asof {med[f'kit rg={g}'] / med[f'pandas rg={g}']:.2f}x")
        print(f"row groups {g:,}: kit output {n_entity_rows:,} rows, {with_value[g]:,} with a value")
    first = group_sizes[0]
    for g in group_sizes[1:]:
        print(f"kit rg={g:,} / kit rg={first:,}: {med[f'kit rg={g}'] / med[f'kit rg={first}']:.2f}x")
    for g, store in stores.items():
        store.close()
    for con in raw_cons.values():
        con.close()
    if not args.workspace:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--feature-rows", type=int, default=1_000_000)
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--sizes", default="", help="E:F[,E:F...]: entity rows x feature rows "
                        "(F/100 entities), e.g. 100k:1M,1M:10M or 10M:100M; overrides the three above")
    parser.add_argument("--row-group-rows", default="", help="comma-separated offline row group sizes")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 1500MB")
    parser.add_argument("--workspace", default="", help="keep (and reuse) the generated store here")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--kit-only", action="store_true")
    parser.add_argument("--chunks", type=int, default=1)
    args = parser.parse_args()
    sampler = PeakRss()
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
          f"load avg at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"versions: python {platform.python_version()}, duckdb {duckdb.__version__}, pandas {pd.__version__}")
    if args.sizes:
        todo = []
        for item in args.sizes.split(","):
            left, _, right = item.partition(":")
            todo.append((count(right) // 100, count(right), count(left)))
    else:
        todo = [(args.entities, args.feature_rows, args.entity_rows)]
    for i, sizes in enumerate(todo):
        if args.workspace and len(todo) > 1:
            raise SystemExit("--workspace holds one size: pass one --sizes item with it")
        run_size(args, sizes, sampler)
    peak = sampler.stop()
    print(f"peak RSS of the process (sampled every 50 ms, includes the generated data): {peak / 2**20:,.0f} MiB")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
