"""Chapter 5 lab functions (``ch05``, ``ch05_ops``), against hand-computed values and plain loops."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import timedelta

import pandas as pd
import pytest

from mlops_kit.errors import ValidationError
from mlops_kit.labs import ch05 as L
from mlops_kit.labs import ch05_ops as O
from mlops_kit.rollout import RiskBudget, incident_report
from mlops_kit.workspace import Workspace

from ._ch05_lab import SETTINGS, lab, world  # noqa: F401 - shared module fixtures

M, H = timedelta(minutes=1), timedelta(hours=1)


def test_bad_canary_aborts_through_the_registry_and_good_one_completes(lab):
    bad, good, reg = lab["bad"], lab["good"], lab["registry"]
    assert bad.status == "aborted" and good.status == "completed"
    assert reg.get_model_version_by_alias("fraud", "deployed-prod").version == lab["stable_v"]
    moves = [e.action for e in reg.alias_history("fraud", "deployed-prod")]
    assert moves == ["deploy", "deploy", "rollback"]
    t_abort = bad.events.loc[bad.events["kind"] == "abort", "time"].iloc[0]
    after = bad.requests[bad.requests["event_timestamp"] >= t_abort]
    assert (after["arm"] == "candidate").sum() == 0


def test_exposure_intervals_match_a_plain_loop(lab):
    bad = lab["bad"]
    iv = L.exposure_intervals(bad)
    starts = list(pd.to_datetime(iv["start"], utc=True))
    counts = [0] * len(starts)
    seg = [0] * len(starts)
    for t, arm, s, hit in zip(bad.requests["event_timestamp"], bad.requests["arm"], bad.requests["segment"],
                              bad.requests["affected"]):
        k = max(i for i, st in enumerate(starts) if st <= t)
        counts[k] += int(hit)
        seg[k] += int(arm == "candidate" and s == L.BAD_SEGMENT)
    assert iv["n_affected"].tolist() == counts
    assert iv["n_candidate_on_segment"].tolist() == seg
    rep = incident_report(bad, L.bad_fault())
    assert iv["n_affected"].sum() == rep.exposure > 0


def test_routing_report_counts_flips_and_shares_by_hand():
    t = pd.Timestamp("2025-03-01T01:00:00Z")
    intervals = pd.DataFrame({"start": [t, t + 5 * M], "end": [t + 5 * M, t + 10 * M],
                              "status": ["progressing"] * 2, "weight": [50.0, 50.0]})
    requests = pd.DataFrame({"key": [1, 1, 2, 3, 4, 4], "event_timestamp": [t + i * M for i in range(6)],
                             "arm": ["candidate", "stable", "stable", "candidate", "candidate", "candidate"]})
    out = L.routing_report(requests, intervals)
    assert out["keys_that_changed_arm_within_a_step"] == 1     # key 1
    step = out["steps"][0]
    assert step["keys"] == 4 and step["requests"] == 6
    assert step["candidate_key_share_pct"] == 75.0              # first arm per key: 1 c, 2 s, 3 c, 4 c


def test_routing_of_a_real_canary_is_sticky(lab):
    out = L.routing_report(lab["good"].requests, lab["good"].intervals)
    assert out["keys_that_changed_arm_within_a_step"] == 0
    assert [s["weight_pct"] for s in out["steps"]] == [15.0, 25.0, 50.0]
    assert all(s["within_tolerance"] for s in out["steps"])


def test_budget_table_by_hand():
    tab = L.budget_table((5, 25, 50, 100), bake=30 * M, budget=RiskBudget(pct_hours=20))
    assert tab["pct_hours"].tolist() == [2.5, 12.5, 25.0]
    assert tab["cumulative"].tolist() == [2.5, 15.0, 40.0]
    assert tab["within_budget"].tolist() == [True, True, False]     # budget 20 percent-hours
    with pytest.raises(ValidationError):
        L.budget_table((5,), bake=30 * M, budget=20)


def test_bad_input_is_refused():
    with pytest.raises(ValidationError, match="scale"):
        L.make_world(seed=1, scale=100)
    with pytest.raises(ValidationError, match="seed"):
        L.make_world(seed=-1)
    with pytest.raises(ValidationError, match="window_min"):
        L.guardrails(segment_threshold=0.25, window_min=7)
    with pytest.raises(ValidationError, match="matrix_errors"):
        O.matrix_errors(["model"])


def test_feature_drill_stale_cache_then_rematerialized(tmp_path, world):
    ws = Workspace(tmp_path)
    store, clock = O.feature_store(ws, world, seed=3)
    drill = O.feature_drill(store, clock, ws, world, seed=3)
    phases = {p["phase"]: p for p in drill["phases"]}
    # v1's last materialized row is stamped 01:50; read at 03:25 it is 95 min old > TTL 90 min
    assert phases["flag-only rollback"]["missing_feature_rate"] == 1.0
    assert phases["flag-only rollback"]["parity_missing_online"] == 300
    assert phases["v1 re-materialized"]["missing_feature_rate"] == 0.0
    assert phases["v1 re-materialized"]["parity_match_rate"] == 1.0
    # v2 counts over 30 days: about 30/7 times the 7-day count, so scores drop (negative weight)
    assert phases["v2 released"]["positive_rate"] < phases["v1 live"]["positive_rate"] / 3
    assert phases["v2 released"]["score_psi_vs_v1"] > 0.25
    # every v1 row is rewritten: same event time, later created time
    assert drill["bad_rows_written"] == 6_000
    assert phases["bad write into v1 table"]["parity_match_rate"] < 0.5
    assert phases["re-materialized over bad write"]["parity_match_rate"] == \
        phases["bad write into v1 table"]["parity_match_rate"]
    assert phases["snapshot restored"]["parity_match_rate"] == 1.0


def test_snapshot_restore_refuses_a_changed_file(tmp_path, world):
    from mlops_kit.errors import IntegrityError

    ws = Workspace(tmp_path)
    store, clock = O.feature_store(ws, world, seed=3)
    store.materialize(L.START - H, L.START + H)
    snap = O.snapshot_online(store, ws, label="t1")
    with open(ws.snapshots_dir / snap["file"], "ab") as fh:
        fh.write(b"x")
    with pytest.raises(IntegrityError, match="sha256"):
        O.restore_online(store, ws, snap)
    with pytest.raises(ValidationError, match="label"):
        O.snapshot_online(store, ws, label="../x")


def test_rollback_matrix_and_errors():
    assert O.matrix_errors(dict(O.ROLLBACK_MATRIX)) == []
    assert len(O.FAILURES) == 7 and set(O.FAILURES) == set(O.ROLLBACK_MATRIX)
    stale = next(f for f, unit in O.ROLLBACK_MATRIX.items() if unit == "rematerialize")
    wrong = {**O.ROLLBACK_MATRIX, stale: "model"}
    assert len(O.matrix_errors(wrong)) == 1
    assert O.rollback_matrix(wrong).set_index("failure").loc[stale, "roll_back"] == "model"
    # a failure's description never names its unit, and the failures are not listed in the units' order
    for failure, unit in O.ROLLBACK_MATRIX.items():
        assert unit.replace("_", " ") not in failure and unit not in failure, (failure, unit)
    assert list(O.ROLLBACK_MATRIX.values()) != sorted(O.ROLLBACK_MATRIX.values())


def test_incident_phases_are_ordered_and_diagnosis_names_the_segment(lab):
    bad = lab["bad"]
    rep = incident_report(bad, L.bad_fault())
    ph = O.incident_phases(bad, fault_start=rep.fault_start)
    assert ph["phase"].tolist() == ["triage", "stabilize", "recover"]
    # every time is an event of the run: a plain scan of the event table gives the same rows
    ev = bad.events
    alert = ev.loc[ev["kind"] == "alert", "time"].min()
    abort = ev.loc[(ev["kind"] == "abort") & (ev["time"] >= alert), "time"].min()
    back = ev.loc[(ev["kind"] == "rollback") & (ev["time"] >= abort), "time"].min()
    assert ph["time"].tolist() == [alert, abort, back] and ph["event"].tolist() == ["alert", "abort", "rollback"]
    assert ph["minutes_since_fault"].iloc[0] == rep.time_to_detect.total_seconds() / 60
    assert ph["minutes_since_fault"].iloc[1] == rep.time_to_recover.total_seconds() / 60
    diag = O.diagnose_segments(bad.requests, since=L.START + L.WARMUP, until=abort)
    assert diag["segment"].iloc[0] == L.BAD_SEGMENT
    with pytest.raises(ValidationError, match="both arms"):
        O.diagnose_segments(bad.requests, since=L.START + L.WARMUP, until=L.START + L.WARMUP)
    with pytest.raises(ValidationError, match="no alert"):
        O.incident_phases(lab["good"], fault_start=rep.fault_start)
    no_alias = bad.events[bad.events["kind"] != "rollback"]
    with pytest.raises(ValidationError, match="rolled back"):
        O.incident_phases(dataclasses.replace(bad, events=no_alias), fault_start=rep.fault_start)


def test_explore_canary_summary(world):
    summary, figs = L.explore_canary(world, first_step=5, segment_threshold=0.25, window_min=30, seed=3)
    assert summary["status"] == "aborted" and summary["steps"] == [5, 25, 50, 100]
    assert summary["minutes_to_abort"] > 0 and len(figs) == 2 and all(f.axes for f in figs)
    # a 1 % first step starves the error/latency analysis: the canary pauses for a human decision
    paused = L.explore_canary(world, first_step=1, segment_threshold=0.25, window_min=30, seed=3)[0]
    assert paused["status"] == "paused"


def test_budget_verdict_recomputes_spending(world):
    steps, guard = SETTINGS["steps"], dict(segment_threshold=0.25, window_min=30)
    tight = RiskBudget(pct_hours=20)                      # 15 % x 0.5 h + 25 % x 0.5 h = 20: pays for two steps
    run = L.run_canary(world, L.memory_models(world), steps=steps, budget=tight, bad=False, seed=3, **guard)
    verdict = L.budget_verdict(run, tight, steps=steps, bake=30 * M)
    assert verdict["passed"] and verdict["observed"]["max_weight"] == 25.0
    assert verdict["observed"]["pct_hours_spent"] <= 20
    loose = L.run_canary(world, L.memory_models(world), steps=steps, budget=RiskBudget(pct_hours=50), bad=False,
                         seed=3, **guard)
    assert loose.status == "completed"
    assert not L.budget_verdict(loose, RiskBudget(pct_hours=50), steps=steps, bake=30 * M)["passed"]


def test_the_release_settings_have_no_kit_default():
    # exercise 5.1 asks for the steps, the segment threshold and the window: no helper may answer it
    for fn, names in ((L.guardrails, ("segment_threshold", "window_min")),
                      (L.run_canary, ("steps", "segment_threshold", "window_min")),
                      (L.explore_canary, ("first_step", "segment_threshold", "window_min"))):
        params = inspect.signature(fn).parameters
        assert all(params[n].default is inspect.Parameter.empty for n in names), fn.__name__
    with pytest.raises(TypeError):
        L.guardrails(window_min=15)
    segment = [g for g in L.guardrails(segment_threshold=0.3, window_min=15) if g.metric == "segment_regression"]
    assert [(g.threshold, g.window) for g in segment] == [(0.3, 15 * M)]
