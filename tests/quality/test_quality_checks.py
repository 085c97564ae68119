"""Quality checks: each observed value against an independent pandas computation."""

from __future__ import annotations

import json
import types
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_kit.errors import (DefinitionError, QualityGateError, SchemaError, TimezoneError,
                              ValidationError)
from mlops_kit.quality import (AllowedValuesCheck, FreshnessCheck, NullRateCheck, QualityReport,
                               QualitySuite, RangeCheck, SqlInvariantCheck, UniqueKeyCheck,
                               VolumeCheck, check_from_dict, gate)

UTC = timezone.utc
T0 = datetime(2024, 3, 1, tzinfo=UTC)
KW = dict(owner="payments-data", remediation="Re-run the upstream job for the partition.")


def make_frame(seed: int = 7, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(T0) + pd.to_timedelta(rng.integers(0, 6 * 86400, n), unit="s")
    df = pd.DataFrame({
        "event_timestamp": ts.astype("datetime64[us, UTC]"),
        "user_id": rng.integers(0, 300, n),
        "amount": rng.normal(50, 30, n),
        "segment": rng.choice(["new", "tenured", "vip"], n, p=[0.5, 0.45, 0.05]),
        "currency": rng.choice(["EUR", "USD", "GBP", "XXX"], n, p=[0.5, 0.3, 0.19, 0.01]),
    })
    null_mask = (df["segment"] == "new") & (rng.random(n) < 0.08)
    df.loc[null_mask, "amount"] = np.nan
    return df


def in_range(df, start, end):
    ts = df["event_timestamp"]
    return df[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]


def run_one(check, df, **kw):
    return QualitySuite(view="txn", checks=[check]).run(df, **kw).results[0]


START, END = T0 + timedelta(days=1), T0 + timedelta(days=5)


def test_null_rate_overall_and_worst_segment_match_pandas():
    df = make_frame()
    sub = in_range(df, START, END)
    overall = run_one(NullRateCheck(id="n", severity="block", column="amount", max_rate=0.01, **KW), df,
                      start=START, end=END)
    assert overall.sample_size == len(sub)
    assert overall.observed == pytest.approx(sub["amount"].isna().mean())
    assert overall.verdict == "fail"
    seg = run_one(NullRateCheck(id="s", severity="warn", column="amount", max_rate=0.05,
                                segment_by=("segment",), **KW), df, start=START, end=END)
    by_seg = sub.groupby("segment")["amount"].apply(lambda s: s.isna().mean())
    assert seg.observed == pytest.approx(by_seg.max())
    got = {s["segment"]["segment"]: s["null_rate"] for s in seg.details["segments"]}
    assert got == pytest.approx(by_seg.to_dict())
    assert seg.details["segments_failing"] == int((by_seg > 0.05).sum())
    assert seg.verdict == "fail"


def test_null_rate_segments_below_min_rows_are_not_judged():
    df = pd.DataFrame({"event_timestamp": pd.Timestamp(T0), "seg": ["a"] * 40 + ["b"] * 2,
                       "x": [1.0] * 40 + [None, None]})
    res = run_one(NullRateCheck(id="n", severity="block", column="x", max_rate=0.1, segment_by=("seg",),
                                min_rows=10, **KW), df)
    assert res.verdict == "pass" and res.details["segments_skipped"] == 1 and res.sample_size == 40


def test_range_allowed_and_invariant_match_pandas():
    df = make_frame()
    sub = in_range(df, START, END)
    vals = sub["amount"].dropna()
    rng = run_one(RangeCheck(id="r", severity="block", column="amount", min_value=0, max_value=120,
                             max_violation_rate=0.05, **KW), df, start=START, end=END)
    assert rng.sample_size == len(vals)
    assert rng.observed == pytest.approx(((vals < 0) | (vals > 120)).mean())
    assert rng.details["observed_min"] == pytest.approx(vals.min())
    assert rng.verdict == ("fail" if rng.observed > 0.05 else "pass")
    allowed = run_one(AllowedValuesCheck(id="a", severity="block", column="currency",
                                         allowed=("EUR", "USD", "GBP"), **KW), df, start=START, end=END)
    assert allowed.observed == pytest.approx((~sub["currency"].isin(["EUR", "USD", "GBP"])).mean())
    assert allowed.details["unexpected"][0]["value"] == "XXX"
    assert allowed.verdict == "fail"
    inv = run_one(SqlInvariantCheck(id="i", severity="warn", expression="amount >= 0", max_violation_rate=0.5,
                                    **KW), df, start=START, end=END)
    # A null result (null amount) counts as a violation.
    assert inv.observed == pytest.approx((~(sub["amount"] >= 0)).mean())
    assert inv.verdict == "pass"


def test_unique_key_counts_duplicates_within_each_day_only():
    rows = [(T0 + timedelta(hours=1), 1), (T0 + timedelta(hours=2), 1),   # dup on day 1
            (T0 + timedelta(days=1, hours=1), 1),                          # same key, next day: fine
            (T0 + timedelta(days=1, hours=3), 2), (T0 + timedelta(days=1, hours=4), 2),
            (T0 + timedelta(days=1, hours=5), 2)]                          # two extra rows on day 2
    df = pd.DataFrame(rows, columns=["event_timestamp", "user_id"])
    res = run_one(UniqueKeyCheck(id="u", severity="block", columns=("user_id",), **KW), df)
    assert res.observed == 3 and res.verdict == "fail" and res.details["partitions"] == 2
    big = make_frame()
    day = big["event_timestamp"].dt.floor("D")
    expected = int(big.assign(day=day).duplicated(["day", "user_id"]).sum())
    assert run_one(UniqueKeyCheck(id="u", severity="block", columns=("user_id",), **KW), big).observed == expected


def test_freshness_newest_row_and_entity_quantile():
    df = make_frame()
    now = T0 + timedelta(days=7)
    res = run_one(FreshnessCheck(id="f", severity="block", max_age=timedelta(days=1, hours=6), **KW), df, now=now)
    expected = (pd.Timestamp(now) - df["event_timestamp"].max()).total_seconds()
    assert res.observed == pytest.approx(expected)
    assert res.verdict == ("fail" if expected > 30 * 3600 else "pass")
    q = run_one(FreshnessCheck(id="q", severity="warn", max_age=timedelta(days=1), entity_columns=("user_id",),
                               quantile=0.95, **KW), df, now=now)
    ages = (pd.Timestamp(now) - df.groupby("user_id")["event_timestamp"].max()).dt.total_seconds()
    assert q.observed == pytest.approx(np.quantile(ages.to_numpy(), 0.95))
    assert q.sample_size == df["user_id"].nunique()


def test_freshness_takes_now_from_a_clock_and_refuses_without_one():
    df = make_frame()
    check = FreshnessCheck(id="f", severity="block", max_age=timedelta(days=30), **KW)
    assert run_one(check, df, clock=lambda: T0 + timedelta(days=7)).verdict == "pass"
    with pytest.raises(ValidationError, match="current time"):
        run_one(check, df)


def test_volume_change_against_previous_partition_with_a_missing_day():
    counts = {0: 100, 1: 110, 2: 40, 4: 45}  # day 3 is missing entirely
    ts = [T0 + timedelta(days=d, minutes=i) for d, c in counts.items() for i in range(c)]
    df = pd.DataFrame({"event_timestamp": pd.to_datetime(ts, utc=True)})
    res = run_one(VolumeCheck(id="v", severity="block", max_change=0.5, **KW), df,
                  start=T0 + timedelta(days=1), end=T0 + timedelta(days=5))
    changes = {p["partition"]: p["change"] for p in res.details["partitions"]}
    assert changes == pytest.approx({"2024-03-02": 110 / 100 - 1, "2024-03-03": 40 / 110 - 1,
                                     "2024-03-04": -1.0})  # day 5 has no baseline (day 4 empty)
    assert res.observed == pytest.approx(-1.0) and res.verdict == "fail" and res.sample_size == 3
    ok = run_one(VolumeCheck(id="v", severity="block", max_change=0.5, **KW), df,
                 start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    assert ok.verdict == "pass" and ok.observed == pytest.approx(0.1)


def test_empty_data_is_inconclusive_and_gate_fails_closed():
    df = make_frame()
    suite = QualitySuite(view="txn", checks=[
        NullRateCheck(id="n", severity="block", column="amount", max_rate=0.5, **KW),
        RangeCheck(id="r", severity="warn", column="amount", min_value=0, **KW)])
    report = suite.run(df, start=T0 + timedelta(days=30), end=T0 + timedelta(days=31))
    assert [r.verdict for r in report.results] == ["inconclusive", "inconclusive"]
    assert all(r.sample_size == 0 for r in report.results)
    with pytest.raises(QualityGateError) as err:
        gate(report)
    assert [f["check_id"] for f in err.value.details["failures"]] == ["n"]
    assert gate(report, allow_inconclusive=True) is report


def test_gate_lists_every_blocking_failure_and_ignores_warnings():
    df = make_frame()
    suite = QualitySuite(view="txn", checks=[
        NullRateCheck(id="nulls", severity="block", column="amount", max_rate=0.0, **KW),
        AllowedValuesCheck(id="currency", severity="block", column="currency", allowed=("EUR",), **KW),
        RangeCheck(id="range_warn", severity="warn", column="amount", max_value=0, **KW),
        SqlInvariantCheck(id="ok", severity="block", expression="user_id >= 0", **KW)])
    report = suite.run(df, consumers=["fraud_model"])
    assert not report.passed and len(report.warnings) == 1
    with pytest.raises(QualityGateError) as err:
        gate(report)
    ids = [f["check_id"] for f in err.value.details["failures"]]
    assert ids == ["nulls", "currency"]
    assert "nulls" in str(err.value) and "currency" in str(err.value) and "fraud_model" in str(err.value)
    assert "range_warn" not in ids


def test_parquet_paths_and_relation_give_the_same_results(tmp_path):
    df = make_frame()
    paths = []
    for day, part in df.groupby(df["event_timestamp"].dt.strftime("%Y-%m-%d")):
        folder = tmp_path / f"date={day}"
        folder.mkdir()
        part.to_parquet(folder / "part-0.parquet", index=False)
        paths.append(folder / "part-0.parquet")
    suite = QualitySuite(view="txn", checks=[
        NullRateCheck(id="n", severity="block", column="amount", max_rate=0.02, segment_by=("segment",), **KW),
        UniqueKeyCheck(id="u", severity="warn", columns=("user_id",), **KW),
        VolumeCheck(id="v", severity="warn", **KW)])
    kwargs = dict(start=START, end=END)
    a = suite.run(df, **kwargs).to_frame()
    b = suite.run(paths, **kwargs).to_frame()
    con = duckdb.connect()
    c = suite.run(con.from_df(df), **kwargs).to_frame()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_blast_radius_from_a_catalog():
    catalog = types.SimpleNamespace(blast_radius=lambda view: ["fraud_model", "risk_service"])
    check = RangeCheck(id="r", severity="block", column="amount", min_value=0, consumers=("dashboard",), **KW)
    res = QualitySuite(view="txn", checks=[check]).run(make_frame(), catalog=catalog).results[0]
    assert res.consumers == ("dashboard", "fraud_model", "risk_service")


def test_round_trips():
    checks = [
        NullRateCheck(id="n", severity="block", column="amount", max_rate=0.1, segment_by=("segment",), **KW),
        RangeCheck(id="r", severity="warn", column="amount", min_value=0, max_value=1e4, **KW),
        UniqueKeyCheck(id="u", severity="block", columns=("user_id", "event_timestamp"), **KW),
        AllowedValuesCheck(id="a", severity="block", column="currency", allowed=("EUR", "USD"), **KW),
        SqlInvariantCheck(id="s", severity="warn", expression="amount >= 0", consumers=("m",), **KW),
        FreshnessCheck(id="f", severity="block", max_age=timedelta(hours=6), entity_columns=("user_id",), **KW),
        VolumeCheck(id="v", severity="warn", max_change=0.3, min_rows=10, **KW)]
    for check in checks:
        assert check_from_dict(json.loads(json.dumps(check.to_dict()))) == check
    suite = QualitySuite(view="txn", checks=checks)
    assert QualitySuite.from_dict(json.loads(json.dumps(suite.to_dict()))) == suite
    report = suite.run(make_frame(), start=START, end=END, now=T0 + timedelta(days=6))
    text = json.dumps(report.to_dict(), sort_keys=True)
    again = QualityReport.from_dict(json.loads(text))
    assert json.dumps(again.to_dict(), sort_keys=True) == text


@pytest.mark.parametrize("kwargs, field", [
    (dict(id="", severity="block"), "id"),
    (dict(id="x", severity="fatal"), "severity"),
    (dict(id="x", severity="block", owner=""), "owner"),
    (dict(id="x", severity="block", remediation="  "), "remediation"),
    (dict(id="x", severity="block", max_rate=1.5), "max_rate"),
    (dict(id="x", severity="block", column=""), "column"),
    (dict(id="x", severity="block", min_rows=0), "min_rows"),
])
def test_bad_declarations_name_the_field(kwargs, field):
    base = dict(column="amount", max_rate=0.1, **KW)
    base.update(kwargs)
    with pytest.raises(DefinitionError) as err:
        NullRateCheck(**base)
    assert field in str(err.value) and err.value.fix


def test_more_bad_declarations():
    with pytest.raises(DefinitionError, match="cannot both be None"):
        RangeCheck(id="r", severity="block", column="a", **KW)
    with pytest.raises(DefinitionError, match="max_value"):
        RangeCheck(id="r", severity="block", column="a", min_value=5, max_value=1, **KW)
    with pytest.raises(DefinitionError, match="expression"):
        SqlInvariantCheck(id="s", severity="block", expression="1; DROP TABLE t", **KW)
    with pytest.raises(DefinitionError, match="max_age"):
        FreshnessCheck(id="f", severity="block", max_age=timedelta(0), **KW)
    with pytest.raises(DefinitionError, match="allowed"):
        AllowedValuesCheck(id="a", severity="block", column="c", allowed="EUR", **KW)
    with pytest.raises(DefinitionError, match="duplicate check id"):
        QualitySuite(checks=[VolumeCheck(id="v", severity="warn", **KW)] * 2)
    with pytest.raises(DefinitionError, match="checks"):
        QualitySuite(checks=[])
    with pytest.raises(DefinitionError, match="type"):
        check_from_dict({"type": "nope"})


def test_bad_run_input_is_refused_with_a_fix():
    df = make_frame()
    check = RangeCheck(id="r", severity="block", column="missing_col", min_value=0, **KW)
    with pytest.raises(SchemaError, match="missing_col"):
        run_one(check, df)
    with pytest.raises(SchemaError, match="not numeric"):
        run_one(RangeCheck(id="r", severity="block", column="currency", min_value=0, **KW), df)
    naive = df.assign(event_timestamp=df["event_timestamp"].dt.tz_localize(None))
    with pytest.raises(TimezoneError, match="tz_localize"):
        run_one(RangeCheck(id="r", severity="block", column="amount", min_value=0, **KW), naive)
    with pytest.raises(ValidationError, match="could not evaluate"):
        run_one(SqlInvariantCheck(id="s", severity="block", expression="no_such_col > 1", **KW), df)
    with pytest.raises(ValidationError, match="DataFrame"):
        run_one(check, {"amount": [1]})
    with pytest.raises(ValidationError, match="not found"):
        run_one(check, ["/nonexistent/file.parquet"])
    with pytest.raises(TimezoneError):
        run_one(check, df, start=datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match="not after"):
        run_one(check, df, start=END, end=START)
    with pytest.raises(ValidationError, match="QualityReport"):
        gate({"results": []})


def test_run_offline_uses_the_store_files_and_no_files_is_inconclusive(tmp_path):
    df = make_frame()
    path = tmp_path / "part-0.parquet"
    df.to_parquet(path, index=False)
    asked = []

    class Store:
        def offline_files(self, view, version=None):
            asked.append((view, version))
            return [path] if version == 1 else []

    suite = QualitySuite(view="txn", checks=[RangeCheck(id="r", severity="block", column="amount",
                                                        min_value=-1e9, **KW)])
    assert suite.run_offline(Store(), version=1).results[0].verdict == "pass"
    empty = suite.run_offline(Store(), version=2)
    assert empty.results[0].verdict == "inconclusive" and empty.results[0].sample_size == 0
    assert asked == [("txn", 1), ("txn", 2)]
    with pytest.raises(QualityGateError):
        gate(empty)
    with pytest.raises(ValidationError, match="offline_files"):
        suite.run_offline(object())
