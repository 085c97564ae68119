"""Chapter 2 lab functions and grading criteria, against independent references."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_kit.datasets import Scenario, generate_world
from mlops_kit.errors import QualityGateError, ValidationError
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.evidence.grading import ch02 as grading
from mlops_kit.features import FeatureStore, FeatureView, Field
from mlops_kit.labs import ch02, ch02_show as show, ch02_sync as sync
from mlops_kit.quality import gate

UTC = timezone.utc


@pytest.fixture(scope="module")
def world():
    return generate_world(Scenario.small(), seed=3)


def _brute_count(events, key, at, window, closed, time_col, known_col=None):
    n = 0
    for _, ev in events.iterrows():
        if ev["user_id"] != key:
            continue
        t = ev[time_col]
        inside = (at - window <= t < at) if closed == "left" else (at - window < t <= at)
        if inside and (known_col is None or ev[known_col] <= at):
            n += 1
    return n


@pytest.mark.parametrize("closed", ["left", "right"])
@pytest.mark.parametrize("known", [False, True])
def test_window_counts_matches_brute_force(closed, known):
    rng = np.random.default_rng(1)
    base = pd.Timestamp("2024-01-01", tz="UTC")
    # whole days so that window edges are hit exactly
    t = base + pd.to_timedelta(rng.integers(0, 20, 120), unit="D")
    events = pd.DataFrame({"user_id": rng.integers(0, 4, 120), "t": t,
                           "known": t + pd.to_timedelta(rng.integers(0, 3, 120), unit="D")})
    queries = pd.DataFrame({"user_id": [0, 1, 2, 3, 5, 0], "as_of": base + pd.to_timedelta([7, 10, 14, 19, 9, 3], unit="D")})
    got = ch02.window_counts(events, queries, time_column="t", window=timedelta(days=7), closed=closed,
                             known_by="known" if known else None)
    want = [_brute_count(events, k, a, pd.Timedelta(days=7), closed, "t", "known" if known else None)
            for k, a in zip(queries["user_id"], queries["as_of"])]
    assert got.tolist() == want


def test_window_counts_refuses_bad_input():
    with pytest.raises(ValidationError, match="closed"):
        ch02.window_counts(pd.DataFrame(), pd.DataFrame(), time_column="t", window=timedelta(days=1), closed="both")
    with pytest.raises(ValidationError, match="lacks columns"):
        ch02.window_counts(pd.DataFrame({"user_id": [1]}), pd.DataFrame({"user_id": [1], "as_of": [None]}),
                           time_column="t", window=timedelta(days=1))


def test_disagreement_hand_computed():
    got = ch02.disagreement([1, 2, None, 4], [1, 3, None, None])
    assert got == {"rows": 4, "differ": 2, "share": 0.5, "mean_abs_diff": 0.5}
    with pytest.raises(ValidationError):
        ch02.disagreement([1], [1, 2])


def test_serving_replay_agrees_with_known_at_t_and_skews_elsewhere(world):
    sem = ch02.time_semantics(world, sample=400, seed=0)
    assert (sem["known_at_t"] == sem["serving"]).all()
    # the replay is an independent loop: it must also equal window_counts with known_by
    q = sem.rename(columns={"event_timestamp": "as_of"})
    again = ch02.window_counts(world.transactions, q, time_column="event_timestamp", window=ch02.WINDOW,
                               known_by="ingested_at")
    assert again.tolist() == sem["serving"].tolist()
    with pytest.raises(ValidationError, match="sample"):
        ch02.time_semantics(world, sample=0, seed=0)


def test_team_counts_shared_definition(world):
    grid = ch02.daily_grid(world, days=[10, 20])
    teams = ch02.team_counts(world, grid)
    txn = world.transactions
    for row in teams.sample(15, random_state=0).itertuples():
        ev = txn[txn["user_id"] == row.user_id]
        a = ((ev["event_timestamp"] >= row.as_of - pd.Timedelta(days=7)) & (ev["event_timestamp"] < row.as_of)).sum()
        b = ((ev["ingested_at"] > row.as_of - pd.Timedelta(days=7)) & (ev["ingested_at"] <= row.as_of)).sum()
        assert (row.team_a, row.team_b) == (a, b)
    with pytest.raises(ValidationError):
        ch02.daily_grid(world, days=[0])


def test_leakage_violations_hand_built():
    t = pd.to_datetime(["2024-01-02", "2024-01-02", "2024-01-02"], utc=True)
    frame = pd.DataFrame({"event_timestamp": t,
                          "risk_ts": pd.to_datetime(["2024-01-01", "2024-01-03", None], utc=True),
                          "risk_created": pd.to_datetime(["2024-01-02", "2024-01-01", None], utc=True),
                          "profile_ts": t, "profile_created": pd.to_datetime(["2024-01-05", None, None], utc=True)})
    got = ch02.leakage_violations(frame)
    assert got == {"risk_ts": 1, "risk_created": 0, "profile_ts": 0, "profile_created": 1, "rows": 2}
    with pytest.raises(ValidationError):
        ch02.leakage_violations(frame.drop(columns="risk_ts"))


def test_scd2_expected_interval_lookup():
    profiles = pd.DataFrame({"user_id": [1, 1, 2], "account_status": ["active", "closed", "frozen"],
                             "valid_from": pd.to_datetime(["2024-01-01", "2024-01-10", "2024-01-05"], utc=True),
                             "valid_to": pd.to_datetime(["2024-01-10", None, None], utc=True)})
    rows = pd.DataFrame({"user_id": [1, 1, 1, 2, 3],
                         "event_timestamp": pd.to_datetime(["2023-12-31", "2024-01-09", "2024-01-10",
                                                            "2024-02-01", "2024-01-05"], utc=True)})
    got = ch02.scd2_expected(profiles, rows).tolist()
    assert got[1:4] == ["active", "closed", "frozen"]
    assert pd.isna(got[0]) and pd.isna(got[4])


def test_ttl_window_statuses():
    rows = pd.DataFrame({"event_timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-03 00:00", "2024-01-03 12:00",
                                                            "2024-01-06 00:00"], utc=True), "fraud_rate_30d": [.1, .2, .3, .4]})
    at = pd.Timestamp("2024-01-04", tz="UTC")
    assert sync.ttl_window(rows, at, timedelta(days=2))["status"].tolist() == ["too old", "candidate", "winner", "future"]
    assert sync.ttl_window(rows, at, timedelta(hours=6))["status"].tolist() == ["too old"] * 3 + ["future"]
    assert sync.ttl_window(rows, at, None)["status"].tolist() == ["candidate", "candidate", "winner", "future"]
    with pytest.raises(ValidationError):
        sync.ttl_window(rows, pd.Timestamp("2024-01-04"), None)


@pytest.fixture(scope="module")
def store(world, tmp_path_factory):
    store = FeatureStore(tmp_path_factory.mktemp("ch02"))
    ch02.ingest_training_views(store, world)
    ch02.ingest_corrections(store, world, written_at=ch02.world_end(world) + timedelta(days=1))
    return store


def _brute_asof(risk, rows, ttl, created_filter):
    out = []
    for m, t in zip(rows["merchant_id"], rows["event_timestamp"]):
        c = risk[(risk["merchant_id"] == m) & (risk["event_timestamp"] <= t) & (risk["event_timestamp"] >= t - ttl)]
        if created_filter:
            c = c[c["created_timestamp"] <= t]
        c = c.sort_values(["event_timestamp", "created_timestamp"], kind="stable")
        out.append(c["fraud_rate_30d"].iloc[-1] if len(c) else np.nan)
    return np.array(out, dtype=float)


def test_asof_join_sql_and_pit_match_brute_force(world, store):
    rows = ch02.entity_frame(world).sample(150, random_state=1)[["merchant_id", "event_timestamp"]]
    risk = store.read_offline("merchant_risk")
    cond = ("f.event_timestamp <= e.event_timestamp AND f.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY "
            "AND f.created_timestamp <= e.event_timestamp")
    got = sync.asof_join_sql(store, rows, cond)["fraud_rate_30d"].to_numpy(dtype=float)
    want = _brute_asof(risk, rows, pd.Timedelta(days=2), True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)])
    leaky = sync.asof_join_sql(store, rows, "f.event_timestamp <= e.event_timestamp")["fraud_rate_30d"]
    want_leaky = _brute_asof(risk, rows, pd.Timedelta(days=3650), False)
    np.testing.assert_allclose(leaky.to_numpy(dtype=float), want_leaky, equal_nan=True)
    with pytest.raises(ValidationError):
        sync.asof_join_sql(store, rows, " ")


def test_asof_probe_exercises_every_clause(world, store):
    rows = ch02.entity_frame(world).sample(300, random_state=2)[["merchant_id", "event_timestamp"]]
    probe = sync.asof_probe(rows, store, hours=range(12, 97, 12), merchants=3)
    assert len(probe) == 300 + 3 * 8
    last = store.read_offline("merchant_risk")["event_timestamp"].max()
    assert (probe["event_timestamp"].iloc[300:] > last).all()
    kit = sync.asof_reference(store, probe)["fraud_rate_30d"]
    right = ("f.event_timestamp <= e.event_timestamp AND f.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY "
             "AND f.created_timestamp <= e.event_timestamp")
    assert ch02.disagreement(sync.asof_join_sql(store, probe, right)["fraud_rate_30d"], kit)["differ"] == 0
    no_ttl = sync.asof_join_sql(store, probe, "f.event_timestamp <= e.event_timestamp AND "
                                "f.created_timestamp <= e.event_timestamp")["fraud_rate_30d"]
    assert ch02.disagreement(no_ttl, kit)["differ"] > 0      # only the late probe rows can tell
    assert sync.asof_diagnosis([1.0, None, 2.0, None], [None, 1.0, 3.0, None]).startswith(
        "1 rows read a value where the store's join reads null, 1 rows read null where it reads a value, 1 rows")


def test_offline_rows_in_counts_half_open_windows(store):
    ts = pd.to_datetime(store.read_offline("merchant_risk")["event_timestamp"], utc=True)
    lo, hi = ts.min() + pd.Timedelta(days=1), ts.min() + pd.Timedelta(days=3)
    want = sum(1 for t in ts if lo <= t < hi)
    assert sync.offline_rows_in(store, "merchant_risk", lo, hi) == want
    assert sync.offline_rows_in(store, "merchant_risk", None, hi) == sum(1 for t in ts if t < hi)


def test_sample_payments_and_visible_definitions_match_the_replay(world):
    rows = ch02.sample_payments(world, sample=300, seed=1)
    assert list(rows.columns) == ["transaction_id", "user_id", "as_of"] and rows["transaction_id"].is_unique
    txn = ch02.transactions(world)
    known = ch02.window_counts(txn, rows, time_column="event_timestamp", window=ch02.WINDOW, known_by="ingested_at")
    assert (known == ch02.serving_replay(world, rows, time_column="as_of")).all()
    with pytest.raises(ValidationError):
        ch02.sample_payments(world, sample=0, seed=1)


def test_pit_training_set_has_no_leak_and_unfiltered_warns(world, store):
    pit = ch02.pit_training_set(store, world, filter_by_created_timestamp=True)
    assert ch02.leakage_violations(pit)["rows"] == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = ch02.pit_training_set(store, world, filter_by_created_timestamp=False)
    assert any("late corrections" in str(w.message) for w in caught)
    assert ch02.leakage_violations(raw)["risk_created"] > 0
    latest = ch02.latest_value_join(store, world)
    assert ch02.leakage_violations(latest)["risk_ts"] > 0
    sample = pit.sample(300, random_state=0)
    truth = ch02.scd2_expected(world.profiles, sample)
    assert (truth.astype(str) == sample["account_status"].astype(str)).all()


def test_ttl_admission_against_ages(world, tmp_path):
    gappy = sync.gappy_merchant_risk(world, seed=0, merchants=10, first_day=10, last_day=18)
    wide = sync.ttl_admission(tmp_path, world, gappy, timedelta(days=365))
    narrow = sync.ttl_admission(tmp_path, world, gappy, timedelta(hours=60))
    assert wide["stale_admitted"] == wide["stale_rows"] > 0
    assert narrow["good_admitted"] == narrow["good_rows"] and narrow["stale_admitted"] == 0
    assert narrow["admitted_beyond_ttl"] == 0
    assert narrow["edge_good_admitted"] and narrow["edge_stale_refused"]
    short = sync.ttl_admission(tmp_path, world, gappy, timedelta(hours=12))
    assert short["good_admitted"] < short["good_rows"]
    # the edges: a row exactly 48 h old must be read, a row 72 h + 1 min old must not
    assert not sync.ttl_admission(tmp_path, world, gappy, timedelta(hours=47))["edge_good_admitted"]
    edge = sync.ttl_admission(tmp_path, world, gappy, timedelta(hours=73))
    assert edge["stale_admitted"] == 0 and not edge["edge_stale_refused"]
    with pytest.raises(ValidationError):
        sync.ttl_admission(tmp_path, world, gappy, timedelta(0))


def test_parity_table_counts_stale_values(world, tmp_path):
    store = FeatureStore(tmp_path / "p")
    store.apply([ch02.txn_7d_view()])
    frame = ch02.shared_7d_frame(world)
    store.ingest("user_txn_count", frame)
    start = world.scenario.start
    store.materialize(start, start + timedelta(days=10, hours=1))
    at = start + timedelta(days=11, hours=6)
    table, report = sync.parity_table(store, "user_txn_count:txn_count", at, seed=0)
    day10 = frame[frame["event_timestamp"] == start + timedelta(days=10)].set_index("user_id")["txn_count"]
    day11 = frame[frame["event_timestamp"] == start + timedelta(days=11)].set_index("user_id")["txn_count"]
    changed = int((day10 != day11.reindex(day10.index)).sum())
    assert int((table["status"] == "mismatch").sum()) == len(report.mismatches) == changed > 0
    ages = sync.online_ages(store, "user_txn_count:txn_count", [0, 1], at)
    assert ages["age_h"].tolist() == [30.0, 30.0]
    store.materialize_incremental(at)
    table, report = sync.parity_table(store, "user_txn_count:txn_count", at, seed=0)
    assert report.ok and (table["status"] == "match").all()
    assert sync.p95([1, 2, 3, 4, None]) == pytest.approx(np.percentile([1, 2, 3, 4], 95))


def test_contract_refuses_broken_batch(world):
    view = ch02.txn_7d_view()
    day = ch02.shared_7d_frame(world).head(300)
    assert sync.contract_suite(view).run(day).passed
    bad = sync.broken_batch(day, seed=0, share=0.05)
    assert (bad["txn_count"] < 0).any() and len(bad) > len(day)
    with pytest.raises(QualityGateError):
        gate(sync.contract_suite(view).run(bad))


# -- grading ------------------------------------------------------------------------
def _ctx(pack: Path) -> GradingContext:
    return GradingContext(pack, {}, [])


def _write(pack: Path, name: str, obj) -> None:
    path = pack / "ch02" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, pd.DataFrame):
        obj.to_csv(path, index=False)
    else:
        path.write_text(json.dumps(obj, sort_keys=True), encoding="utf-8")


def test_grade_parity_and_freshness_recompute(tmp_path):
    table = pd.DataFrame({"phase": ["before"] * 3 + ["after"] * 3, "offline": [1, 2, 3, 1, 2, 3],
                          "online": [1, 5, 3, 1, 2, 3]})
    _write(tmp_path, "parity_table.csv", table)
    _write(tmp_path, "parity.json", {"before": {"compared": 3, "mismatches": 1, "missing_online": 0},
                                     "after": {"compared": 3, "mismatches": 0, "missing_online": 0}})
    assert grading.grade_parity(_ctx(tmp_path)).level == 4
    _write(tmp_path, "parity.json", {"before": {"compared": 3, "mismatches": 0, "missing_online": 0},
                                     "after": {"compared": 3, "mismatches": 0, "missing_online": 0}})
    assert grading.grade_parity(_ctx(tmp_path)).level == 0
    ages = pd.DataFrame({"phase": ["before"] * 20 + ["after"] * 20, "age_h": list(range(30, 50)) + list(range(0, 20))})
    slo = {"objective": 26.0}
    _write(tmp_path, "feature_ages.csv", ages)
    _write(tmp_path, "freshness.json", {"slo": slo, "p95_before_h": 48.05, "p95_after_h": 18.05})
    assert grading.grade_freshness(_ctx(tmp_path)).level == 4
    _write(tmp_path, "freshness.json", {"slo": slo, "p95_before_h": 20.0, "p95_after_h": 18.05})
    assert grading.grade_freshness(_ctx(tmp_path)).level == 0


def test_grade_leakage_and_definitions_detect_edits(tmp_path):
    t = "2024-01-05 00:00:00+00:00"
    ok = pd.DataFrame({"user_id": [1], "event_timestamp": [t], "account_status": ["active"],
                       "risk_ts": ["2024-01-04 00:00:00+00:00"], "risk_created": ["2024-01-04 00:00:00+00:00"],
                       "profile_ts": ["2024-01-01 00:00:00+00:00"], "profile_created": ["2024-01-01 00:00:00+00:00"]})
    leak = ok.assign(risk_created="2024-03-01 00:00:00+00:00")
    _write(tmp_path, "training_sample_pit.csv", ok)
    _write(tmp_path, "training_sample_unfiltered.csv", leak)
    _write(tmp_path, "training_sample_latest.csv", leak)
    _write(tmp_path, "profile_history.csv", pd.DataFrame({"user_id": [1], "account_status": ["active"],
                                                          "valid_from": ["2024-01-01 00:00:00+00:00"],
                                                          "valid_to": [None]}))
    assert grading.grade_leakage_recheck(_ctx(tmp_path)).level == 4
    _write(tmp_path, "training_sample_pit.csv", leak)
    assert grading.grade_leakage_recheck(_ctx(tmp_path)).level == 0
    v1 = ch02.txn_7d_view()
    silent, v2 = ch02.txn_7d_view(window_days=30), ch02.txn_7d_view(window_days=30, version=2)
    claim = {"v1": v1.to_dict(), "v1_fingerprint": v1.fingerprint, "silent": silent.to_dict(),
             "silent_fingerprint": silent.fingerprint, "v2": v2.to_dict(), "v2_fingerprint": v2.fingerprint,
             "silent_refused": True}
    _write(tmp_path, "definitions.json", claim)
    assert grading.grade_definitions(_ctx(tmp_path)).level == 4
    claim["v2"]["tags"]["window"] = "7d"
    _write(tmp_path, "definitions.json", claim)
    assert grading.grade_definitions(_ctx(tmp_path)).level == 0


def test_lab_store_offline_engine_is_checked_and_recorded(tmp_path):
    from mlops_kit._time import FixedClock
    from mlops_kit.errors import StoreConfigError
    from mlops_kit.workspace import Workspace

    clock = FixedClock(datetime(2024, 1, 1, tzinfo=UTC))
    for name, engine in (("duck", "duckdb"), ("spark", "spark")):   # Spark only starts on a join
        with sync.lab_store(Workspace(tmp_path / name), clock=clock, offline_engine=engine) as store:
            assert sync.engines(store) == {"online_store": "sqlite", "offline_engine": engine}
    for bad in (None, "", "  ", 3):
        with pytest.raises(ValidationError, match="offline_engine must be a non-empty string"):
            sync.lab_store(Workspace(tmp_path / "bad"), clock=clock, offline_engine=bad)
    with pytest.raises(StoreConfigError, match="offline_engine") as info:
        sync.lab_store(Workspace(tmp_path / "bad"), clock=clock, offline_engine="sparkle")
    assert '"spark" (local[2])' in info.value.fix
    with pytest.raises(ValidationError, match="online_store must be a non-empty string"):
        sync.lab_store(Workspace(tmp_path / "bad"), clock=clock, online_store="", offline_engine="spark")


def test_engine_equality_records_what_assert_frame_equal_said():
    left = pd.DataFrame({"user_id": [1, 2, 3], "fraud_rate_30d": [0.1, None, 0.3]})

    def compare(right):
        try:
            pd.testing.assert_frame_equal(left, right, check_exact=True)
            return None
        except AssertionError as exc:
            return str(exc)

    same = sync.engine_equality(left, left.copy(), compare(left.copy()), engine="spark")
    assert same["compared"] and same["equal"] and same["engines"] == ["spark", "duckdb"]
    assert same["rows"] == [3, 3] and same["columns"] == [2, 2] and same["difference"] is None
    assert same["verdict"].startswith("spark and duckdb built the same training set: 3 rows x 2 columns")
    off = left.assign(fraud_rate_30d=[0.1, None, 0.31])
    differ = sync.engine_equality(left, off, compare(off), engine="spark")
    assert differ["equal"] is False and "fraud_rate_30d" in differ["verdict"] and differ["difference"]
    cast = left.astype({"user_id": "Int64"})     # same values, another dtype: not the same frame
    assert sync.engine_equality(left, cast, compare(cast), engine="spark")["equal"] is False
    skipped = sync.engine_equality(None, None, None, engine="duckdb")
    assert skipped["compared"] is False and skipped["equal"] is None
    assert 'offline_engine="spark"' in skipped["verdict"]
    with pytest.raises(ValidationError, match="engine"):
        sync.engine_equality(left, left, None, engine="")
    with pytest.raises(ValidationError, match="both frames"):
        sync.engine_equality(left, None, None, engine="spark")
