"""Chapter 5 negative controls: remove or break a control and both its check and its criterion fail.

Each case drives the chapter's lab functions into a scratch evidence dir, once with the
control and once without it (no per-segment guardrail, a restore that only rolls the model
back, a feature rollback without re-materialization, a canary that ignores its risk budget):
with the control the check passes and the grader gives full marks; without it ``rec.check``
raises and the criterion drops.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from mlops_kit.errors import CheckFailedError
from mlops_kit.evidence import start_chapter
from mlops_kit.evidence.grading import ch05 as grading
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.evidence.grading.generic import grade_checks
from mlops_kit.labs import ch05 as L, ch05_ops as O, ch05_review as R
from mlops_kit.rollout import CanaryStrategy, RiskBudget, incident_report
from mlops_kit.rollout.simulator import RolloutSimulator

SEED = 3
M, H = timedelta(minutes=1), timedelta(hours=1)
STEPS = (15, 25, 50, 100)
GUARDS = dict(segment_threshold=0.25, window_min=30)             # exercise 5.1's guardrail settings


@pytest.fixture(scope="module")
def world():
    return L.make_world(seed=SEED)


def _run(tmp_path, name):
    rec = start_chapter(5, evidence_dir=tmp_path / name, seed=SEED, scale=1)
    registry, clock = L.lab_registry(rec.workspace())
    return rec, registry, clock, GradingContext(tmp_path / name, {}, [])


def _check(rec, check_id, verdict) -> bool:
    try:
        rec.check(check_id, **verdict)
        return True
    except CheckFailedError:
        return False


# -- no per-segment guardrail ---------------------------------------------------------------------
def _incident(rec, registry, clock, world, guardrails) -> bool:
    models = L.release_pair(registry, clock, "fraud", world)[0]
    sim = L.make_sim(world, models, strategy=CanaryStrategy(steps=STEPS, bake_time=30 * M),
                     guardrails=guardrails, faults=[L.bad_fault()], seed=SEED)
    incident = sim.run()
    report = incident_report(incident, L.bad_fault())
    rec.save_table("canary_events", incident.events)
    rec.save_table("canary_measurements",
                   incident.measurements.assign(window=incident.measurements["window"].dt.total_seconds()))
    rec.save_table("canary_intervals", L.exposure_intervals(incident))
    return _check(rec, "5.2-regression-caught", R.regression_verdict(incident, report))


def test_no_segment_guardrail_fails_the_check_and_c5_1(tmp_path, world):
    rec, registry, clock, ctx = _run(tmp_path, "control")
    assert _incident(rec, registry, clock, world, L.guardrails(**GUARDS))
    assert grading.grade_rollback_after_breach(ctx).level == 4
    rec, registry, clock, ctx = _run(tmp_path, "broken")
    overall_only = [g for g in L.guardrails(**GUARDS) if g.metric != "segment_regression"]
    assert not _incident(rec, registry, clock, world, overall_only)
    assert grading.grade_rollback_after_breach(ctx).level == 0


# -- restore() reduced to a model-only rollback ---------------------------------------------------
def _threshold_release(rec, registry, clock, world) -> bool:
    models = L.release_pair(registry, clock, "fraud_flags", world)[0]
    sim = L.make_sim(world, models, strategy=CanaryStrategy(steps=(10, 50, 100), bake_time=30 * M),
                     guardrails=L.guardrails(**GUARDS), candidate_flags={"threshold": 0.3}, seed=SEED)
    known_good = sim.snapshot()
    sim.run(until=L.START + 3 * H)
    sim.partial_rollback(actor="on-call", reason="decline rate doubled")
    partial = sim.verify(known_good)
    sim.run(until=L.START + 4 * H)
    full = sim.restore(known_good, actor="on-call", reason="put back the whole release state")
    rates = R.decline_rates(sim.run().requests)
    rec.save_json("rollback_checks", {"partial": [c.to_dict() for c in partial], "full": [c.to_dict() for c in full],
                                      "decline_rates": rates})
    rec.save_table("alias_history_fraud_flags", R.alias_moves(registry, "fraud_flags"))
    return _check(rec, "5.3-partial-broken-full-fixed", R.rollback_verdict(partial, full, rates))


def test_a_restore_without_the_flags_fails_the_check_and_c5_3(tmp_path, world, monkeypatch):
    rec, registry, clock, ctx = _run(tmp_path, "control")
    assert _threshold_release(rec, registry, clock, world)
    assert grading.grade_partial_vs_full(ctx).level == 4
    monkeypatch.setattr(RolloutSimulator, "restore", lambda self, state=None, *, actor, reason: self.verify(state))
    rec, registry, clock, ctx = _run(tmp_path, "broken")
    assert not _threshold_release(rec, registry, clock, world)
    assert grading.grade_partial_vs_full(ctx).level == 0


# -- the feature rollback without re-materialization ----------------------------------------------
def _feature_rollback(rec, world, *, rematerialize) -> bool:
    ws = rec.workspace()
    store, fclock = O.feature_store(ws, world, seed=SEED)
    phases = O.feature_drill(store, fclock, ws, world, seed=SEED, rematerialize=rematerialize)["phases"]
    table = pd.DataFrame(phases)
    rec.save_table("feature_rollback_phases", table)
    rec.save_table("rollback_matrix", O.rollback_matrix())
    return _check(rec, "5.4-feature-rollback-rematerialized", O.rematerialized_verdict(table))


def test_a_flag_only_feature_rollback_fails_the_check_and_c5_4(tmp_path, world):
    rec, _, _, ctx = _run(tmp_path, "control")
    assert _feature_rollback(rec, world, rematerialize=True)
    assert grading.grade_feature_rollback(ctx).level == 4
    rec, _, _, ctx = _run(tmp_path, "broken")
    assert not _feature_rollback(rec, world, rematerialize=False)
    assert grading.grade_feature_rollback(ctx).level == 2        # the matrix is right, the drill is not


# -- a canary that ignores its risk budget --------------------------------------------------------
def _budget(rec, world) -> bool:
    tight = RiskBudget(pct_hours=20)                              # pays for the 15 % and 25 % steps only
    run = L.run_canary(world, L.memory_models(world), steps=STEPS, budget=tight, bad=False, seed=SEED, **GUARDS)
    ok = _check(rec, "5.1-budget-enforced", L.budget_verdict(run, tight, steps=STEPS, bake=30 * M))
    if ok:
        rec.complete()
    return ok


def test_an_unenforced_budget_fails_the_check_and_c5_checks(tmp_path, world, monkeypatch):
    rec, _, _, ctx = _run(tmp_path, "control")
    assert _budget(rec, world)
    assert grade_checks(ctx, chapter=5).level == 4
    monkeypatch.setattr(CanaryStrategy, "_budget_check", lambda self, state, next_weight: None)
    rec, _, _, ctx = _run(tmp_path, "broken")
    assert not _budget(rec, world)
    assert grade_checks(ctx, chapter=5).level == 0
