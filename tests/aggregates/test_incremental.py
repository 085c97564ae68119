"""Incremental update: identical to a full refresh, reads only what it must, counts honestly."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit.aggregates import (compare_full_vs_incremental, full_refresh, incremental_update,
                                  load_state, read_aggregates, same_values, write_partitioned)

from ._helpers import START, brute_force, make_transactions
from .test_compute import AGGS, assert_matches_reference, make_spec


def arrived(df, upto, after=None):
    mask = df["ingested_at"] <= upto
    if after is not None:
        mask &= df["ingested_at"] > after
    return df[mask]


def check_equal_to_full(tmp, src, spec, as_of, df_seen, *, oracle=True):
    full_refresh(src, spec, tmp / "full", as_of=as_of)
    inc, full = read_aggregates(tmp / "inc"), read_aggregates(tmp / "full")
    assert same_values(inc, full, spec)
    cols = [c for c in full.columns if c != "created_timestamp"]
    pd.testing.assert_frame_equal(inc[cols], full[cols])  # bit-identical, dtypes too
    if not oracle:
        return
    ref = brute_force(df_seen, AGGS, entity="user_id",
                      last_day=df_seen["event_timestamp"].max().date())
    assert_matches_reference(inc, ref, AGGS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stepwise_arrival_with_late_rows_matches_full_refresh(tmp_path, seed):
    """Data arrives in four batches by processing time; late rows land in old partitions."""
    df = make_transactions(seed, n=500, days=14, late_share=0.25)
    spec, src = make_spec(), tmp_path / "src"
    cuts = [START + timedelta(days=d, hours=3) for d in (6, 9, 10, 18)]
    previous = None
    for step, cut in enumerate(cuts):
        batch = arrived(df, cut, previous)
        if len(batch):
            write_partitioned(batch, src)
        seen = arrived(df, cut)
        if step == 0:
            report = full_refresh(src, spec, tmp_path / "inc", as_of=cut)
        else:
            report = incremental_update(src, spec, tmp_path / "inc", as_of=cut)
            assert report.mode == "incremental"
            assert report.rows_new == len(batch)
            late = batch["event_timestamp"].dt.date <= arrived(df, previous)[
                "event_timestamp"].max().date()
            assert report.rows_late == int(late.sum())
        check_equal_to_full(tmp_path, src, spec, cut, seen, oracle=step == len(cuts) - 1)
        previous = cut


def test_reads_only_the_window_of_affected_days(tmp_path):
    df = make_transactions(11, n=600, days=20, late_share=0.0)
    spec, src = make_spec(), tmp_path / "src"  # longest window 7 days
    first = df[df["event_timestamp"] < START + timedelta(days=18)]
    write_partitioned(first, src)
    full_refresh(src, spec, tmp_path / "inc", as_of=START + timedelta(days=19))
    # day 18 arrives, plus two late rows for day 10
    late = df[df["event_timestamp"].dt.date == (START + timedelta(days=10)).date()].head(2).copy()
    late["transaction_id"] += 10_000
    late["ingested_at"] = pd.Timestamp(START + timedelta(days=19))
    day18 = df[(df["event_timestamp"] >= START + timedelta(days=18))
               & (df["event_timestamp"] < START + timedelta(days=19))]
    write_partitioned(pd.concat([day18, late]), src)
    report = incremental_update(src, spec, tmp_path / "inc", as_of=START + timedelta(days=20))
    seen = pd.concat([first, day18, late])
    check_equal_to_full(tmp_path, src, spec, START + timedelta(days=20), seen)
    d = lambda k: (START + timedelta(days=k)).date().isoformat()  # noqa: E731
    assert report.partitions_changed == (d(10), d(18))
    # affected output days: 10..16 (late rows, 7-day window) and 18; read 4..16 and 12..18
    read = [k for k in range(4, 19)]
    expected_rows = int(seen["event_timestamp"].dt.date.isin(
        [(START + timedelta(days=k)).date() for k in read]).sum())
    assert report.partitions_read == len(read)
    assert report.rows_scanned == expected_rows < len(seen)
    assert report.output_days_written == 8
    assert report.rows_late == 2 and report.rows_new == 2 + len(day18)


def test_empty_days_gap_and_entities_appearing_late(tmp_path):
    df = make_transactions(5, n=300, days=16, users=8)
    ts = df["event_timestamp"]
    gap = (ts >= START + timedelta(days=5)) & (ts < START + timedelta(days=9))
    df = df[~gap | (df["user_id"] == 99)].copy()  # days 5..8 have no partition at all
    df.loc[df["event_timestamp"] >= START + timedelta(days=12), "user_id"] += 100  # new users
    spec, src = make_spec(), tmp_path / "src"
    write_partitioned(df[df["event_timestamp"] < START + timedelta(days=4)], src)
    full_refresh(src, spec, tmp_path / "inc", as_of=START + timedelta(days=5))
    write_partitioned(df[df["event_timestamp"] >= START + timedelta(days=4)], src)
    report = incremental_update(src, spec, tmp_path / "inc", as_of=START + timedelta(days=17))
    assert report.mode == "incremental"
    check_equal_to_full(tmp_path, src, spec, START + timedelta(days=17), df)
    out = read_aggregates(tmp_path / "inc")
    gap_rows = out[(out["event_timestamp"] > pd.Timestamp(START + timedelta(days=5)))
                   & (out["event_timestamp"] <= pd.Timestamp(START + timedelta(days=9)))]
    assert len(gap_rows) and (gap_rows["amount_sum_24h"] == 0).all()  # windows still open
    assert (out["user_id"] >= 100).any()


def test_no_change_reads_nothing_and_created_timestamps_show_what_was_rewritten(tmp_path):
    df = make_transactions(9, n=200, days=8, late_share=0.0)
    spec, src = make_spec(), tmp_path / "src"
    write_partitioned(df, src)
    t1, t2 = START + timedelta(days=9), START + timedelta(days=10)
    full_refresh(src, spec, tmp_path / "inc", as_of=t1)
    report = incremental_update(src, spec, tmp_path / "inc", as_of=t2)
    assert report.partitions_changed == () and report.rows_scanned == 0
    assert report.output_rows_written == 0 and report.output_days_written == 0
    out = read_aggregates(tmp_path / "inc")
    assert (out["created_timestamp"] == pd.Timestamp(t1)).all()
    assert load_state(tmp_path / "inc").as_of == t2


def test_removed_partition_is_recomputed(tmp_path):
    df = make_transactions(4, n=200, days=6, late_share=0.0)
    spec, src = make_spec(), tmp_path / "src"
    write_partitioned(df, src)
    full_refresh(src, spec, tmp_path / "inc", as_of=START + timedelta(days=7))
    victim = src / f"date={(START + timedelta(days=2)).date().isoformat()}"
    for f in victim.iterdir():
        f.unlink()
    victim.rmdir()
    incremental_update(src, spec, tmp_path / "inc", as_of=START + timedelta(days=8))
    kept = df[df["event_timestamp"].dt.date != (START + timedelta(days=2)).date()]
    check_equal_to_full(tmp_path, src, spec, START + timedelta(days=8), kept)


def test_compare_full_vs_incremental_frame(tmp_path):
    df = make_transactions(8, n=400, days=15, late_share=0.0)
    spec, src = make_spec(), tmp_path / "src"
    write_partitioned(df[df["event_timestamp"] < START + timedelta(days=14)], src)
    full_refresh(src, spec, tmp_path / "inc", as_of=START + timedelta(days=14))
    write_partitioned(df[df["event_timestamp"] >= START + timedelta(days=14)], src)
    frame = compare_full_vs_incremental(src, spec, incremental_dir=tmp_path / "inc",
                                        full_dir=tmp_path / "full",
                                        as_of=START + timedelta(days=15))
    assert list(frame["mode"]) == ["full_refresh", "incremental"]
    assert frame["values_identical"].all() and frame.attrs["values_identical"]
    full, inc = frame.iloc[0], frame.iloc[1]
    assert full["rows_scanned"] == len(df)
    day14_window = df["event_timestamp"] >= START + timedelta(days=8)  # days 8..14 for 7 days
    assert inc["rows_scanned"] == int(day14_window.sum())
    assert inc["rows_scanned_share"] == pytest.approx(inc["rows_scanned"] / len(df))
    assert inc["output_days_written"] == 1
    assert np.isfinite(frame["wall_seconds"]).all()


def test_without_state_runs_a_full_refresh_and_ignores_private_entries(tmp_path):
    df = make_transactions(12, n=120, days=5)
    spec, src = make_spec(), tmp_path / "src"
    write_partitioned(df, src)
    (src / "_SUCCESS").write_text("")
    (src / ".hidden").mkdir()
    report = incremental_update(src, spec, tmp_path / "inc", as_of=START + timedelta(days=6))
    assert report.mode == "full_refresh" and report.rows_scanned == len(df)
    check_equal_to_full(tmp_path, src, spec, START + timedelta(days=6), df)
