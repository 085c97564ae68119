"""Two incremental refreshes of one aggregate table at once end as if run one after the other."""

from __future__ import annotations

import traceback
from datetime import timedelta

import pandas as pd

from mlops_kit.aggregates import full_refresh, incremental_update, read_aggregates, write_partitioned

from _procs import CTX, no_errors, run

from ._helpers import make_transactions
from .test_compute import make_spec


def refresher(source, table, spec, as_of, barrier, name, out):
    try:
        barrier.wait(timeout=60)
        out.put((name, "ok", incremental_update(source, spec, table, as_of=as_of).mode))
    except BaseException as exc:
        out.put((name, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def test_two_incremental_refreshes_at_once_match_a_full_refresh(tmp_path):
    df = make_transactions(3, n=400, days=10)
    src, table = tmp_path / "src", tmp_path / "table"
    spec = make_spec()
    first = df[df["event_timestamp"] < df["event_timestamp"].min() + timedelta(days=6)]
    write_partitioned(first, src)
    as_of = df["ingested_at"].max() + timedelta(days=1)
    full_refresh(src, spec, table, as_of=as_of)
    write_partitioned(df.drop(first.index), src)
    barrier = CTX.Barrier(2)
    reports, codes = run([(refresher, (str(src), str(table), spec, as_of, barrier, f"r{i}"))
                          for i in range(2)])
    no_errors(reports)
    assert codes == [0, 0] and sorted(m for _, m in reports["ok"]) == ["incremental", "incremental"]
    full_refresh(src, spec, tmp_path / "full", as_of=as_of)
    got, want = read_aggregates(table), read_aggregates(tmp_path / "full")
    cols = [c for c in want.columns if c != "created_timestamp"]
    pd.testing.assert_frame_equal(got[cols], want[cols])
    data = sorted(p.name for p in (table / "data").rglob("*.parquet"))
    assert len(data) == len(set(got["event_timestamp"].dt.date))  # one file per day, no leftovers
