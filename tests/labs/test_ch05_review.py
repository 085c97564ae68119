"""Chapter 5 grading criteria and the notebook helpers of ``ch05_review``, against hand-computed
values and plain loops."""

from __future__ import annotations

import functools
import json
from datetime import timedelta

import matplotlib.dates as mdates
import pandas as pd
import pytest

from mlops_kit.evidence.grading.base import GradingContext, MissingEvidence
from mlops_kit.evidence.grading.ch05 import (grade_feature_rollback, grade_incident_measures, grade_partial_vs_full,
                                             grade_postmortem_actions, grade_rollback_after_breach, grade_routing)
from mlops_kit.labs import ch05 as L
from mlops_kit.labs import ch05_ops as O
from mlops_kit.labs import ch05_review as R
from mlops_kit.rollout import CheckResult, RiskBudget, incident_report
from mlops_kit.workspace import Workspace

from ._ch05_lab import SETTINGS, lab, world  # noqa: F401 - shared module fixtures

M, H = timedelta(minutes=1), timedelta(hours=1)


# ----------------------------------------------------------------------------------- grading
def _pack(tmp_path, lab):
    bad, d = lab["bad"], tmp_path / "ch05"
    d.mkdir(parents=True)
    rep = incident_report(bad, L.bad_fault())
    bad.events.to_csv(d / "canary_events.csv", index=False)
    bad.measurements.assign(window=bad.measurements["window"].dt.total_seconds()).to_csv(
        d / "canary_measurements.csv", index=False)
    L.exposure_intervals(bad).to_csv(d / "canary_intervals.csv", index=False)
    (d / "incident.json").write_text(json.dumps(rep.to_dict()))
    good = lab["good"]
    good.requests[["key", "event_timestamp", "arm"]].to_csv(d / "canary_good_routing.csv", index=False)
    good.intervals[["start", "end", "status", "weight"]].to_csv(d / "canary_good_intervals.csv", index=False)
    return GradingContext(tmp_path, None, []), d, rep


def test_grading_accepts_a_true_record_and_rejects_edits(tmp_path, lab):
    ctx, d, rep = _pack(tmp_path, lab)
    assert grade_rollback_after_breach(ctx).level == 4
    assert grade_incident_measures(ctx).level == 4
    assert grade_routing(ctx).level == 4
    inc = json.loads((d / "incident.json").read_text())
    (d / "incident.json").write_text(json.dumps({**inc, "exposure": inc["exposure"] - 5}))
    assert grade_incident_measures(ctx).level == 0
    ev = pd.read_csv(d / "canary_events.csv")
    ev.loc[ev["kind"] == "abort", "time"] = "2025-03-01 01:00:00+00:00"   # abort before the breach
    ev.to_csv(d / "canary_events.csv", index=False)
    assert grade_rollback_after_breach(ctx).level == 0
    iv = pd.read_csv(d / "canary_intervals.csv")
    iv.loc[iv.index[-1], "n_candidate"] = 3
    iv.to_csv(d / "canary_intervals.csv", index=False)
    rt = pd.read_csv(d / "canary_good_routing.csv")
    in_step = (rt["arm"] == "stable") & (pd.to_datetime(rt["event_timestamp"], utc=True) >= L.START + L.WARMUP)
    rt.loc[rt.index[in_step][:50], "arm"] = "candidate"                  # flip some requests' arm in a step
    rt.to_csv(d / "canary_good_routing.csv", index=False)
    assert grade_routing(ctx).level == 0


def test_grading_partial_feature_and_postmortem(tmp_path):
    d = tmp_path / "ch05"
    d.mkdir()
    ctx = GradingContext(tmp_path, None, [])
    check = lambda name, obs, exp: {"name": name, "observed": obs, "expected": exp, "passed": obs == exp}  # noqa: E731
    data = {"partial": [check("flag threshold", 0.3, 0.5), check("serving alias", "1", "1")],
            "full": [check("flag threshold", 0.5, 0.5), check("serving alias", "1", "1")],
            "decline_rates": {"baseline (warm-up)": 0.02, "after model-only rollback": 0.04, "after restore": 0.021}}
    (d / "rollback_checks.json").write_text(json.dumps(data))
    pd.DataFrame({"to": [1, 2, 1], "action": ["deploy", "deploy", "rollback"]}).to_csv(
        d / "alias_history_fraud_flags.csv", index=False)
    assert grade_partial_vs_full(ctx).level == 4
    data["partial"][0]["passed"] = True                        # a stated result that contradicts the values
    (d / "rollback_checks.json").write_text(json.dumps(data))
    assert grade_partial_vs_full(ctx).level == 0
    row = lambda phase, missing, psi, parity: {"phase": phase, "missing_feature_rate": missing,  # noqa: E731
                                               "score_psi_vs_v1": psi, "parity_match_rate": parity}
    pd.DataFrame([{"phase": "v1 live", "missing_feature_rate": 0, "score_psi_vs_v1": 0, "parity_match_rate": 1},
                  row("re-materialized over bad write", 0, 1, 0.1), row("snapshot restored", 0, 0, 1),
                  row("v2 released", 0, 2.0, 1), row("flag-only rollback", 1, 1.5, 0),
                  row("v1 re-materialized", 0, 0.01, 1)]).to_csv(d / "feature_rollback_phases.csv", index=False)
    O.rollback_matrix().to_csv(d / "rollback_matrix.csv", index=False)
    assert grade_feature_rollback(ctx).level == 4
    routing = next(f for f, unit in O.ROLLBACK_MATRIX.items() if unit == "routing")
    wrong = O.rollback_matrix({routing: "model"})
    wrong.to_csv(d / "rollback_matrix.csv", index=False)
    assert grade_feature_rollback(ctx).level == 2
    phases = pd.read_csv(d / "feature_rollback_phases.csv")
    phases.loc[phases["phase"] == "re-materialized over bad write", "parity_match_rate"] = 1.0  # claims a repair
    phases.to_csv(d / "feature_rollback_phases.csv", index=False)
    assert grade_feature_rollback(ctx).level == 0
    (d / "incident.json").write_text(json.dumps({"time_to_detect_s": 1500.0, "time_to_recover_s": 1500.0}))
    (d / "corrective_actions.json").write_text(json.dumps([{"id": "CA-1", "passed": True}]))
    md = "- Time to detect: 25 min\n- Time to recover: 25 min\n\n| CA-1 | act | me | spec | PASS |\n"
    (d / "postmortem.md").write_text(md)
    assert grade_postmortem_actions(ctx).level == 4
    (d / "postmortem.md").write_text(md.replace("| PASS |", "| FAIL (x) |"))
    assert grade_postmortem_actions(ctx).level == 0
    (d / "corrective_actions.json").unlink()
    with pytest.raises(MissingEvidence):
        grade_postmortem_actions(ctx)


def test_rubric_has_a_row_for_every_chapter5_criterion():
    from mlops_kit.evidence import load_rubric
    from mlops_kit.evidence.grading import registered_criteria

    rows = {c.id for c in load_rubric() if c.id.startswith("C5.")}
    functions = {k for k in registered_criteria() if k.startswith("C5.")}
    assert rows == functions == {"C5.run", "C5.checks", "C5.quiz", *(f"C5.{k}" for k in range(1, 7))}


# ------------------------------------------------------------------- notebook helpers (ch05_review)


def test_harm_by_mode_by_hand():
    traffic = pd.DataFrame({"segment": ["high_value"] * 2 + ["regular"] * 8})
    budget = RiskBudget(pct_hours=50)
    plan = pd.DataFrame({"cumulative": [1.0, 3.5]})
    modes, bound = R.harm_by_mode(traffic, budget=budget, plan=plan, hours=2)
    # 5 requests per hour, 20 % of them on the segment: 0.5 x 5 x 0.2 = 0.5 requests
    assert bound == pytest.approx(0.5)
    assert modes == {"batch_exposed_requests": 2, "online_budget_bound_requests": 0.5, "ratio": 4.0,
                     "budget_pct_hours": 50, "plan_pct_hours": 3.5}


def test_runs_summary_matches_plain_counts(lab):
    runs = {"bad": lab["bad"], "good": lab["good"]}
    table = R.runs_summary(runs)
    assert table["strategy"].tolist() == ["bad", "good"]
    for (name, r), row in zip(runs.items(), table.to_dict(orient="records")):
        assert row["status"] == r.status
        assert row["candidate_requests"] == sum(1 for a in r.requests["arm"] if a == "candidate")
        assert row["shadowed"] == sum(1 for s in r.requests["shadow_score"] if pd.notna(s))
        assert row["events"].split(" > ") == list(r.events["kind"])


def test_incident_measures_and_figures(lab, world):
    bad = lab["bad"]
    rep = incident_report(bad, L.bad_fault())
    m = R.incident_measures(bad, rep, world["traffic"])
    rec_at = pd.Timestamp(rep.recovered_at)
    after = sum(1 for t, a in zip(bad.requests["event_timestamp"], bad.requests["arm"]) if t >= rec_at and a == "candidate")
    on_segment = sum(1 for s in world["traffic"]["segment"] if s == L.BAD_SEGMENT)
    assert m["candidate_requests_after_recovery"] == after == 0
    assert m["time_to_detect_min"] == rep.time_to_detect / M and m["time_to_recover_min"] == rep.time_to_recover / M
    assert m["exposure_requests"] == rep.exposure and m["candidate_requests_during_fault"] == rep.bad_arm_requests
    assert m["share_of_segment_exposed_pct"] == round(100 * rep.exposure / on_segment, 2)
    figs = R.incident_figures(bad, hours=3)
    assert list(figs) == ["incident_traffic_split", "incident_guardrails"]
    lo, hi = figs["incident_traffic_split"].axes[0].get_xlim()
    assert (lo, hi) == pytest.approx((mdates.date2num(L.START), mdates.date2num(L.START + 3 * H)))


def test_decline_rates_by_hand():
    times = [L.START + k * 30 * M for k in range(12)]                       # 00:00, 00:30, ... 05:30
    decision = [0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    rates = R.decline_rates(pd.DataFrame({"event_timestamp": pd.to_datetime(times), "decision": decision}))
    # [0 h, 1 h): 0, 1 -> 0.5; [2.5 h, 3 h): 1; [3 h, 4 h): 1, 1 -> 1; [4 h, 6 h): 0, 0, 0, 0 -> 0
    assert rates == {"baseline (warm-up)": 0.5, "released (threshold 0.3)": 1.0,
                     "after model-only rollback": 1.0, "after restore": 0.0}


def test_rollback_checks_table_and_alias_moves(lab):
    partial = [CheckResult(name="flags", passed=False, observed=0.3, expected=0.5)]
    full = [CheckResult(name="alias", passed=True, observed=1, expected=1),
            CheckResult(name="flags", passed=True, observed=0.5, expected=0.5)]
    table = R.rollback_checks_table(partial, full)
    assert list(table.columns) == ["stage", "name", "passed", "observed", "expected"]
    assert table[["stage", "name", "passed"]].values.tolist() == [["model-only", "flags", False],
                                                                  ["restore", "alias", True], ["restore", "flags", True]]
    moves = R.alias_moves(lab["registry"], "fraud")
    hist = lab["registry"].alias_history("fraud", "deployed-prod")
    assert moves["action"].tolist() == ["deploy", "deploy", "rollback"] == [e.action for e in hist]
    assert moves["to"].iloc[-1] == lab["stable_v"]


def test_first_trigger_replays_the_history(lab):
    bad = lab["bad"]
    ms = bad.measurements[bad.measurements["guardrail"] == "segments"]
    assert R.first_trigger(bad, lambda h: len(h) >= 3) == ms["time"].iloc[2]
    assert R.first_trigger(bad, lambda h: False) is None
    seen = []
    R.first_trigger(bad, lambda h: seen.append(len(h)) or False)
    assert seen == list(range(1, len(ms) + 1))


def test_corrective_actions_postmortem_and_records(tmp_path, world, lab, monkeypatch):
    registry, clock = L.lab_registry(Workspace(tmp_path / "ws"))
    budget = RiskBudget(pct_hours=50)
    settings = dict(world=world, steps=(15, 25, 50, 100), segment_threshold=0.25, window_min=30, budget=budget,
                    seed=3, scale=1)
    actions = R.corrective_actions(registry, clock, feature_ws=Workspace(tmp_path / "ca4"), **settings)
    results = [a.run() for a in actions]
    assert [a.id for a in actions] == ["CA-1", "CA-2", "CA-3", "CA-4"] and all(r.passed for r in results)
    assert [e.action for e in registry.alias_history("fraud_replay", "deployed-prod")][-1] == "rollback"
    # CA-3 re-ran the flag release: its restore moved the alias back in the registry just now
    assert [e.action for e in registry.alias_history("fraud_ca3", "deployed-prod")][-1] == "rollback"
    # the checks run when called, not from earlier results: break the restore and the re-materialization
    from mlops_kit.rollout.simulator import RolloutSimulator

    monkeypatch.setattr(RolloutSimulator, "restore", lambda self, state=None, *, actor, reason:
                        self.partial_rollback(actor=actor, reason=reason) and self.verify(state))
    monkeypatch.setattr(R, "feature_drill", functools.partial(O.feature_drill, rematerialize=False))
    again = R.corrective_actions(registry, clock, feature_ws=Workspace(tmp_path / "ca4-again"),
                                 **{**settings, "segment_threshold": 0.5})
    assert [again[i].run().passed for i in (0, 2, 3)] == [False, False, False]
    text = R.postmortem(incident_report(lab["bad"], L.bad_fault()), actions, first_step=15)
    assert "canaried at 15 %" in text and "## Corrective" in text and all(a.id in text for a in actions)
    cov = pd.DataFrame({"segment": ["high_value", "x"], "candidate_per_window_at_weight": [21.2, 99.0]})
    assert "gives 21.2 candidate requests per coverage window" in R.postmortem(
        incident_report(lab["bad"], L.bad_fault()), actions, first_step=15, coverage=cov)
    records = R.action_records(actions, results)
    assert [r["id"] for r in records] == ["CA-1", "CA-2", "CA-3", "CA-4"]
    assert records[2] == {"id": "CA-3", "spec": actions[2].spec, "owner": "on-call", **results[2].to_dict()}


def test_trigger_replays_against_the_simulators_abort(world, lab):
    strict = L.run_canary(world, L.memory_models(world), consecutive=2, seed=3, **SETTINGS)
    def reference(h):                                     # the exercise's rule, written out
        k = int(h["consecutive"].iloc[-1])
        last = h.tail(k)
        ok = last["value"].notna() & (last["value"] > last["threshold"]) & (last["n"] >= last["min_samples"])
        return len(last) == k and bool(ok.all())
    runs = {"bad": lab["bad"], "good": lab["good"], "strict": strict}
    table = R.trigger_replays(runs, reference)
    assert table["agree"].all() and table["consecutive"].tolist() == [1, 1, 2]
    assert table.set_index("run").loc["strict", "aborted_at"] > table.set_index("run").loc["bad", "aborted_at"]
    last_only = R.trigger_replays(runs, lambda h: bool(h["value"].iloc[-1] > h["threshold"].iloc[-1]))
    assert last_only.set_index("run")["agree"].to_dict() == {"bad": True, "good": True, "strict": False}


def test_show_canary_and_explorer(world, capsys):
    summary = R.show_canary(world, seed=3, first_step=5, threshold=0.25, window_min=30)
    assert summary == L.explore_canary(world, first_step=5, segment_threshold=0.25, window_min=30, seed=3)[0]
    assert str(summary) in capsys.readouterr().out
    box = R.canary_explorer(world, seed=3, first_step=5.0, threshold=0.4, window_min=20)
    sliders, panel = box.children
    assert [s.description for s in sliders.children] == ["first step %", "bake (min)", "threshold", "window (min)"]
    assert [s.value for s in sliders.children] == [5, 30, 0.4, 20] and panel.outputs == ()
