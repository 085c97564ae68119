"""PSI against an independent loop, guardrail declarations, measurement explanations, budgets."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit._time import UTC
from mlops_kit.errors import DefinitionError, ValidationError
from mlops_kit.rollout import Guardrail, Measurement, RiskBudget, psi

M = timedelta(minutes=1)


def reference_psi(ref, cur, bins):
    """Plain-Python PSI with the documented binning (written independently)."""
    ref_sorted = sorted(ref)
    edges = []
    for k in range(1, bins):
        q = k / bins
        pos = q * (len(ref_sorted) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(ref_sorted) - 1)
        e = ref_sorted[lo] + (ref_sorted[hi] - ref_sorted[lo]) * (pos - lo)
        if e not in edges:
            edges.append(e)
    edges.sort()

    def shares(xs):
        counts = [0] * (len(edges) + 1)
        for x in xs:
            b = 0
            while b < len(edges) and x >= edges[b]:
                b += 1
            counts[b] += 1
        return [c / len(xs) if c else 0.0001 for c in counts]

    r, c = shares(ref), shares(cur)
    return sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c))


def test_psi_hand_computed():
    # reference quartile edges on 1..9 (linear): positions 2, 4, 6 -> 3, 5, 7; current all in the top bin
    ref = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    cur = [9, 9, 9, 9]
    r = [2 / 9, 2 / 9, 2 / 9, 3 / 9]  # (-inf,3), [3,5), [5,7), [7,inf)
    c = [0.0001, 0.0001, 0.0001, 1.0]
    expect = sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c))
    assert psi(ref, cur, bins=4) == pytest.approx(expect, rel=1e-12)


@settings(max_examples=60)
@given(ref=st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=60),
       cur=st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=60), bins=st.integers(2, 12))
def test_psi_matches_reference_loop(ref, cur, bins):
    assert psi(ref, cur, bins=bins) == pytest.approx(reference_psi(ref, cur, bins), rel=1e-9, abs=1e-12)
    assert psi(ref, cur, bins=bins) >= -1e-12
    assert psi(ref, ref, bins=bins) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("args,match", [(([], [1.0]), "no non-null values"),
                                        (([1.0], [np.nan]), "no non-null values"),
                                        (([1.0], [np.inf]), "infinite"), (([1.0], [1.0], 1), "bins")])
def test_psi_bad_input(args, match):
    with pytest.raises(ValidationError, match=match):
        psi(*args)


@pytest.mark.parametrize("kw,match", [
    ({"metric": "nope"}, "metric"), ({"threshold": float("nan")}, "threshold"), ({"window": timedelta(0)}, "window"),
    ({"consecutive": 0}, "consecutive"), ({"min_samples": 0}, "min_samples"), ({"arm": "x"}, "arm"),
    ({"action": "reboot"}, "action"), ({"metric": "score_psi"}, "compare_to"),
    ({"metric": "kpi_drop", "compare_to": "stable", "statistic": "mean_score"}, "statistic"),
    ({"statistic": "positive_rate"}, "only used"), ({"name": ""}, "name"), ({"failure_limit": -1}, "failure_limit"),
    ({"metric": "score_psi", "compare_to": "stable", "arm": "all"}, "arm='candidate'"),
])
def test_guardrail_validation(kw, match):
    base = {"name": "g", "metric": "error_rate", "threshold": 0.1, "window": 5 * M}
    with pytest.raises(DefinitionError, match=match):
        Guardrail(**{**base, **kw})


def test_guardrail_and_measurement_round_trip_and_explain():
    g = Guardrail(name="seg", metric="segment_regression", statistic="fraud_caught", threshold=0.1,
                  window=30 * M, compare_to="stable", consecutive=2)
    assert Guardrail.from_dict(g.to_dict()) == g
    m = Measurement(time=datetime(2025, 1, 1, tzinfo=UTC), guardrail="seg", metric=g.metric, arm="candidate",
                    value=0.3, threshold=0.1, window=30 * M, n=120, min_samples=100, verdict="fail", streak=2,
                    consecutive=2, compared_to="stable", detail="worst segment 'x'")
    assert Measurement.from_dict(m.to_dict()) == m
    text = m.explain()
    for part in ("segment_regression", "0.3 > 0.1", "30 min", "n=120", "fail", "2/2", "vs stable"):
        assert part in text


def test_risk_budget():
    b = RiskBudget(pct_hours=10)
    assert b.pct_hours == 10 and RiskBudget.from_dict(b.to_dict()) == b
    # by hand: 25 % for 30 min = 12.5 percent-hours, 50 % for 15 min the same; promotion to 100 % costs nothing
    assert b.cost(25, timedelta(minutes=30)) == pytest.approx(12.5)
    assert b.cost(50, timedelta(minutes=15)) == pytest.approx(12.5)
    assert b.cost(100, timedelta(hours=3)) == 0.0
    # one rule, no cap on a step's weight: 15 + 25 + 50 % baked 30 min each = 7.5 + 12.5 + 25 = 45
    assert RiskBudget(pct_hours=45).allows([15, 25, 50, 100], hours_per_step=0.5)
    assert not RiskBudget(pct_hours=44.9).allows([15, 25, 50, 100], hours_per_step=0.5)
    for bad in (0, -1, True, "10", float("inf")):
        with pytest.raises(DefinitionError, match="pct_hours"):
            RiskBudget(pct_hours=bad)
    with pytest.raises(DefinitionError, match="duration"):
        b.cost(5, timedelta(0))
    with pytest.raises(DefinitionError, match="weight_pct"):
        b.cost(120, timedelta(minutes=5))


@settings(max_examples=150, deadline=None)
@given(ref=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=200),
       cur=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=200),
       bins=st.integers(2, 12))
def test_prepared_psi_equals_the_quality_definition(ref, cur, bins):
    """The guardrail's bin-once fast path is the same statistic as mlops_kit.quality.psi."""
    from mlops_kit.quality import psi as quality_psi
    from mlops_kit.rollout.guardrails import psi_against, psi_reference

    fast = psi_against(psi_reference(np.asarray(ref), bins), np.asarray(cur))
    assert fast == pytest.approx(quality_psi(ref, cur, bins=bins), rel=1e-12, abs=1e-12)
