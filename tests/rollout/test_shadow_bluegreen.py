"""Shadow never changes decisions; blue/green previews, switches, reverts instantly while blue is kept."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from rollout_helpers import START, make_sim, independent_scores

from mlops_kit.rollout import BlueGreenStrategy, Guardrail, LatencySpike, SegmentRegression, ShadowStrategy

M, H = timedelta(minutes=1), timedelta(hours=1)


def test_shadow_answers_never_affect_decisions(world):
    fault = SegmentRegression(segment="ecommerce", start=START, mode="constant", value=1.0)
    g = [Guardrail(name="psi", metric="score_psi", threshold=0.2, window=30 * M, compare_to="stable", min_samples=50)]
    sim = make_sim(world, strategy=ShadowStrategy(fraction=0.3, duration=2 * H), guardrails=g, faults=[fault])
    r = sim.run()
    req = r.requests
    assert (req["arm"] == "stable").all()
    expected = independent_scores(world, world["stable"], req) >= 0.5
    assert np.array_equal(req["decision"].to_numpy(), expected)
    stop = r.events[r.events["kind"] == "abort"]["time"].iloc[0]
    during = req[(req["event_timestamp"] >= pd.Timestamp(START + H)) & (req["event_timestamp"] < stop)]
    assert 0.25 < during["shadow_score"].notna().mean() < 0.35
    assert req[req["event_timestamp"] >= stop]["shadow_score"].isna().all()
    # the broken shadow candidate was rejected; nothing was deployed
    assert r.status == "aborted" and "deploy" not in set(r.events["kind"])
    assert sim.models.aliases()["deployed-prod"] == "1"


def test_shadow_records_agreement_and_score_deltas(world):
    sim = make_sim(world, strategy=ShadowStrategy(fraction=0.5, duration=H), guardrails=[])
    r = sim.run()
    assert r.status == "completed"
    sh = r.requests[r.requests["shadow_score"].notna()]
    cand = independent_scores(world, world["candidate"], sh)
    np.testing.assert_allclose(sh["shadow_score"].to_numpy(), cand, rtol=1e-12)
    agreement = float(((cand >= 0.5) == sh["decision"].to_numpy()).mean())
    s = r.shadow_summary()
    assert s["agreement"] == pytest.approx(agreement)
    assert s["mean_abs_score_delta"] == pytest.approx(float(np.abs(cand - sh["score"]).mean()))
    assert (sh["latency_ms"] > 0).all() and r.intervals["n_shadow"].sum() == len(sh)
    assert s["shadow_latency_p95_ms"] == pytest.approx(float(np.percentile(sh["shadow_latency_ms"], 95)))
    assert s["n"] == len(sh) and (sh["shadow_latency_ms"] > 0).all()


def bluegreen_guards():
    return [Guardrail(name="p99", metric="latency_p99", threshold=150.0, window=10 * M, min_samples=30),
            Guardrail(name="p99-all", metric="latency_p99", arm="all", threshold=150.0, window=10 * M,
                      min_samples=30)]


def test_blue_green_switches_after_a_passing_preview(world):
    sim = make_sim(world, strategy=BlueGreenStrategy(preview_time=30 * M, keep_old_for=30 * M),
                   guardrails=bluegreen_guards())
    r = sim.run()
    kinds = r.events.set_index("kind")["time"]
    assert kinds["switch"] == pd.Timestamp(START + 90 * M) and kinds["complete"] == pd.Timestamp(START + 120 * M)
    assert r.status == "completed" and sim.models.aliases()["deployed-prod"] == "2"
    req = r.requests
    before = req[req["event_timestamp"] < pd.Timestamp(START + 90 * M)]
    after = req[req["event_timestamp"] >= pd.Timestamp(START + 90 * M)]
    assert (before["arm"] == "stable").all() and (after["version"] == "2").all()


def test_revert_is_instant_while_blue_is_kept_and_slow_after(world):
    strat = BlueGreenStrategy(preview_time=30 * M, keep_old_for=30 * M)
    early = LatencySpike(start=START + 100 * M, extra_ms=400.0, arm="candidate")
    r1 = make_sim(world, strategy=strat, guardrails=bluegreen_guards(), faults=[early]).run()
    revert = r1.events[r1.events["kind"] == "revert"].iloc[0]
    assert revert["time"] == pd.Timestamp(START + 105 * M)
    nxt = r1.requests[r1.requests["event_timestamp"] >= revert["time"]]
    assert (nxt["version"] == "1").all()
    late = LatencySpike(start=START + 150 * M, extra_ms=400.0)
    sim2 = make_sim(world, strategy=strat, guardrails=bluegreen_guards(), faults=[late],
                    redeploy_time=timedelta(minutes=10))
    r2 = sim2.run()
    started = r2.events[r2.events["kind"] == "rollback_started"].iloc[0]
    done = r2.events[r2.events["kind"] == "rollback"].iloc[0]
    assert started["time"] == pd.Timestamp(START + 155 * M) and done["time"] == started["time"] + 10 * M
    assert "scaled down" in started["detail"] and r2.status == "rolled_back"
    assert sim2.models.aliases()["deployed-prod"] == "1"
    served_v2_after_alert = r2.requests[(r2.requests["event_timestamp"] >= started["time"])
                                        & (r2.requests["event_timestamp"] < done["time"])]
    assert len(served_v2_after_alert) > 0 and (served_v2_after_alert["version"] == "2").all()
