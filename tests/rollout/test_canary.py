"""Canary decisions on constructed scenarios, checked against independent recomputation."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from rollout_helpers import START, make_sim

from mlops_kit.errors import RolloutError
from mlops_kit.rollout import CanaryStrategy, Guardrail, RiskBudget, SegmentRegression

M, H = timedelta(minutes=1), timedelta(hours=1)


def test_healthy_candidate_is_promoted_through_every_step(world):
    sim = make_sim(world)
    r = sim.run()
    assert r.status == "completed"
    promotes = r.events[r.events["kind"] == "promote"]
    assert promotes["time"].tolist() == [pd.Timestamp(START + H + k * 30 * M) for k in (1, 2, 3)]
    assert r.events["kind"].tolist()[-1] == "complete"
    assert sim.models.aliases()["deployed-prod"] == "2"
    req = r.requests
    for weight, lo, hi in ((5, 60, 90), (25, 90, 120), (50, 120, 150)):
        win = req[(req["event_timestamp"] >= pd.Timestamp(START + lo * M))
                  & (req["event_timestamp"] < pd.Timestamp(START + hi * M))]
        p, n = weight / 100, len(win)
        assert abs((win["arm"] == "candidate").mean() - p) <= 3 * np.sqrt(p * (1 - p) / n) + 0.02  # keys repeat
    # sticky: every key served by the candidate at 5 % is served by it at 25 %
    at5 = set(req[(req["event_timestamp"] < pd.Timestamp(START + 90 * M)) & (req["arm"] == "candidate")]["key"])
    at25 = req[(req["event_timestamp"] >= pd.Timestamp(START + 90 * M))
               & (req["event_timestamp"] < pd.Timestamp(START + 120 * M)) & req["key"].isin(at5)]
    assert len(at25) > 0 and (at25["arm"] == "candidate").all()
    after = req[req["event_timestamp"] >= pd.Timestamp(START + 150 * M)]
    assert (after["version"] == "2").all()


def test_segment_regression_is_caught_and_rolled_back_after_the_trigger(world):
    fault = SegmentRegression(segment="high_value", start=START + H)
    sim = make_sim(world, faults=[fault])
    r = sim.run()
    assert r.status == "aborted"
    ev = r.events.set_index("kind")
    alert, abort, rollback = ev.loc["alert"], ev.loc["abort"], ev.loc["rollback"]
    assert alert["time"] <= abort["time"] <= rollback["time"]
    assert alert["seq"] < abort["seq"] < rollback["seq"]
    assert "high_value" in abort["detail"]
    assert sim.models.aliases()["deployed-prod"] == "1"
    req = r.requests
    assert not (req[req["event_timestamp"] >= abort["time"]]["arm"] == "candidate").any()
    # recompute the failing measurement independently from the request table
    m = r.measurements[(r.measurements["verdict"] == "fail")].iloc[0]
    win = req[(req["event_timestamp"] >= m["time"] - m["window"]) & (req["event_timestamp"] < m["time"])
              & (req["segment"] == "high_value")]
    cand = win[win["arm"] == "candidate"]["decision"].mean()
    stab = win[win["arm"] == "stable"]["decision"].mean()
    assert m["value"] == pytest.approx(abs(cand - stab), rel=1e-9)
    # only high_value requests on the candidate were harmed
    hit = req[req["affected"]]
    assert set(hit["segment"]) == {"high_value"} and set(hit["arm"]) == {"candidate"}


def test_cohort_override_detects_the_rare_segment_sooner(world):
    fault = SegmentRegression(segment="high_value", start=START + H)
    plain = make_sim(world, faults=[fault]).run()
    forced = make_sim(world, faults=[fault], overrides={"high_value": "candidate"}).run()
    t = lambda r: r.events[r.events["kind"] == "alert"]["time"].iloc[0]  # noqa: E731
    assert t(forced) < t(plain)


def test_no_data_window_pauses_and_waits_for_a_human(world):
    t = world["traffic"]
    gap = (t["event_timestamp"] >= pd.Timestamp(START + 90 * M)) & (t["event_timestamp"] < pd.Timestamp(START + 150 * M))
    g = [Guardrail(name="errors", metric="error_rate", threshold=0.02, window=15 * M, min_samples=30)]
    sim = make_sim(world, traffic=t[~gap], guardrails=g)
    r = sim.run()
    assert r.status == "paused"
    pause = r.events[r.events["kind"] == "pause"].iloc[0]
    assert "inconclusive" in pause["detail"] and "n=0" in pause["detail"]
    assert not ((r.events["kind"] == "promote") & (r.events["time"] > pd.Timestamp(START + 90 * M))).any()
    with pytest.raises(RolloutError, match="paused"):
        sim.run()
    sim.abort(actor="alice", reason="no traffic to judge the canary on")
    assert sim.models.aliases()["deployed-prod"] == "1"
    r = sim.run()
    assert r.status == "aborted" and r.intervals["weight"].iloc[-1] == 0


def test_resume_after_pause_continues_the_rollout(world):
    t = world["traffic"]
    gap = (t["event_timestamp"] >= pd.Timestamp(START + 95 * M)) & (t["event_timestamp"] < pd.Timestamp(START + 115 * M))
    g = [Guardrail(name="errors", metric="error_rate", threshold=0.02, window=5 * M, min_samples=30)]
    sim = make_sim(world, traffic=t[~gap], guardrails=g)
    r = sim.run()
    pauses = 0
    while r.status == "paused":
        pauses += 1
        sim.resume(actor="bob", reason="traffic gap explained by a planned maintenance")
        r = sim.run()
    assert r.status == "completed"
    assert pauses == (r.events["kind"] == "resume").sum() == 4  # one per empty 5-minute window
    with pytest.raises(RolloutError, match="resume"):
        sim.resume(actor="bob", reason="nothing to resume")


def test_risk_budget_exhaustion_aborts(world):
    budget = RiskBudget(pct_hours=2.5)
    sim = make_sim(world, strategy=CanaryStrategy(steps=(5, 25, 100), bake_time=60 * M, risk_budget=budget))
    r = sim.run()
    assert r.status == "aborted"
    abort = r.events[r.events["kind"] == "abort"].iloc[0]
    assert "risk budget" in abort["detail"]
    # exposure actually spent, recomputed from the interval table, never exceeds the budget
    spent = (r.intervals["weight"].where(r.intervals["weight"] < 100, 0) * 5 / 60).sum()
    assert spent <= budget.pct_hours + 1e-9 and spent == pytest.approx(r.risk_consumed)


def test_manual_promote_skips_the_bake(world):
    sim = make_sim(world)
    sim.run(until=START + H + 10 * M)
    sim.promote(actor="carol", reason="shadow evidence is strong")
    r = sim.run(until=START + H + 15 * M)
    assert r.intervals["weight"].iloc[-1] == 25


def test_same_seed_gives_identical_tables(world):
    f = [SegmentRegression(segment="ecommerce", start=START + 2 * H, mode="constant", value=0.99)]
    a = make_sim(world, faults=f, seed=9).run()
    b = make_sim(world, faults=f, seed=9)
    b.run(until=START + 100 * M)
    b = b.run()
    for name in ("intervals", "measurements", "events", "requests"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = make_sim(world, faults=f, seed=10).run()
    assert not np.array_equal(a.requests["latency_ms"].to_numpy(), c.requests["latency_ms"].to_numpy())


def test_consecutive_breaches_and_failure_limit(world):
    fault = SegmentRegression(segment="high_value", start=START + H)
    g = [Guardrail(name="segments", metric="segment_regression", statistic="positive_rate", threshold=0.10,
                   window=30 * M, compare_to="stable", min_samples=15, inconclusive_limit=1000,
                   consecutive=2, failure_limit=1)]
    r = make_sim(world, faults=[fault], guardrails=g).run()
    ms = r.measurements[r.measurements["time"] >= pd.Timestamp(START + H)]
    decisive = ms[ms["verdict"] != "inconclusive"]["verdict"].tolist()
    first_bad = decisive.index("breach")
    assert decisive[first_bad:first_bad + 3] == ["breach", "fail", "fail"]  # 2 in a row; abort on the 2nd fail
    abort = r.events[r.events["kind"] == "abort"].iloc[0]
    fails = ms[ms["verdict"] == "fail"]["time"].tolist()
    assert abort["time"] == fails[1]
    alerts = r.events[r.events["kind"] == "alert"]["time"].tolist()
    assert alerts == [fails[0]]  # one alert per streak
