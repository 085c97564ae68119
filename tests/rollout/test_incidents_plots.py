"""Incident metrics recomputed independently, postmortem content, plots, result round trip."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from rollout_helpers import START, make_sim
from matplotlib.figure import Figure

from mlops_kit.errors import ValidationError
from mlops_kit.rollout import (CorrectiveAction, RolloutResult, SegmentRegression, guardrail_covers,
                               incident_report, plot_guardrails, plot_traffic_split, postmortem_markdown)

M, H = timedelta(minutes=1), timedelta(hours=1)


@pytest.fixture(scope="module")
def regression_run(world):
    fault = SegmentRegression(segment="high_value", start=START + H)
    sim = make_sim(world, faults=[fault], overrides={"high_value": "candidate"})
    return sim, fault, sim.run()


def test_incident_report_numbers(regression_run):
    sim, fault, r = regression_run
    rep = incident_report(r, fault)
    alert = r.events[r.events["kind"] == "alert"].iloc[0]["time"]
    abort = r.events[r.events["kind"] == "abort"].iloc[0]["time"]
    assert rep.time_to_detect == alert - pd.Timestamp(START + H)
    assert rep.time_to_recover == abort - pd.Timestamp(START + H)
    req = r.requests
    exposed = req[(req["segment"] == "high_value") & (req["arm"] == "candidate")]
    assert rep.exposure == len(exposed) > 0
    assert (exposed["event_timestamp"] < abort).all()
    assert IncidentReportRoundTrip(rep)


def IncidentReportRoundTrip(rep):
    from mlops_kit.rollout import IncidentReport
    back = IncidentReport.from_dict(json.loads(json.dumps(rep.to_dict())))
    return back == rep


def test_postmortem_lists_executed_checks(regression_run):
    sim, fault, r = regression_run
    rep = incident_report(r, fault, title="high_value inverted in canary v2")
    ok = CorrectiveAction(id="CA-1", action="keep a per-segment guardrail", owner="ml-owner",
                          spec="segment_regression guardrail, threshold <= 0.1, window <= 30 min",
                          check=lambda: guardrail_covers(sim.guardrails, metric="segment_regression",
                                                         max_threshold=0.1, max_window=30 * M))
    missing = CorrectiveAction(id="CA-2", action="alert on KPI drop", owner="risk",
                               spec="kpi_drop guardrail, threshold <= 0.05, window <= 1 h",
                               check=lambda: guardrail_covers(sim.guardrails, metric="kpi_drop",
                                                              max_threshold=0.05, max_window=H))
    md = postmortem_markdown(rep, summary="Canary v2 inverted scores for high_value.", root_cause="bad segment model",
                             contributing_factors=["high_value is 8 % of traffic"], corrective_actions=[ok, missing])
    for part in ("# Postmortem: high_value inverted in canary v2", "## Timeline", "## Impact", "## Detection",
                 "## Contributing factors", "| CA-1 |", "PASS", "| CA-2 |", "FAIL",
                 f"Time to detect: {rep.time_to_detect.total_seconds() / 60:.0f} min", f"Exposure (requests whose "
                 f"answer the fault touched): {rep.exposure}"):
        assert part in md, part
    with pytest.raises(ValidationError, match="contributing"):
        postmortem_markdown(rep, summary="s", root_cause="r", contributing_factors=[], corrective_actions=[ok])
    with pytest.raises(ValidationError, match="CorrectiveAction"):
        postmortem_markdown(rep, summary="s", root_cause="r", contributing_factors=["f"], corrective_actions=["x"])
    with pytest.raises(ValidationError, match="owner"):
        CorrectiveAction(id="x", action="y", owner="", spec="z", check=lambda: True)


def test_plots_return_figures(regression_run):
    _, _, r = regression_run
    f1 = plot_traffic_split(r)
    f2 = plot_guardrails(r)
    assert isinstance(f1, Figure) and isinstance(f2, Figure) and len(f2.axes) == 3
    with pytest.raises(ValidationError, match="unknown"):
        plot_guardrails(r, names=["nope"])
    with pytest.raises(ValidationError, match="RolloutResult"):
        plot_traffic_split("x")


def test_result_round_trip(regression_run):
    _, _, r = regression_run
    d = json.loads(json.dumps(r.to_dict(), sort_keys=True))
    back = RolloutResult.from_dict(d)
    assert back.status == r.status and back.event_objects == r.event_objects
    assert back.measurement_objects == r.measurement_objects
    assert back.to_dict() == d
    with pytest.raises(ValidationError, match="from_dict"):
        RolloutResult.from_dict({"x": 1})
    with pytest.raises(ValidationError, match="request table"):
        incident_report(back, SegmentRegression(segment="high_value"))
