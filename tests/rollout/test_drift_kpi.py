"""Drift, concept drift, schema change and KPI proxies from labels that have arrived."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from rollout_helpers import START, make_sim

from mlops_kit.rollout import CanaryStrategy, ShadowStrategy, ConceptDrift, CovariateDrift, Guardrail, SchemaChange, psi

M, H = timedelta(minutes=1), timedelta(hours=1)


def test_kpi_drop_counts_only_labels_that_have_arrived(world):
    g = [Guardrail(name="caught", metric="kpi_drop", statistic="fraud_caught", threshold=0.5, window=60 * M,
                   compare_to="reference", arm="all", min_samples=5, action="alert")]
    r = make_sim(world, guardrails=g, strategy=CanaryStrategy(steps=(100,))).run()
    req = r.requests
    for _, m in r.measurements.iloc[[15, 40]].iterrows():
        t = m["time"]
        arrived = req["label_timestamp"].notna() & (req["label_timestamp"] <= t) & (req["label"] == 1)
        win = req[(req["event_timestamp"] >= t - m["window"]) & (req["event_timestamp"] < t) & arrived]
        ref = req[(req["event_timestamp"] < pd.Timestamp(START + H)) & arrived]
        assert m["n"] == min(len(win), len(ref))
        assert m["value"] == pytest.approx(ref["decision"].mean() - win["decision"].mean(), rel=1e-9)
        not_yet = req[(req["event_timestamp"] >= t - m["window"]) & (req["event_timestamp"] < t)
                      & (req["label"] == 1) & ~(req["label_timestamp"] <= t)]
        assert len(not_yet) > 0  # some frauds in the window were not yet known and were not counted


def test_concept_drift_shows_up_in_the_kpi_only_after_labels_arrive(world):
    drift = ConceptDrift(start=START + 3 * H, share=0.15)
    g = [Guardrail(name="caught", metric="kpi_drop", statistic="fraud_caught", threshold=0.08, window=30 * M,
                   compare_to="reference", arm="all", min_samples=20, consecutive=2, action="alert")]
    r = make_sim(world, guardrails=g, faults=[drift], strategy=ShadowStrategy(duration=H)).run()
    alerts = r.events[r.events["kind"] == "alert"]
    assert len(alerts) >= 1
    first = alerts["time"].iloc[0]
    assert first > pd.Timestamp(START + 3 * H + 10 * M)  # labels arrive ~10 min late, two breaches needed
    assert not (r.measurements[r.measurements["time"] <= pd.Timestamp(START + 3 * H)]["verdict"] == "fail").any()


def test_covariate_drift_moves_score_psi_against_the_reference(world):
    drift = CovariateDrift(start=START + 3 * H, feature="amount_log", shift=1.5)
    g = [Guardrail(name="psi", metric="score_psi", threshold=0.25, window=30 * M, compare_to="reference",
                   arm="all", min_samples=200, action="alert")]
    r = make_sim(world, guardrails=g, faults=[drift], strategy=CanaryStrategy(steps=(100,))).run()
    m = r.measurements.set_index("time")
    before, after = m.loc[pd.Timestamp(START + 3 * H), "value"], m.loc[pd.Timestamp(START + 3.5 * H), "value"]
    assert before < 0.1 < 0.25 < after
    req = r.requests
    ref = req[req["event_timestamp"] < pd.Timestamp(START + H)]["score"]
    cur = req[(req["event_timestamp"] >= pd.Timestamp(START + 3 * H)) & (req["event_timestamp"] < pd.Timestamp(START + 3.5 * H))]
    assert after == pytest.approx(psi(ref.to_numpy(), cur["score"].to_numpy()), rel=1e-12)
    assert cur["affected"].all()


def test_schema_change_renamed_feature_reads_as_missing(world):
    change = SchemaChange(start=START + 2 * H, end=START + 2.5 * H, feature="user_risk", kind="renamed")
    g = [Guardrail(name="missing", metric="missing_feature_rate", arm="all", threshold=0.05, window=5 * M,
                   min_samples=30, action="alert")]
    r = make_sim(world, guardrails=g, faults=[change]).run()
    req = r.requests
    during = (req["event_timestamp"] >= pd.Timestamp(START + 2 * H)) & (req["event_timestamp"] < pd.Timestamp(START + 2.5 * H))
    assert req.loc[during, "missing_feature"].all() and not req.loc[~during, "missing_feature"].any()
    alert = r.events[r.events["kind"] == "alert"]["time"].iloc[0]
    assert alert == pd.Timestamp(START + 2 * H + 5 * M)
    rescaled = SchemaChange(start=START + 2 * H, feature="amount_log", kind="rescaled", factor=100.0)
    r2 = make_sim(world, guardrails=[], faults=[rescaled]).run()
    late = r2.requests[r2.requests["event_timestamp"] >= pd.Timestamp(START + 2 * H)]
    assert late["decision"].mean() > 0.99 and not late["missing_feature"].any()  # silent: nothing is missing
    assert np.isfinite(late["score"]).all()
