"""Full refresh against an independent brute-force loop over raw timestamps."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit.aggregates import (AggregateSpec, RollingAggregate, full_refresh, read_aggregates,
                                  write_partitioned)

from ._helpers import START, brute_force, make_transactions

AGGS = [
    dict(name="amount_sum_24h", column="amount", function="sum", window=timedelta(hours=24)),
    dict(name="txn_count_7d", column="transaction_id", function="count", window=timedelta(days=7)),
    dict(name="amount_mean_3d", column="amount", function="mean", window=timedelta(days=3)),
    dict(name="merchants_5d", column="merchant_id", function="count_distinct",
         window=timedelta(days=5)),
    dict(name="amount_min_2d", column="amount", function="min", window=timedelta(days=2)),
    dict(name="amount_max_4d", column="amount", function="max", window=timedelta(days=4)),
]


def make_spec(aggs=AGGS, entity="user_id"):
    return AggregateSpec(name="user_txn", aggregates=[
        RollingAggregate(entity_key=entity, **a) for a in aggs])


def assert_matches_reference(out: pd.DataFrame, ref: pd.DataFrame, aggs, entity="user_id"):
    keys = [entity, "event_timestamp"]
    assert len(out) == len(ref)
    merged = out.merge(ref, on=keys, how="outer", suffixes=("", "_ref"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"][keys]
    for a in aggs:
        got, want = merged[a["name"]].astype(float), merged[a["name"] + "_ref"].astype(float)
        if a["function"] in ("count", "count_distinct", "min", "max"):
            np.testing.assert_array_equal(got, want, err_msg=a["name"])
        else:  # exact decimal sums vs float sums of 2-decimal amounts
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9, err_msg=a["name"])


def test_full_refresh_matches_brute_force(tmp_path):
    df = make_transactions(7, null_share=0.05)
    spec = make_spec()
    write_partitioned(df, tmp_path / "src")
    as_of = START + timedelta(days=30)
    report = full_refresh(tmp_path / "src", spec, tmp_path / "table", as_of=as_of)
    out = read_aggregates(tmp_path / "table")
    ref = brute_force(df, AGGS, entity="user_id", last_day=df["event_timestamp"].max().date())
    assert_matches_reference(out, ref, AGGS)
    assert (out["created_timestamp"] == pd.Timestamp(as_of)).all()
    assert str(out["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert (out["event_timestamp"] == out["event_timestamp"].dt.floor("D")).all()
    # the report counts every row of every partition read
    assert report.rows_scanned == len(df) == report.rows_total
    assert report.partitions_read == df["event_timestamp"].dt.date.nunique()
    assert report.output_rows_written == len(ref)
    assert report.mode == "full_refresh" and report.wall_seconds > 0


def test_window_edges_by_hand(tmp_path):
    day = START
    rows = pd.DataFrame({
        "transaction_id": [1, 2, 3, 4],
        "user_id": [1, 1, 1, 1],
        "merchant_id": [1, 1, 2, 3],
        "amount": [10.0, 20.0, 40.0, 80.0],
        # midnight of day 0, last microsecond of day 0, midnight of day 1, noon of day 3
        "event_timestamp": pd.to_datetime([day, day + timedelta(days=1, microseconds=-1),
                                           day + timedelta(days=1), day + timedelta(days=3.5)],
                                          utc=True).astype("datetime64[us, UTC]"),
    })
    rows["ingested_at"] = rows["event_timestamp"] + pd.Timedelta(minutes=1)
    aggs = [dict(name="s1", column="amount", function="sum", window=timedelta(days=1)),
            dict(name="s2", column="amount", function="sum", window=timedelta(days=2)),
            dict(name="m2", column="amount", function="mean", window=timedelta(days=2)),
            dict(name="cd2", column="merchant_id", function="count_distinct",
                 window=timedelta(days=2))]
    write_partitioned(rows, tmp_path / "src")
    full_refresh(tmp_path / "src", make_spec(aggs), tmp_path / "t", as_of=day + timedelta(days=9))
    out = read_aggregates(tmp_path / "t").set_index("event_timestamp")
    ends = [pd.Timestamp(day + timedelta(days=k)) for k in (1, 2, 3, 4)]
    assert list(out.index) == ends  # day 2 has no row in 1 day, but 40 is in its 2-day window
    assert list(out["s1"]) == [30.0, 40.0, 0.0, 80.0]
    assert list(out["s2"]) == [30.0, 70.0, 40.0, 80.0]
    assert list(out["cd2"]) == [1, 2, 1, 1]
    assert out["m2"].iloc[1] == pytest.approx(70.0 / 3)


def test_merchant_entity_and_string_keys(tmp_path):
    df = make_transactions(3, n=250, days=6)
    df["merchant_id"] = "m" + df["merchant_id"].astype(str)
    aggs = [dict(name="users_3d", column="user_id", function="count_distinct",
                 window=timedelta(days=3)),
            dict(name="amount_sum_2d", column="amount", function="sum", window=timedelta(days=2))]
    write_partitioned(df, tmp_path / "src")
    full_refresh(tmp_path / "src", make_spec(aggs, "merchant_id"), tmp_path / "t",
                 as_of=START + timedelta(days=9))
    ref = brute_force(df, aggs, entity="merchant_id", last_day=df["event_timestamp"].max().date())
    assert_matches_reference(read_aggregates(tmp_path / "t"), ref, aggs, entity="merchant_id")


@settings(max_examples=12)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 120), days=st.integers(1, 9),
       windows=st.lists(st.integers(1, 6), min_size=3, max_size=3))
def test_full_refresh_property(tmp_path_factory, seed, n, days, windows):
    tmp = tmp_path_factory.mktemp("prop")
    df = make_transactions(seed, n=n, days=days, users=4, null_share=0.1)
    aggs = [dict(name="s", column="amount", function="sum", window=timedelta(days=windows[0])),
            dict(name="c", column="merchant_id", function="count_distinct",
                 window=timedelta(days=windows[1])),
            dict(name="x", column="amount", function="max", window=timedelta(days=windows[2]))]
    write_partitioned(df, tmp / "src")
    full_refresh(tmp / "src", make_spec(aggs), tmp / "t", as_of=START + timedelta(days=20))
    ref = brute_force(df, aggs, entity="user_id", last_day=df["event_timestamp"].max().date())
    assert_matches_reference(read_aggregates(tmp / "t"), ref, aggs)
