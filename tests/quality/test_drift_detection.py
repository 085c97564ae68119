"""Per-column method choice, inconclusive small samples, segments, dataset share, responses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlops_kit.errors import DefinitionError, SchemaError, ValidationError
from mlops_kit.quality import ResponsePolicy, column_drift, drift_report

RNG_SEED = 11


def rng():
    return np.random.default_rng(RNG_SEED)


@pytest.mark.parametrize("n, kind, method", [
    (500, "numeric", "ks"), (1000, "numeric", "ks"), (1001, "numeric", "wasserstein"),
    (500, "categorical", "chi_square"), (3000, "categorical", "jensen_shannon"),
])
def test_method_choice_follows_evidently_defaults(n, kind, method):
    g = rng()
    ref = g.normal(size=n) if kind == "numeric" else g.choice(list("abcd"), n)
    cur = g.normal(size=n) if kind == "numeric" else g.choice(list("abcd"), n)
    result = column_drift(ref, cur)
    assert (result.kind, result.method) == (kind, method)


def test_numeric_with_few_unique_values_is_treated_as_categorical():
    g = rng()
    result = column_drift(g.integers(0, 5, 400), g.integers(0, 5, 400))
    assert (result.kind, result.method) == ("categorical", "chi_square")


def test_ks_rule_uses_p_le_threshold_and_matches_scipy():
    g = rng()
    ref, cur = g.normal(size=400), g.normal(0.4, 1, size=400)
    result = column_drift(ref, cur)
    p = stats.ks_2samp(ref, cur).pvalue
    assert result.statistic == pytest.approx(p) and result.verdict == ("drift" if p <= 0.05 else "no_drift")
    assert result.verdict == "drift"
    same = column_drift(ref, g.normal(size=400))
    assert same.verdict == "no_drift" and same.level == "none"


def test_wasserstein_rule_on_large_samples():
    g = rng()
    ref = g.normal(10, 2, size=5000)
    shifted = column_drift(ref, g.normal(10.4, 2, size=5000))   # shift = 0.2 std
    assert shifted.method == "wasserstein" and shifted.statistic == pytest.approx(0.2, abs=0.05)
    assert shifted.verdict == "drift"
    assert column_drift(ref, g.normal(10, 2, size=5000)).verdict == "no_drift"


def test_categorical_reports_psi_unknown_rate_and_topk():
    ref = ["EUR"] * 600 + ["USD"] * 400
    cur = ["EUR"] * 500 + ["USD"] * 300 + ["JPY"] * 200
    result = column_drift(ref, cur)
    assert result.method == "chi_square" and result.verdict == "drift"
    assert result.extra["unknown_rate"] == pytest.approx(0.2)
    expected_psi = ((0.5 - 0.6) * np.log(0.5 / 0.6) + (0.3 - 0.4) * np.log(0.3 / 0.4)
                    + (0.2 - 0.0001) * np.log(0.2 / 0.0001))
    assert result.psi == pytest.approx(expected_psi)
    assert result.level == "major"


def test_too_little_data_is_inconclusive_never_no_drift():
    g = rng()
    result = column_drift(g.normal(size=29), g.normal(size=500))
    assert result.verdict == "inconclusive" and result.statistic is None and result.level == "inconclusive"
    assert "30" in result.message
    assert column_drift(g.normal(size=29), g.normal(size=29), min_samples=20).verdict != "inconclusive"


def test_drift_report_segments_and_share():
    g = rng()
    n = 800
    ref = pd.DataFrame({"amount": g.normal(50, 10, n), "hour": g.normal(12, 4, n),
                        "channel": g.choice(["web", "pos"], n), "country": g.choice(["FR", "DE", "IT"], n)})
    cur = pd.DataFrame({"amount": g.normal(50, 10, n), "hour": g.normal(12, 4, n),
                        "channel": g.choice(["web", "pos"], n), "country": g.choice(["FR", "DE", "IT"], n)})
    web = cur["channel"] == "web"
    cur.loc[web, "amount"] += 15                       # drift only in the web segment
    report = drift_report(ref, cur, columns=["amount", "hour", "country"], segment_by="channel")
    overall = {r.column: r.verdict for r in report.overall}
    assert overall["amount"] == "drift"
    seg = {(r.segment["channel"], r.column): r.verdict for r in report.results if r.segment}
    assert seg[("web", "amount")] == "drift" and seg[("pos", "amount")] == "no_drift"
    conclusive = [r for r in report.overall if r.verdict != "inconclusive"]
    assert report.drift_share == pytest.approx(sum(r.verdict == "drift" for r in conclusive) / len(conclusive))
    assert report.dataset_verdict == ("drift" if report.drift_share >= 0.5 else "no_drift")
    frame = report.to_frame()
    assert len(frame) == 3 + 2 * 3 and set(frame["verdict"]) <= {"drift", "no_drift", "inconclusive"}
    json.dumps(report.to_dict())


def test_drift_report_all_inconclusive():
    small = pd.DataFrame({"x": np.arange(10.0)})
    report = drift_report(small, small)
    assert report.drift_share is None and report.dataset_verdict == "inconclusive"


def test_drift_bad_input():
    with pytest.raises(ValidationError, match="method"):
        column_drift([1.0] * 40, [1.0] * 40, method="magic")
    with pytest.raises(ValidationError, match="numeric column"):
        column_drift(["a"] * 40, ["b"] * 40, method="ks")
    with pytest.raises(ValidationError, match="min_samples"):
        column_drift([1.0], [1.0], min_samples=1)
    with pytest.raises(SchemaError, match="lacks"):
        drift_report(pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]}), columns=["a"])
    with pytest.raises(ValidationError, match="DataFrames"):
        drift_report([1, 2], [1, 2])


# -- graduated responses -------------------------------------------------------------------
def test_default_policy_escalates_with_criticality():
    policy = ResponsePolicy.default()
    actions = {c: policy.evaluate(criticality=c, psi=0.3).action for c in ("low", "medium", "high", "critical")}
    assert actions == {"low": "log", "medium": "ticket", "high": "page", "critical": "mitigate"}
    assert policy.evaluate(criticality="critical", psi=0.05).action == "none"
    response = policy.evaluate(criticality="high", psi=0.18)
    assert (response.level, response.action) == ("moderate", "ticket")
    assert "0.180" in response.reason and "high" in response.reason


def test_policy_takes_a_drift_result_and_inconclusive_is_never_silent():
    g = rng()
    policy = ResponsePolicy.default()
    tiny = column_drift(g.normal(size=5), g.normal(size=5))
    response = policy.evaluate(criticality="critical", drift=tiny)
    assert response.level == "inconclusive" and response.action == "page"
    big = column_drift(g.normal(size=500), g.normal(3, 1, size=500))
    assert policy.evaluate(criticality="critical", drift=big).action == "mitigate"


@pytest.mark.parametrize("psi_value, test_failed, level", [
    (0.05, None, "none"), (0.05, False, "none"), (0.05, True, "moderate"),   # the test alone makes it moderate
    (0.0999, True, "moderate"), (0.1, False, "moderate"), (0.18, True, "moderate"),
    (0.2499, False, "moderate"), (0.25, False, "major"), (0.31, True, "major"),
])
def test_policy_reads_the_test_verdict_with_psi(psi_value, test_failed, level):
    # the level table by hand: major at PSI >= 0.25, moderate at PSI >= 0.1 or a failed test, else none
    policy = ResponsePolicy.default()
    response = policy.evaluate(criticality="critical", psi=psi_value, test_failed=test_failed)
    expected_action = {"none": "none", "moderate": "page", "major": "mitigate"}[level]
    assert (response.level, response.action) == (level, expected_action)
    words = {None: "no test verdict given", True: "the drift test failed", False: "the drift test passed"}
    assert words[test_failed] in response.reason
    high = policy.evaluate(criticality="high", psi=psi_value, test_failed=test_failed).action
    assert high == {"none": "none", "moderate": "ticket", "major": "page"}[level]


def test_policy_with_psi_and_verdict_agrees_with_the_drift_result():
    # a shift the Wasserstein test sees (normalized distance 0.2 >= 0.1) while PSI stays under 0.1
    g = rng()
    ref = g.normal(size=20_000)
    result = column_drift(ref, ref + 0.2)
    assert result.method == "wasserstein" and result.verdict == "drift" and result.psi < 0.1
    policy = ResponsePolicy.default()
    by_result = policy.evaluate(criticality="critical", drift=result)
    by_psi = policy.evaluate(criticality="critical", psi=result.psi, test_failed=result.verdict == "drift")
    assert (by_result.level, by_result.action) == (by_psi.level, by_psi.action) == ("moderate", "page")
    assert policy.evaluate(criticality="critical", psi=result.psi).action == "none"   # PSI alone misses it
    with pytest.raises(ValidationError, match="test_failed"):
        policy.evaluate(criticality="critical", drift=result, test_failed=True)
    with pytest.raises(ValidationError, match="test_failed"):
        policy.evaluate(criticality="critical", psi=0.05, test_failed="yes")


def test_policy_round_trip_and_validation():
    policy = ResponsePolicy.default()
    again = ResponsePolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert again.to_dict() == policy.to_dict()
    rules = policy.to_dict()["rules"]
    bad = json.loads(json.dumps(rules))
    bad["high"]["major"] = "log"                     # milder than moderate's ticket
    with pytest.raises(DefinitionError, match="milder"):
        ResponsePolicy(rules=bad)
    bad = json.loads(json.dumps(rules))
    bad["low"]["major"] = "mitigate"
    with pytest.raises(DefinitionError, match="critical"):
        ResponsePolicy(rules=bad)
    bad = json.loads(json.dumps(rules))
    del bad["low"]["inconclusive"]
    with pytest.raises(DefinitionError, match="inconclusive"):
        ResponsePolicy(rules=bad)
    with pytest.raises(ValidationError, match="exactly one"):
        policy.evaluate(criticality="low", psi=0.2, level="major")
    with pytest.raises(ValidationError, match="criticality"):
        policy.evaluate(criticality="extreme", psi=0.2)
    with pytest.raises(ValidationError, match="psi"):
        policy.evaluate(criticality="low", psi=-1)
