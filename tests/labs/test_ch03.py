"""Chapter 3 lab functions and the quality-gate criterion, checked against plain-pandas references."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit.datasets import Scenario, generate_world
from mlops_kit.errors import ValidationError
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.evidence.grading.ch03 import grade_quality_gate
from mlops_kit.labs import ch03, ch03_checks as checks, ch03_ops as ops
from mlops_kit.quality import NullRateCheck, ResponsePolicy


@pytest.fixture(scope="module")
def data():
    return ch03.make_data(seed=3, scale=0.2)


@pytest.fixture(scope="module")
def deliveries(data):
    clean = ch03.upstream_batch(data.messy, first_day=50, days=7)
    return clean, ch03.break_upstream(clean, seed=3), ch03.repair_upstream(clean)


def _brute_blocking(batch: pd.DataFrame) -> list[str]:
    """The blocking failures of the reference suite, computed with plain pandas."""
    out = []
    seg = batch.groupby("segment")["amount"].apply(lambda s: (len(s), int(s.isna().sum())))
    if any(n >= 100 and nulls / n > 0.01 for n, nulls in seg):    # min_rows=100: smaller segments unjudged
        out.append("amount_nulls_by_segment")
    amounts = batch["amount"].dropna()
    if ((amounts < 0.01) | (amounts > 50_000)).any():
        out.append("amount_range")
    days = batch["event_timestamp"].dt.strftime("%Y-%m-%d")
    if pd.DataFrame({"d": days, "t": batch["transaction_id"]}).duplicated().any():
        out.append("transaction_id_unique")
    if (~batch["channel"].isin(["in_store", "online", "contactless"])).any():
        out.append("channel_taxonomy")
    if (batch["ingested_at"] < batch["event_timestamp"]).any():
        out.append("ingested_after_event")
    return sorted(out)


def test_break_upstream_touches_only_what_it_says(deliveries):
    clean, broken, _ = deliveries
    nulls = broken["amount"].isna()
    assert nulls.sum() > 0 and set(broken.loc[nulls, "segment"]) == {"premium"}
    assert clean["amount"].notna().all()
    share = nulls[broken["segment"] == "premium"].mean()
    assert 0.15 < share < 0.35
    unknown = ~broken["channel"].isin(["in_store", "online", "contactless"])
    assert set(broken.loc[unknown, "channel"]) == {"wallet"}
    same = broken.drop(columns=["amount", "channel"]).equals(clean.drop(columns=["amount", "channel"]))
    assert same
    again = ch03.break_upstream(clean, seed=3)
    assert again.equals(broken)


def test_repair_keeps_first_delivery(deliveries):
    clean, _, fixed = deliveries
    assert clean["transaction_id"].duplicated().any()
    first = {}
    for row in clean.sort_values("ingested_at").itertuples():  # a plain loop: first ingested wins
        first.setdefault(row.transaction_id, row.ingested_at)
    assert len(fixed) == len(first)
    assert all(first[t] == at for t, at in zip(fixed["transaction_id"], fixed["ingested_at"]))


def test_gate_blocks_exactly_the_broken_checks_and_training_never_runs(data, deliveries):
    _, broken, fixed = deliveries
    suite = ch03.transactions_suite()
    calls = []
    now = data.messy.scenario.start + timedelta(days=57, hours=1)
    first = ch03.gated_training(broken, suite, lambda b: calls.append(len(b)), now=now)
    assert not first["trained"] and calls == []
    listed = sorted(f["check_id"] for f in first["error"].details["failures"])
    assert listed == _brute_blocking(broken) == ["amount_nulls_by_segment", "channel_taxonomy",
                                                 "transaction_id_unique"]
    second = ch03.gated_training(fixed, suite, lambda b: calls.append(len(b)), now=now)
    assert second["trained"] and calls == [len(fixed)] and _brute_blocking(fixed) == []


def test_exercise_checks(deliveries):
    _, broken, fixed = deliveries
    right = NullRateCheck(id="n", severity="block", owner="o", remediation="r", column="amount",
                          max_rate=0.01, segment_by=("segment",))
    assert checks.check_null_check(right, broken, fixed) == []
    # the owner, when the catalog's is given: the producing team first, a contact may follow
    assert checks.check_null_check(right, broken, fixed, owner="o") == []
    paged = NullRateCheck(id="n", severity="block", owner="o (#o-oncall)", remediation="r", column="amount",
                          max_rate=0.01, segment_by=("segment",))
    assert checks.check_null_check(paged, broken, fixed, owner="o") == []
    (problem,) = checks.check_null_check(right, broken, fixed, owner="payments-data")
    assert "owner" in problem and "'o'" in problem
    with pytest.raises(ValidationError, match="owner"):
        checks.check_null_check(right, broken, fixed, owner=" ")
    warn = NullRateCheck(id="n", severity="warn", owner="o", remediation="r", column="amount", max_rate=0.01,
                         segment_by=("segment",))
    assert any("severity" in p for p in checks.check_null_check(warn, broken, fixed))
    glob = NullRateCheck(id="n", severity="block", owner="o", remediation="r", column="amount", max_rate=0.05)
    assert any("segment_by" in p for p in checks.check_null_check(glob, broken, fixed))
    good = {"inconclusive": "page", "none": "none", "moderate": "page", "major": "mitigate"}
    assert checks.check_critical_rules(good) == []
    assert checks.check_critical_rules({**good, "major": "page"})
    assert checks.check_critical_rules({**good, "inconclusive": "none"})
    assert checks.check_critical_rules({**good, "none": "page"})  # also non-monotone: refused by the policy
    assert checks.check_critical_rules({"none": "none"})
    assert checks.policy_with(good).evaluate(criticality="critical", psi=0.3).action == "mitigate"


@pytest.mark.parametrize("measured, cause", [
    (dict(offline_psi=0.3, online_psi=0.3, parity_mismatch=0.0), "world: covariate drift"),
    (dict(offline_psi=0.01, online_psi=0.2, parity_mismatch=0.0), "pipeline: serving path"),
    (dict(offline_psi=0.3, online_psi=0.3, parity_mismatch=0.2), "pipeline: serving path"),
    (dict(offline_psi=0.3, online_psi=0.02, parity_mismatch=0.0), "pipeline: offline backfill or stale online cache"),
    (dict(offline_psi=0.01, online_psi=0.01, parity_mismatch=0.0, label_shift=0.5), "world: concept drift"),
    (dict(offline_psi=0.01, online_psi=0.01, parity_mismatch=0.0, label_shift=0.1), "no drift"),
])
def test_triage_rules(measured, cause):
    assert ch03.triage(**measured)["cause"] == cause


def test_triage_refuses_bad_input():
    with pytest.raises(ValidationError):
        ch03.triage(offline_psi=-1, online_psi=0.1, parity_mismatch=0)


def test_label_shift_hand_computed():
    ref = pd.DataFrame({"merchant_category": ["a", "a", "b", "b"], "is_fraud": [True, False, True, False]})
    cur = pd.DataFrame({"merchant_category": ["a", "a", "b", "b"], "is_fraud": [True, True, False, False]})
    # fraud mix: reference a 1/2, b 1/2; current a 1, b 0 -> TVD 0.5
    out = ch03.label_shift(ref, cur)
    assert out["fraud_mix_tvd"] == 0.5
    assert out["fraud_rate"].loc["a", "current"] == 1.0 and out["fraud_rate"].loc["b", "current"] == 0.0


def test_drift_at_grows_with_magnitude_and_maps_to_actions():
    ref = np.random.default_rng(0).lognormal(3.5, 0.8, 4000)
    policy = ResponsePolicy.default()
    table = ch03.drift_response_table(ref, [0.0, 0.2, 0.5, 1.0], policy=policy)
    assert list(table["psi"]) == sorted(table["psi"]) and table["psi"].iloc[0] < 0.01
    for row in table.itertuples():
        # the level by hand: PSI bands, and a failed test lifts "none" to "moderate"
        level = "major" if row.psi >= 0.25 else "moderate" if row.psi >= 0.1 or row.verdict == "drift" else "none"
        assert row.level == level
        assert row.action == {"none": "none", "moderate": "page", "major": "mitigate"}[level]
    test_only = table[(table["psi"] < 0.1) & (table["verdict"] == "drift")]
    assert len(test_only) == 1 and test_only["action"].tolist() == ["page"]   # +20 %: the test sees it, PSI does not
    with pytest.raises(ValidationError):
        ch03.drift_at(ref, 9.0, policy=policy)


def test_drift_frames_windows(data):
    ref, cur = ch03.drift_frames(data.covariate)
    start = data.covariate.scenario.start
    assert ref["event_timestamp"].min() >= start + timedelta(days=20)
    assert ref["event_timestamp"].max() < start + timedelta(days=40) <= cur["event_timestamp"].min()
    rs, cs = ch03.drift_samples(ref, cur, n=50, seed=1)
    assert len(rs) == len(cs) == 50 and list(rs.columns) == ["segment", *ch03.NUMERIC_DRIFT]


def test_cost_experiment_scans_less_and_agrees(tmp_path):
    world = generate_world(Scenario.default().with_scale(0.1), seed=2)
    out = ops.cost_experiment(world, tmp_path / "cost", first_cut_day=50, sample_users=20, seed=1)
    report = out["report"].set_index("mode")
    txn = world.transactions.drop_duplicates("transaction_id")
    landed = txn[txn["ingested_at"] < world.scenario.start + timedelta(days=51)]
    assert int(report.loc["full_refresh", "rows_scanned"]) == len(landed) == int(out["inventory"]["rows"].sum())
    assert report.loc["incremental", "rows_scanned"] < report.loc["full_refresh", "rows_scanned"]
    assert bool(report["values_identical"].all())
    assert out["full_sample"].equals(out["incremental_sample"]) and len(out["full_sample"]) > 0


def test_feature_store_access_and_privacy(tmp_path, data):
    clock = ch03.lab_clock(data.default)
    store, views = ops.feature_store(tmp_path / "ws", data.default, clock=clock)
    assert len(store.offline_files("card_holder")) == 1
    rows = ops.entity_rows(data.default, n=20, at=data.default.scenario.end, seed=1)
    denied = ops.try_read(store, rows, ["card_holder:segment"], principal=None, purpose="t")
    assert not denied["allowed"] and denied["denied"][0]["view"] == "card_holder"
    ok = ops.try_read(store, rows, ["user_credit:credit_limit"], principal=None, purpose="t")
    assert ok["allowed"] and ok["rows"] == 20
    summary = ops.privacy_summary(pd.Series(["a", "a", "b", None]), pd.Series(["x", "x", "x", None]), k=2)
    assert summary == {"k": 2, "before": {"distinct": 2, "smallest_group": 1, "groups_below_k": 1},
                       "after": {"distinct": 1, "smallest_group": 3, "groups_below_k": 0}}


def test_backfill_store_window_error(tmp_path, data):
    clock = ch03.lab_clock(data.default)
    store, good, lo, hi = ops.backfill_store(tmp_path / "bf", data.default, clock=clock, first_day=45, days=2)
    before = ops.window_error(store, good, lo, hi, n=40, seed=0)
    assert before["wrong_rows"] > 0 and before["mean_ratio_avg_7d"] == pytest.approx(ops.FX_BUG, abs=1e-3)

    def compute(a, b):
        return good[(good["event_timestamp"] >= a) & (good["event_timestamp"] < b)]

    from mlops_kit.features import BackfillThresholds

    store.backfill("user_activity", lo, hi, compute=compute, thresholds=BackfillThresholds(rtol=0.1),
                   sleep=lambda s: None, promote=True)
    after = ops.window_error(store, good, lo, hi, n=40, seed=0)
    assert after["wrong_rows"] == 0 and after["live_version"] == 2


# -- graded criteria on hand-built packs ---------------------------------------------------------
def _ctx(tmp_path):
    (tmp_path / "ch03").mkdir(exist_ok=True)
    return GradingContext(tmp_path, {}, [])


def test_grade_quality_gate(tmp_path, deliveries):
    _, broken, fixed = deliveries
    ctx = _ctx(tmp_path)
    broken.to_parquet(tmp_path / "ch03" / "b.parquet", index=False)
    fixed.to_parquet(tmp_path / "ch03" / "f.parquet", index=False)
    claim = {"suite": ch03.transactions_suite().to_dict(), "broken_sample": "b.parquet", "fixed_sample": "f.parquet",
             "blocking": _brute_blocking(broken), "fixed_blocking": []}
    (tmp_path / "ch03" / "quality_gate.json").write_text(json.dumps(claim))
    assert grade_quality_gate(ctx).level == 4
    claim["blocking"] = claim["blocking"][:2]  # a gate that forgot one failure
    (tmp_path / "ch03" / "quality_gate.json").write_text(json.dumps(claim))
    assert grade_quality_gate(ctx).level == 0
    claim["blocking"], claim["fixed_sample"] = _brute_blocking(broken), "b.parquet"  # "fixed" still broken
    (tmp_path / "ch03" / "quality_gate.json").write_text(json.dumps(claim))
    assert grade_quality_gate(ctx).level == 2


def test_level_of_and_responses_verdict_by_hand():
    assert [checks.level_of(p, v) for p, v in ((0.05, "drift"), (0.05, "no_drift"), (0.1, "no_drift"),
                                                (0.25, "no_drift"), (None, "inconclusive"))] == \
        ["moderate", "none", "moderate", "major", "inconclusive"]
    rules = {"inconclusive": "page", "none": "none", "moderate": "ticket", "major": "mitigate"}
    rows = pd.DataFrame({"magnitude": [0.0, 0.2, 0.8], "psi": [0.0, 0.04, 0.4],
                         "verdict": ["no_drift", "drift", "drift"], "action": ["none", "ticket", "mitigate"]})
    assert checks.responses_verdict(rows, rules)["passed"]
    ignored = rows.assign(action=["none", "none", "mitigate"])   # PSI-only: the failed test is dropped
    verdict = checks.responses_verdict(ignored, rules)
    assert not verdict["passed"] and verdict["observed"]["wrong"] == ["x1.20: none (expected ticket)"]
    assert not checks.responses_verdict(rows.iloc[[0, 2]], rules)["passed"]   # no test-only row to show


def test_triage_cases_measure_the_injected_fault(data):
    def serving_bug(current):
        return current["amount"].where(current["segment"] != "business", current["amount"] * 100)
    cases = checks.triage_cases({"healthy": (data.default, None), "bug": (data.default, serving_bug)},
                                drift_at=0.1, parity_at=0.01, label_at=0.3).set_index("case")
    _, cur = ch03.drift_frames(data.default)
    # parity mismatch = the share of business rows (x100 changes every non-zero amount), by hand
    assert cases.loc["bug", "parity_mismatch"] == round(float((cur["segment"] == "business").mean()), 4)
    assert cases.loc["healthy", "parity_mismatch"] == 0 and cases.loc["bug", "worst_segment_online"] == "business"
    assert cases.loc["bug", "cause"] == "pipeline: serving path"
    with pytest.raises(ValidationError):
        checks.triage_cases({}, drift_at=0.1, parity_at=0.01, label_at=0.3)


def test_gate_verdict_needs_the_learners_check_and_one_training(deliveries):
    _, broken, fixed = deliveries
    suite = ch03.transactions_suite()
    now = broken["event_timestamp"].max() + timedelta(hours=1)
    trainings = []
    first = ch03.gated_training(broken, suite, lambda b: trainings.append(len(b)), now=now)
    second = ch03.gated_training(fixed, suite, lambda b: trainings.append(len(b)), now=now)
    ok = checks.gate_verdict(first, second, trainings, fixed, null_check_id="amount_nulls_by_segment")
    assert ok["passed"] and "amount_nulls_by_segment" in ok["observed"]["blocking"]
    assert not checks.gate_verdict(first, second, trainings, fixed, null_check_id="other")["passed"]
    assert not checks.gate_verdict(first, second, trainings * 2, fixed, null_check_id="amount_nulls_by_segment")[
        "passed"]
