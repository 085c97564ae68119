"""SLOs as code: refusal without owner/alert, hand-computed percentiles, budget burn, windows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from mlops_kit.errors import DefinitionError, ValidationError
from mlops_kit.quality import SLO, Alert, evaluate_slo

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
PAGE = Alert(name="FeatureFreshnessBurn", severity="critical", route="pagerduty:feature-platform")


def latency_slo(**kw):
    base = dict(name="online_p95_latency", kind="latency", indicator="feature_fetch_ms", statistic="p95",
                objective=9.0, window=timedelta(hours=1), owner="feature-platform", alert=PAGE, unit="ms",
                min_samples=5)
    base.update(kw)
    return SLO(**base)


def test_refused_without_owner_or_alert_naming_what_is_missing():
    with pytest.raises(DefinitionError) as err:
        latency_slo(owner=None, alert=None)
    assert "owner and alert" in str(err.value) and err.value.details["missing"] == ["owner", "alert"]
    with pytest.raises(DefinitionError, match="missing alert"):
        latency_slo(alert=None)
    with pytest.raises(DefinitionError, match="missing owner"):
        latency_slo(owner="")


def test_percentile_hand_computed_linear_method():
    # numpy's default linear method: p95 of 1..10 sits at virtual index 0.95 * 9 = 8.55,
    # i.e. 9 + 0.55 * (10 - 9) = 9.55; p99 at 8.91 -> 9.91; p50 at 4.5 -> 5.5.
    values = list(range(1, 11))
    result = evaluate_slo(latency_slo(), values)
    assert result.observed == pytest.approx(9.55)
    assert result.verdict == "breached" and result.alert == "FeatureFreshnessBurn"
    assert result.bad_events == 1 and result.n == 10
    assert result.budget_burn == pytest.approx((1 / 10) / 0.05)          # 2.0: twice the budget
    assert evaluate_slo(latency_slo(statistic="p99", objective=10), values).observed == pytest.approx(9.91)
    met = evaluate_slo(latency_slo(statistic="p50", objective=6), values)
    assert met.observed == pytest.approx(5.5) and met.verdict == "met" and met.alert is None


def test_rate_slo_for_correctness():
    slo = SLO(name="parity_mismatch", kind="correctness", indicator="parity_mismatch", statistic="rate",
              objective=0.02, window=timedelta(days=1), owner="feature-platform", alert=PAGE, min_samples=10)
    obs = [True] + [False] * 99
    res = evaluate_slo(slo, obs)
    assert res.observed == pytest.approx(0.01) and res.verdict == "met"
    assert res.budget_burn == pytest.approx(0.5)
    res = evaluate_slo(slo, [1] * 3 + [0] * 97)
    assert res.verdict == "breached" and res.budget_burn == pytest.approx(1.5)
    with pytest.raises(ValidationError, match="0/1"):
        evaluate_slo(slo, [0.5] * 20)
    with pytest.raises(DefinitionError, match="rate"):
        SLO(name="x", kind="quality", indicator="null", statistic="rate", objective=2, window=timedelta(1),
            owner="o", alert=PAGE)


def test_timestamped_observations_are_windowed():
    ts = pd.date_range(NOW - timedelta(hours=3), periods=180, freq="min", tz="UTC")
    values = np.where(ts < pd.Timestamp(NOW - timedelta(hours=1)), 1000.0, 1.0)
    series = pd.Series(values, index=ts)
    res = evaluate_slo(latency_slo(), series, now=NOW)
    assert res.n == 60 and res.observed == pytest.approx(1.0) and res.verdict == "met"
    assert res.window_start == NOW - timedelta(hours=1) and res.window_end == NOW
    frame = pd.DataFrame({"timestamp": ts, "value": values})
    assert evaluate_slo(latency_slo(), frame, now=NOW).n == 60
    with pytest.raises(ValidationError, match="now="):
        evaluate_slo(latency_slo(), series)
    with pytest.raises(ValidationError, match="naive"):
        evaluate_slo(latency_slo(), pd.Series(values, index=ts.tz_localize(None)), now=NOW)


def test_too_few_observations_are_inconclusive():
    res = evaluate_slo(latency_slo(min_samples=20), [1.0] * 5)
    assert res.verdict == "inconclusive" and res.alert is None
    assert evaluate_slo(latency_slo(), []).observed is None


def test_round_trip_and_bad_input():
    slo = latency_slo(description="p95 online feature fetch")
    assert SLO.from_dict(json.loads(json.dumps(slo.to_dict()))) == slo
    json.dumps(evaluate_slo(slo, list(range(10))).to_dict())
    with pytest.raises(DefinitionError, match="severity"):
        Alert(name="A", severity="urgent", route="x")
    with pytest.raises(DefinitionError, match="route"):
        Alert(name="A", severity="critical", route="")
    with pytest.raises(DefinitionError, match="statistic"):
        latency_slo(statistic="p42")
    with pytest.raises(DefinitionError, match="window"):
        latency_slo(window=timedelta(0))
    with pytest.raises(DefinitionError, match="kind"):
        latency_slo(kind="vibes")
    with pytest.raises(ValidationError, match="NaN"):
        evaluate_slo(slo, [1.0, float("nan")])
    with pytest.raises(ValidationError, match="expected an SLO"):
        evaluate_slo("slo", [1.0])
