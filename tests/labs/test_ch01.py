"""Chapter 1 lab functions and grading criteria, against independent references."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_kit.datasets import Scenario, generate_world, training_set, user_profile_features
from mlops_kit.errors import IntegrityError, ValidationError
from mlops_kit.evidence.grading.ch01 import percentile_linear, rank_auc
from mlops_kit.labs import ch01 as L
from mlops_kit.labs import ch01_ops as O
from mlops_kit.labs import ch01_repro as R
from mlops_kit.quality import SLO, Alert
from mlops_kit.quality.drift_stats import psi
from mlops_kit.workspace import Workspace


@pytest.fixture(scope="module")
def world():
    return generate_world(Scenario.small(), seed=3)


@pytest.fixture(scope="module")
def now(world):
    return world.scenario.end


@pytest.fixture(scope="module")
def frame(world):
    return training_set(world)


@pytest.fixture(scope="module")
def replica(world, now, tmp_path_factory):
    return L.build_platform(Workspace(tmp_path_factory.mktemp("replica")), world, now=now, shards=(1, 3))


# -- independent helpers of the grader ----------------------------------------------------
def test_rank_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300).tolist()
    scores = np.round(rng.random(300), 1).tolist()          # many ties
    assert rank_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_percentile_linear_matches_numpy():
    values = np.random.default_rng(1).exponential(size=57).tolist()
    for q in (50, 90, 95, 99):
        assert percentile_linear(values, q) == pytest.approx(np.percentile(values, q), abs=1e-12)


# -- reproducibility ------------------------------------------------------------------------
def test_latest_table_holds_exactly_rows_known_at_as_of(world, frame):
    as_of = world.scenario.start + timedelta(days=50)
    table = R.latest_training_table(world, as_of=as_of, frame=frame)
    ingested = dict(zip(world.transactions["transaction_id"], world.transactions["ingested_at"]))
    expected = [tid for tid, lt in zip(frame["transaction_id"], frame["label_timestamp"])
                if lt <= as_of and ingested[tid] <= as_of]
    assert table["transaction_id"].tolist() == expected
    later = R.latest_training_table(world, as_of=as_of + timedelta(days=2), frame=frame)
    assert set(table["transaction_id"]) < set(later["transaction_id"])


def test_snapshot_id_is_the_file_sha256_and_edits_are_refused(tmp_path, frame):
    ws = Workspace(tmp_path / "ws")
    table = frame.head(200)[["transaction_id", "amount", "is_fraud"]]
    snap = R.write_snapshot(ws, table)
    path = ws.snapshots_dir / f"{snap}.parquet"
    assert snap == hashlib.sha256(path.read_bytes()).hexdigest()
    assert R.write_snapshot(ws, table) == snap                          # same content, same id
    pd.testing.assert_frame_equal(R.load_snapshot(ws, snap), table.reset_index(drop=True))
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(IntegrityError):
        R.load_snapshot(ws, snap)


# -- platform, SLOs ------------------------------------------------------------------------
def test_replica_misses_exactly_the_unrestored_shards(world, now, replica, frame):
    users = sorted(set(world.transactions["user_id"].tolist()))[:60]
    rows = replica.get_online_features(["user_transaction_stats:txn_count_7d"], [{"user_id": u} for u in users],
                                       include_timestamps=True)
    last_seen = world.transactions.groupby("user_id")["event_timestamp"].max()
    for user, ts in zip(users, rows["user_transaction_stats__event_timestamp"]):
        in_shard = user % L.N_SHARDS in (1, 3)
        fresh = now - last_seen[user] <= timedelta(days=7)
        assert (ts is not None) == (in_shard and fresh), user


def test_serve_requests_uses_fallback_exactly_for_missing_keys(world, now, replica, frame):
    recent = frame[frame["event_timestamp"] >= pd.Timestamp(now - timedelta(days=5))].head(80).reset_index(drop=True)
    recent.insert(0, "request_id", np.arange(len(recent)))
    _, model = O.skew_experiment(world, seed=0, frame=frame)
    fallback = O.fit_fallback(frame)
    served = O.serve_requests(replica, recent, model, fallback, now=now)
    missing = served["feature_age_h"].isna()
    assert missing.any() and (~missing).any()
    assert served["fallback_used"].tolist() == missing.tolist()
    assert served["served"].all()
    unserved = O.serve_requests(replica, recent, model, fallback, now=now, use_fallback=False)
    assert unserved["served"].tolist() == (~missing).tolist()


def test_slo_table_and_stall_match_a_hand_computation():
    slo = SLO(name="age", kind="freshness", indicator="feature_age_hours", statistic="p95", objective=10.0,
              window=timedelta(days=1), owner="team", alert=Alert(name="A", severity="critical", route="pager"))
    ages = np.arange(1.0, 21.0) / 2                       # 0.5 .. 10.0
    obs = pd.DataFrame({"indicator": "feature_age_hours", "value": ages})
    table = L.evaluate_slos([slo], obs)
    assert table.loc[0, "verdict"] == "met"
    assert table.loc[0, "observed"] == pytest.approx(round(float(np.percentile(ages, 95)), 2))
    stalled = L.slos_after_delay([slo], obs, 1)
    assert stalled.loc[0, "verdict"] == "breached" and stalled.loc[0, "fires"]
    with pytest.raises(ValidationError):
        L.slos_after_delay([slo], obs, -3)


def test_contract_lag_is_the_p90_ingestion_delay(world, now, replica):
    lags = L.measure_contract_lags(world, replica, now=now).set_index("boundary")
    delay = sorted(((world.transactions["ingested_at"] - world.transactions["event_timestamp"])
                    .dt.total_seconds() / 3600).tolist())
    assert lags.loc["data -> features", "measured_h"] == pytest.approx(percentile_linear(delay, 90), abs=1e-3)
    assert lags.loc["features -> online", "measured_h"] == 0.0


# -- failure modes -------------------------------------------------------------------------
def test_naive_join_picks_the_latest_row_and_future_rows_are_counted(world):
    profiles = user_profile_features(world).drop(columns="created_timestamp")
    rows = world.transactions[["transaction_id", "user_id", "event_timestamp"]].head(300)
    joined = O.naive_latest_join(rows, profiles, "user_id")
    latest = profiles.groupby("user_id")["event_timestamp"].max()
    future = 0
    for user, ts, ft in zip(joined["user_id"], joined["event_timestamp"], joined["feature_timestamp"]):
        assert ft == latest[user]
        future += ft > ts
    assert O.future_rows(joined) == future > 0


def test_skew_mismatch_disappears_with_the_shared_definition(world, frame):
    result, _ = O.skew_experiment(world, seed=0, frame=frame)
    assert result["shared_definition"]["score_mismatch_rate"] == 0.0
    assert result["hand_written_defaults"]["score_mismatch_rate"] > 0.0
    assert result["rows_with_a_null_default"] > 0


def test_drift_response_psi_matches_the_graders_implementation():
    from mlops_kit.evidence.grading.recompute import psi_from_samples

    rng = np.random.default_rng(5)
    ref, cur = rng.lognormal(3, 1, 2000), rng.lognormal(3, 1, 2000)
    out = O.drift_response(ref, cur, magnitude=0.5)
    assert out["psi"] == pytest.approx(psi_from_samples(ref, cur * 1.5)[0], abs=1e-4)
    expected = "none" if out["psi"] < 0.1 else "page" if out["psi"] < 0.25 else "mitigate"   # default bands, critical
    assert out["action"] == expected
    assert O.drift_response(ref, cur, magnitude=2.0)["action"] == "mitigate"
    assert O.drift_response(ref, ref)["action"] == "none"
    assert psi(ref, ref) == 0.0


def test_drift_response_uses_the_tests_verdict_below_the_psi_bands():
    from scipy import stats

    rng = np.random.default_rng(11)
    ref = rng.lognormal(3, 1, 5000)
    cur = rng.lognormal(3, 1, 5000) * 1.12            # a small, real shift: PSI stays under 0.1
    out = O.drift_response(ref, cur)
    assert out["psi"] < 0.1
    assert stats.ks_2samp(ref, cur).pvalue < 0.05     # an independent two-sample test agrees: drift
    assert out["verdict"] == "drift" and out["level"] == "moderate" and out["action"] == "page"
    same = O.drift_response(ref, rng.permutation(ref))
    assert same["verdict"] == "no_drift" and same["level"] == "none"


# -- observability and runbook -------------------------------------------------------------
def test_prediction_log_hashes_and_buckets_independently_recomputed():
    served = pd.DataFrame({"request_id": [0, 1, 2], "user_id": [7, 7, 9], "amount": [5.0, 50.0, 1500.0],
                           "feature_age_h": [1.0, None, 3.0], "fallback_used": [False, True, False],
                           "score": [0.2, 0.05, 0.9]})
    log = O.prediction_log(served, model_version="m:1", scored_at=pd.Timestamp("2024-03-01", tz="UTC"),
                           salt="pepper", threshold=0.5)
    assert log["user_ref"].tolist() == [hashlib.sha256(f"pepper|{u}".encode()).hexdigest()[:16] for u in (7, 7, 9)]
    assert log["amount_bucket"].tolist() == ["<10", "[50, 200)", ">=1000"]
    assert log["decision"].tolist() == ["approve", "approve", "review"]
    raw = served[["request_id", "user_id", "amount"]]
    assert O.raw_value_hits(log, raw) == {"user_id": 0, "amount": 0}
    assert O.raw_value_hits(served[["request_id", "user_id", "score"]], raw) == {"user_id": 3, "amount": 0}
    metrics = O.log_metrics(log)
    assert metrics["fallback_rate"] == pytest.approx(1 / 3, abs=1e-4)
    rules = O.evaluate_rules(metrics).set_index("metric")
    assert rules.loc["fallback_rate", "fires"] and not rules.loc["unserved_rate", "fires"]


def test_taxonomy_checks_name_each_problem():
    signals = {"FeatureFreshnessBurn", "fallback_rate", "FeatureParityBroken", "drift_psi_major",
               "OnlineLatencyP99", "OnlineLatencyP95", "rows_scanned_per_run"}
    assert O.check_taxonomy(O.TAXONOMY, signals) == []
    problems = O.check_taxonomy(O.TAXONOMY[1:], signals - {"rows_scanned_per_run"})
    assert "incident class 'data outage' is missing" in problems
    assert any(p.startswith("cost spike: detection signals") for p in problems)
    assert "| data outage | SEV1 |" in O.render_runbook(O.TAXONOMY, slos=L.default_slos())


def test_train_and_score_is_deterministic_and_uses_a_time_split(world, frame):
    table = R.latest_training_table(world, as_of=world.scenario.end + timedelta(days=30), frame=frame)
    first, second = R.train_and_score(table, seed=1), R.train_and_score(table, seed=1)
    assert first == second
    assert first["n_train"] + first["n_test"] == first["rows"] == len(table)


# -- presentation helpers (ch01_views) -----------------------------------------------------
def test_views_records_and_tables_match_hand_built_values():
    from mlops_kit.labs import ch01_views as V

    drift = {"stable": {"psi": 0.01, "level": "none", "action": "none"},
             "current": {"psi": 0.4, "level": "major", "action": "mitigate"}}
    assert V.drift_psi_record(drift) == {"reference": "drift_reference.csv", "features": [
        {"column": "amount", "current": "drift_stable.csv", "psi": 0.01, "bins": 10, "level": "none", "action": "none"},
        {"column": "amount", "current": "drift_current.csv", "psi": 0.4, "bins": 10, "level": "major",
         "action": "mitigate"}]}
    phase = pd.DataFrame({"served": [True, True, False, True], "fallback_used": [False, True, False, False],
                          "feature_age_h": [1.0, None, None, 2.0]})
    table = V.outage_table({"a": phase, "b": phase.assign(served=True)})
    assert table.loc["a"].to_dict() == {"served": 0.75, "served_by_fallback": 0.25, "missing_keys": 0.5}
    assert table.loc["b", "served"] == 1.0 and list(table.index) == ["a", "b"]
    rules = pd.DataFrame({"metric": ["unserved_rate", "fallback_rate"], "threshold": [0.01, 0.05],
                          "fires": [False, True]})
    record = V.observability_record({"fallback_rate": 0.3}, rules, rules.assign(fires=False), {"user_id": 0})
    assert record["fallback_rule_threshold"] == 0.05 and record["fallback_rule_fires"] is True
    assert record["amount_edges"] == [10, 50, 200, 1000] and record["raw_value_hits"] == {"user_id": 0}
    assert record["rules"][1] == {"metric": "fallback_rate", "threshold": 0.05, "fires": True}
    assert not any(r["fires"] for r in record["healthy_rules"])


def test_views_figures_draw_the_given_numbers():
    import matplotlib.pyplot as plt

    from mlops_kit.labs import ch01_views as V

    aucs = {"offline_leaky_auc": 0.9, "offline_pit_auc": 0.8, "production_leaky_auc": 0.7, "production_pit_auc": 0.82}
    fig = V.plot_leakage_gap(aucs)
    assert [round(p.get_height(), 6) for p in fig.axes[0].patches] == [0.9, 0.8, 0.7, 0.82]
    plt.close(fig)
    rng = np.random.default_rng(1)
    samples = {n: pd.DataFrame({"amount": rng.lognormal(3 + i * 0.5, 1, 500)}) for i, n in
               enumerate(("reference", "stable", "current"))}
    fig = V.plot_drift_amounts(samples, {"stable": {"psi": 0.012}, "current": {"psi": 0.3}})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["reference, days 20-30", "stable, days 30-40 (PSI 0.012)", "current, days 45-60 (PSI 0.300)"]
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)


# -- exercise checkers (ch01_checks) -------------------------------------------------------
def _reference_asof(rows, features, key):
    right = features.assign(feature_timestamp=features["event_timestamp"]).sort_values("event_timestamp", kind="stable")
    left = rows.assign(_order=np.arange(len(rows))).sort_values("event_timestamp", kind="stable")
    out = pd.merge_asof(left, right, on="event_timestamp", by=key, direction="backward")
    return out.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def test_asof_oracle_agrees_with_merge_asof_and_the_checker_catches_each_mistake(world):
    from mlops_kit.datasets import entity_frame
    from mlops_kit.labs import ch01_checks as C

    rows = entity_frame(world)[["transaction_id", "user_id", "event_timestamp"]].head(400)
    feats = user_profile_features(world).drop(columns="created_timestamp")
    feats = feats[feats["user_id"].isin(rows["user_id"])]
    want = C.asof_oracle(rows, feats, "user_id")
    got = _reference_asof(rows, feats, "user_id")
    assert want["transaction_id"].tolist() == got["transaction_id"].tolist()
    assert (pd.to_datetime(want["feature_timestamp"], utc=True).fillna(pd.Timestamp(0, tz="UTC"))
            == got["feature_timestamp"].fillna(pd.Timestamp(0, tz="UTC"))).all()
    probe = rows.sample(n=100, random_state=1).reset_index(drop=True)
    reference = C.asof_oracle(probe, feats, "user_id")

    def run(fn):
        return C.asof_exercise_check(fn, fn(rows, feats, "user_id"), rows=rows, features=feats, probe=probe,
                                     reference=reference)

    assert run(_reference_asof)["passed"]
    strict = lambda r, f, k: _reference_asof_strict(r, f, k)                          # noqa: E731
    sorted_out = lambda r, f, k: _reference_asof(r, f, k).sort_values("event_timestamp").reset_index(drop=True)  # noqa: E731
    own_time = lambda r, f, k: _reference_asof(r, f, k).assign(feature_timestamp=r["event_timestamp"].to_numpy())  # noqa: E731
    for wrong in (strict, sorted_out, own_time, O.naive_latest_join):
        result = run(wrong)
        assert not result["passed"] and result["observed"]["case_problems"], wrong


def _reference_asof_strict(rows, features, key):   # "before" instead of "at or before"
    right = features.assign(feature_timestamp=features["event_timestamp"]).sort_values("event_timestamp", kind="stable")
    left = rows.assign(_order=np.arange(len(rows))).sort_values("event_timestamp", kind="stable")
    out = pd.merge_asof(left, right, on="event_timestamp", by=key, direction="backward", allow_exact_matches=False)
    return out.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def test_quality_slo_problems_name_each_mistake():
    from mlops_kit.labs import ch01_checks as C

    obs = pd.DataFrame({"indicator": ["feature_null"] * 50 + ["parity_mismatch"] * 50, "value": 0.0})
    good = dict(name="nulls", kind="quality", indicator="feature_null", statistic="rate", objective=0.05,
                window=timedelta(days=1), owner="risk-features",
                alert=Alert(name="N", severity="warning", route="jira:X"))
    assert C.quality_slo_problems(SLO(**good), observations=obs, owner="risk-features") == []
    mistakes = {"statistic": "p95", "indicator": "parity_mismatch", "objective": 0.1, "kind": "freshness",
                "window": timedelta(days=2), "owner": "ml-platform",
                "alert": Alert(name="N", severity="critical", route="pagerduty:x")}
    for field, value in mistakes.items():
        problems = C.quality_slo_problems(SLO(**{**good, field: value}), observations=obs, owner="risk-features")
        assert len(problems) == 1, (field, problems)
    assert C.quality_slo_problems(None, observations=obs, owner="x") == ["quality_slo must be an SLO, got NoneType"]


def test_reproducibility_check_needs_one_snapshot_and_a_moving_table(tmp_path, frame):
    from mlops_kit.labs import ch01_checks as C

    ws = Workspace(tmp_path / "ws")
    table = frame.head(3000)[["transaction_id", "event_timestamp", "is_fraud", *R._TABLE_COLUMNS[3:]]]
    snap = R.write_snapshot(ws, table)
    other = R.write_snapshot(ws, table.head(2500))
    latest = [{"fingerprint": "a", "auc": 0.7}, {"fingerprint": "b", "auc": 0.71}]
    same = [R.snapshot_run(ws, snap, seed=0) for _ in range(2)]
    copy = ws.snapshots_dir / f"{snap}.parquet"
    kwargs = dict(snap_id=snap, snapshot_copy=copy, tolerance=1e-9, tamper_refused=True)
    assert same[0]["fingerprint"] == snap and C.reproducibility_check(latest, same, **kwargs)["passed"]
    mixed = [same[0], R.snapshot_run(ws, other, seed=0)]
    assert not C.reproducibility_check(latest, mixed, **kwargs)["passed"]
    assert not C.reproducibility_check([latest[0], latest[0]], same, **kwargs)["passed"]
    assert not C.reproducibility_check(latest, same, **{**kwargs, "tamper_refused": False})["passed"]
