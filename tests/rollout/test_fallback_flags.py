"""Fallback on an unhealthy store, flags, partial rollback (broken) versus one-call restore."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from rollout_helpers import START, make_sim, independent_scores

from mlops_kit.errors import ValidationError
from mlops_kit.rollout import (CorrectiveAction, Guardrail, InMemoryFeatureSource, LinearScorer, OnlineStoreOutage,
                               ReleaseState)

M, H = timedelta(minutes=1), timedelta(hours=1)
FALLBACK = LinearScorer(weights={"amount_log": 0.9}, bias=-5.5)


def store_guard(metric="fetch_error_rate"):
    return Guardrail(name="store", metric=metric, arm="all", threshold=0.05, window=5 * M, min_samples=30,
                     action="fallback")


@pytest.mark.parametrize("mode,metric", [("timeout", "fetch_error_rate"), ("missing", "missing_feature_rate")])
def test_outage_switches_to_the_fallback_and_back(world, mode, metric):
    out = OnlineStoreOutage(start=START + 3 * H, end=START + 4 * H, share=0.6, mode=mode)
    r = make_sim(world, faults=[out], guardrails=[store_guard(metric)], fallback_model=FALLBACK).run()
    ev = r.events.set_index("kind")["time"]
    assert ev["fallback_on"] == pd.Timestamp(START + 3 * H + 5 * M)
    assert ev["fallback_off"] == pd.Timestamp(START + 4 * H + 15 * M)  # 3 healthy measurements
    req = r.requests
    fb = req[(req["event_timestamp"] >= ev["fallback_on"]) & (req["event_timestamp"] < ev["fallback_off"])]
    assert (fb["arm"] == "fallback").all() and not fb["error"].any()
    # the fallback serves defaults for the store features: recompute independently
    X = pd.DataFrame({"amount_log": world["traffic"].set_index(["key", "event_timestamp"]).loc[
        list(zip(fb["key"], fb["event_timestamp"])), "amount_log"].to_numpy()})
    np.testing.assert_allclose(fb["score"].to_numpy(), FALLBACK.predict_proba(X)[:, 1], rtol=1e-12)
    first = req[(req["event_timestamp"] >= pd.Timestamp(START + 3 * H)) & (req["event_timestamp"] < ev["fallback_on"])]
    assert first["affected"].mean() == pytest.approx(0.6, abs=0.06)
    assert (first["error"].sum() > 0) == (mode == "timeout")
    after = req[req["event_timestamp"] >= ev["fallback_off"]]
    assert (after["arm"] != "fallback").all() and not after["affected"].any()


def broken_release(world):
    bad = world["features"].assign(user_risk=world["features"]["user_risk"] * 3 + 1)
    sources = {1: InMemoryFeatureSource(world["features"], key_column="key"),
               2: InMemoryFeatureSource(bad, key_column="key")}
    return make_sim(world, features=sources, guardrails=[],
                    candidate_flags={"threshold": 0.3, "feature_version": 2})


def positive_rate(r, lo, hi):
    req = r.requests
    w = req[(req["event_timestamp"] >= pd.Timestamp(START + lo)) & (req["event_timestamp"] < pd.Timestamp(START + hi))]
    return float(w["decision"].mean())


def test_partial_rollback_leaves_the_system_broken_and_restore_fixes_it(world):
    sim = broken_release(world)
    known_good = sim.snapshot()
    sim.run(until=START + 3 * H)
    assert sim.flags["feature_version"] == 2 and sim.flags["threshold"] == 0.3
    sim.partial_rollback(actor="dave", reason="model looks wrong")
    checks = CorrectiveAction(id="CA-1", action="release state equals known-good", owner="ml-platform",
                              spec="alias, stable arm, routing and every flag equal the pre-release snapshot",
                              check=lambda: sim.verify(known_good))
    res = checks.run()
    assert not res.passed and "flag feature_version" in res.detail and "flag threshold" in res.detail
    assert all(c.passed for c in sim.verify(known_good) if c.name in ("serving alias", "stable arm version"))
    r = sim.run(until=START + 3.5 * H)
    base = positive_rate(r, 0 * H, 1 * H)
    assert positive_rate(r, 3 * H, 3.5 * H) > 3 * base  # still broken: v1 served with v2 features and threshold
    after_restore = sim.restore(known_good, actor="dave", reason="full rollback: alias, routing, flags")
    assert all(c.passed for c in after_restore) and checks.run().passed
    assert sim.state.status == "rolled_back" and sim.models.aliases()["deployed-prod"] == "1"
    r = sim.run()
    req = r.requests[r.requests["event_timestamp"] >= pd.Timestamp(START + 3.5 * H)]
    expected = independent_scores(world, world["stable"], req) >= 0.5
    assert np.array_equal(req["decision"].to_numpy(), expected)
    kinds = r.events["kind"].tolist()
    assert kinds.index("partial_rollback") < kinds.index("restore")


def test_set_flag_changes_decisions_and_is_validated(world):
    sim = make_sim(world, guardrails=[])
    sim.run(until=START + 30 * M)
    sim.set_flag("threshold", 0.05, actor="erin", reason="tighten during incident")
    r = sim.run(until=START + 60 * M)
    assert positive_rate(r, 30 * M, 60 * M) > 3 * positive_rate(r, 0 * M, 30 * M)
    with pytest.raises(ValidationError, match="threshold"):
        sim.set_flag("threshold", 2, actor="erin", reason="x")
    with pytest.raises(ValidationError, match="feature source"):
        sim.set_flag("feature_version", 7, actor="erin", reason="x")
    with pytest.raises(ValidationError, match="actor"):
        sim.set_flag("threshold", 0.5, actor="", reason="x")
    assert sim.flags["threshold"] == 0.05


def test_release_state_round_trip_and_validation():
    s = ReleaseState(serving_version="1", stable_version="1", candidate_weight=0.0, flags={"threshold": 0.5})
    assert ReleaseState.from_dict(s.to_dict()) == s
    with pytest.raises(ValidationError, match="candidate_weight"):
        ReleaseState(serving_version="1", stable_version="1", candidate_weight=120, flags={})
    with pytest.raises(ValidationError, match="non-JSON"):
        ReleaseState(serving_version="1", stable_version="1", candidate_weight=0, flags={"x": object()})
