"""Benchmark: a quality suite in DuckDB vs the same checks in pandas, and PSI at scale.

Usage: python benchmarks/quality_checks.py [--rows 1000000] [--repeat 3]

Prints the machine, the sizes, the median wall time of each variant and the ratio to the
pandas baseline measured in the same run, and checks that both give the same observed values.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from mlops_kit.quality import (AllowedValuesCheck, FreshnessCheck, NullRateCheck, QualitySuite,
                               RangeCheck, SqlInvariantCheck, UniqueKeyCheck, VolumeCheck, psi)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
KW = dict(severity="block", owner="bench", remediation="none")


def make(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(T0) + pd.to_timedelta(rng.integers(0, 30 * 86400, rows), unit="s")
    df = pd.DataFrame({"event_timestamp": ts.astype("datetime64[us, UTC]"),
                       "user_id": rng.integers(0, rows // 10, rows),
                       "amount": rng.lognormal(3, 1, rows),
                       "segment": rng.choice(["new", "tenured", "vip"], rows),
                       "currency": rng.choice(["EUR", "USD", "GBP"], rows)})
    df.loc[rng.random(rows) < 0.01, "amount"] = np.nan
    return df


def suite() -> QualitySuite:
    return QualitySuite(view="txn", checks=[
        NullRateCheck(id="nulls", column="amount", max_rate=0.02, segment_by=("segment",), **KW),
        RangeCheck(id="range", column="amount", min_value=0, max_value=1e5, **KW),
        UniqueKeyCheck(id="unique", columns=("user_id", "event_timestamp"), **KW),
        AllowedValuesCheck(id="currency", column="currency", allowed=("EUR", "USD", "GBP"), **KW),
        SqlInvariantCheck(id="positive", expression="amount > 0", max_violation_rate=0.02, **KW),
        FreshnessCheck(id="fresh", max_age=timedelta(days=2), entity_columns=("user_id",), quantile=0.95, **KW),
        VolumeCheck(id="volume", max_change=0.5, **KW)])


def pandas_baseline(df: pd.DataFrame, now: datetime) -> dict[str, float]:
    """The same observed values computed with pandas (the way a notebook would)."""
    day = df["event_timestamp"].dt.floor("D")
    amount = df["amount"].dropna()
    ages = (pd.Timestamp(now) - df.groupby("user_id")["event_timestamp"].max()).dt.total_seconds()
    counts = df.groupby(day).size().sort_index()
    return {
        "nulls": df.groupby("segment")["amount"].apply(lambda s: s.isna().mean()).max(),
        "range": ((amount < 0) | (amount > 1e5)).mean(),
        "unique": float(df.assign(day=day).duplicated(["day", "user_id", "event_timestamp"]).sum()),
        "currency": (~df["currency"].isin(["EUR", "USD", "GBP"])).mean(),
        "positive": (~(df["amount"] > 0)).mean(),
        "fresh": float(np.quantile(ages.to_numpy(), 0.95)),
        "volume": max((counts / counts.shift(1) - 1).dropna().tolist(), key=abs),
    }


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    df = make(args.rows, seed=3)
    now = T0 + timedelta(days=31)
    s = suite()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for d, part in df.groupby(df["event_timestamp"].dt.strftime("%Y-%m-%d")):
            folder = Path(tmp) / f"date={d}"
            folder.mkdir()
            part.to_parquet(folder / "part-0.parquet", index=False)
            paths.append(folder / "part-0.parquet")
        t_pandas, base = median_time(lambda: pandas_baseline(df, now), args.repeat)
        t_pandas_pq, _ = median_time(lambda: pandas_baseline(pd.read_parquet(paths), now), args.repeat)
        t_df, report = median_time(lambda: s.run(df, now=now), args.repeat)
        t_pq, report_pq = median_time(lambda: s.run(paths, now=now), args.repeat)
    observed = {r.check_id: r.observed for r in report.results}
    same = all(np.isclose(observed[k], base[k], rtol=1e-9, atol=1e-9) for k in base)
    same_pq = report.to_frame().equals(report_pq.to_frame())
    ref, cur = np.random.default_rng(1).normal(size=args.rows), np.random.default_rng(2).normal(0.1, 1, args.rows)
    t_psi, value = median_time(lambda: psi(ref, cur), args.repeat)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"rows: {args.rows:,} over 30 days ({len(paths)} Parquet partitions); 7 checks; median of {args.repeat}")
    print("| variant | median wall s | time / pandas time | same observed values as pandas |")
    print("|---|---:|---:|---|")
    print(f"| pandas, DataFrame already in memory (baseline) | {t_pandas:.2f} | 1.00 | |")
    print(f"| pandas, reading the Parquet files first | {t_pandas_pq:.2f} | {t_pandas_pq / t_pandas:.2f} | |")
    print(f"| QualitySuite over the DataFrame (DuckDB) | {t_df:.2f} | {t_df / t_pandas:.2f} | {same} |")
    print(f"| QualitySuite over the Parquet files (DuckDB) | {t_pq:.2f} | {t_pq / t_pandas:.2f} | {same_pq} |")
    print(f"psi(1 sample of {args.rows:,} vs {args.rows:,}, 10 bins): {t_psi:.2f} s (value {value:.4f})")


if __name__ == "__main__":
    main()
