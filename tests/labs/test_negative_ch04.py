"""Chapter 4 negative controls: remove or break a control and both its check and its criterion fail.

Each case runs the chapter's registry steps into a scratch evidence dir, once with the
control and once without it (a skipped production gate, an approval rule that lets the
author sign alone, an audit verification that sees nothing, a service that resolves the
alias once): with the control the check passes and the grader gives level 4; without it
``rec.check`` raises and the criterion drops to 0.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlops_kit.datasets import PROFILE_FEATURES
from mlops_kit.errors import CheckFailedError, PolicyViolationError
from mlops_kit.evidence import start_chapter
from mlops_kit.evidence.grading import ch04 as grading
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.labs import ch04, ch04_checks as checks, ch04_gov as gov, ch04_ops as ops
from mlops_kit.registry import ApprovalRule
from mlops_kit.registry.audit import AuditLog, AuditVerification

SEED, SCALE = 3, 0.2
NAME = ch04.MODEL
RULE = ApprovalRule(required_roles=("ml-owner", "risk"),
                    principals={"ana": ["ml-engineer"], "raj": ["ml-owner"], "lee": ["risk"]})


@pytest.fixture(scope="module")
def data():
    return ch04.make_data(seed=SEED, scale=SCALE)


@pytest.fixture(scope="module")
def scorers(data):
    full = ch04.train_scorer(data, kind="logistic", seed=SEED)
    lite_inputs = tuple(c for c in full[0].inputs if c not in PROFILE_FEATURES)
    lite = ch04.train_scorer(data, kind="logistic", inputs=lite_inputs, seed=SEED)
    assert lite[1]["auc"] < full[1]["auc"]          # the gate below separates them by their AUC
    return full, lite


def _run(tmp_path, name):
    rec = start_chapter(4, evidence_dir=tmp_path / name, seed=SEED, scale=SCALE)
    registry, clock = ch04.lab_registry(rec.workspace())
    registry.approval_rule = RULE
    return rec, registry, clock, GradingContext(tmp_path / name, {}, [])


def _check(rec, check_id, verdict) -> bool:
    try:
        rec.check(check_id, **verdict)
        return True
    except CheckFailedError:
        return False


def _register(registry, data, scorer, *, run_id):
    return ch04.register_scorer(registry, data, *scorer, author="ana", code_revision="c0ffee1", run_id=run_id)


def _to_staging(registry, clock, version):
    for stage in ("candidate", "staging"):
        clock.advance(timedelta(minutes=5))
        registry.promote(NAME, version, stage, actor="ana", reason=f"to {stage}")


def _approve_and_promote(registry, clock, version):
    registry.approve(NAME, version, actor="raj", role="ml-owner", note="ok")
    registry.approve(NAME, version, actor="lee", role="risk", note="ok")
    clock.advance(timedelta(minutes=5))
    registry.promote(NAME, version, "approved-prod", actor="raj", reason="approved")


def _deployed_v1(registry, clock, data, scorers):
    _register(registry, data, scorers[0], run_id="r1")
    _to_staging(registry, clock, 1)
    _approve_and_promote(registry, clock, 1)
    clock.advance(timedelta(minutes=5))
    registry.deploy(NAME, actor="deployer", reason="first deployment")


# -- the production gate skipped -------------------------------------------------------------
def _gate(rec, registry, clock, data, scorers, *, gate_on: bool) -> bool:
    (full, full_report), (_, lite_report) = scorers
    minimum = (full_report["auc"] + lite_report["auc"]) / 2      # the lite model misses it, the full one meets it
    gate = ops.VerdictGate(verdict=_reference_gate, minimum=minimum, min_gain=-1.0)
    registry.set_policies("approved-prod", [gate] if gate_on else [])
    _deployed_v1(registry, clock, data, scorers)
    _register(registry, data, scorers[1], run_id="r2")             # v2: the lite model
    _register(registry, data, scorers[0], run_id="r3")             # v3: the full model again
    blocked = []
    for version in (2, 3):
        _to_staging(registry, clock, version)
        try:
            _approve_and_promote(registry, clock, version)
        except PolicyViolationError as exc:
            blocked = exc.details["failures"]
    rec.save_json("governance", {"blocked_version": 2, "blocked_reasons": [
        {"policy_id": b["policy_id"], "reason": b["reason"]} for b in blocked]})
    rec.save_audit_export(registry)
    return _check(rec, "4.5-policy-blocks-then-passes", checks.policy_blocks_check(
        registry, NAME, blocked=blocked, blocked_version=2, passed_version=3))


def _reference_gate(candidate, production, same_eval_set, *, minimum, min_gain):
    if candidate is None:
        return False, "not recorded"
    if candidate < minimum:
        return False, f"below the minimum {minimum:.4f}"
    if production is None:
        return True, "meets the minimum, nothing to beat"
    if not same_eval_set:
        return False, "different evaluation sets"
    return candidate - production >= min_gain, "gain over production"


def test_a_skipped_production_gate_fails_the_check_and_c4_4(tmp_path, data, scorers):
    rec, registry, clock, ctx = _run(tmp_path, "control")
    assert _gate(rec, registry, clock, data, scorers, gate_on=True)
    assert grading.grade_blocked_then_passed(ctx).level == 4
    rec, registry, clock, ctx = _run(tmp_path, "broken")
    assert not _gate(rec, registry, clock, data, scorers, gate_on=False)
    assert grading.grade_blocked_then_passed(ctx).level == 0


# -- separation of duties removed: the author approves alone ---------------------------------
def _separation(rec, registry, clock, data, scorers, attempts, early) -> bool:
    _deployed_v1(registry, clock, data, scorers)
    _register(registry, data, scorers[0], run_id="r2")
    _to_staging(registry, clock, 2)
    log = gov.approval_attempts(registry, NAME, 2, attempts, clock=clock, early_promote=early)
    if registry.get_model_version(NAME, 2).state != "approved":
        clock.advance(timedelta(minutes=5))
        registry.promote(NAME, 2, "approved-prod", actor="raj", reason="approvals complete")
    rec.save_audit_export(registry)
    approvals = [a.to_dict() for a in registry.approvals(NAME, 2)]
    return _check(rec, "4.5-separation-of-duties", checks.separation_check(
        approvals, author="ana", attempts=log, required_roles=RULE.required_roles))


def test_an_author_approving_alone_fails_the_check_and_c4_3(tmp_path, data, scorers, monkeypatch):
    rec, registry, clock, ctx = _run(tmp_path, "control")
    attempts = [("ana", "ml-owner"), ("raj", "ml-owner"), ("lee", "risk")]
    assert _separation(rec, registry, clock, data, scorers, attempts, ("ana", "raj"))
    assert grading.grade_separation_of_duties(ctx).level == 4
    monkeypatch.setattr(ApprovalRule, "check_approver", lambda self, **kwargs: None)
    monkeypatch.setattr(ApprovalRule, "missing_roles", lambda self, approvals, *, author: [])
    rec, registry, clock, ctx = _run(tmp_path, "broken")
    assert not _separation(rec, registry, clock, data, scorers, [("ana", "ml-owner")], ("ana", "ana"))
    assert grading.grade_separation_of_duties(ctx).level == 0


# -- an audit verification that sees nothing --------------------------------------------------
def _tamper(rec, registry, clock, data, scorers) -> bool:
    _deployed_v1(registry, clock, data, scorers)
    seq = next(e.seq for e in registry.audit.entries() if e.action == "approve" and e.payload["role"] == "risk")
    honest = registry.audit.verify()
    tamper = ops.tamper_audit_copy(registry, rec.workspace("tampered"), seq=seq, edit=lambda p: {**p, "version": 9},
                                   export_to=rec.path("audit_tampered.jsonl"))
    rec.save_json("audit_tamper", tamper)
    rec.save_audit_export(registry)
    return _check(rec, "4.5-audit-tamper-detected", checks.tamper_check(honest, tamper, seq=seq))


def test_a_verification_that_sees_nothing_fails_the_check_and_c4_5(tmp_path, data, scorers, monkeypatch):
    rec, registry, clock, ctx = _run(tmp_path, "control")
    assert _tamper(rec, registry, clock, data, scorers)
    assert grading.grade_tamper_detected(ctx).level == 4
    monkeypatch.setattr(AuditLog, "verify",
                        lambda self, *, anchor=None: AuditVerification(ok=True, entries=len(self), head="unchecked"))
    rec, registry, clock, ctx = _run(tmp_path, "broken")
    assert not _tamper(rec, registry, clock, data, scorers)
    assert grading.grade_tamper_detected(ctx).level == 0


# -- a service that resolves deployed-prod once, at start-up ----------------------------------
def _serving(rec, registry, clock, data, scorers, *, resolve_once: bool, monkeypatch) -> bool:
    registry.set_policies("approved-prod", [])
    _deployed_v1(registry, clock, data, scorers)
    _register(registry, data, scorers[0], run_id="r2")
    _to_staging(registry, clock, 2)
    _approve_and_promote(registry, clock, 2)
    if resolve_once:
        resolved = {}
        real = registry.get_model_version_by_alias
        monkeypatch.setattr(registry, "get_model_version_by_alias",
                            lambda name, alias: resolved.setdefault((name, alias), real(name, alias)))
    requests = data.serving.head(40)
    log_before = ops.serve(registry, NAME, requests.iloc[:20], clock=clock)
    clock.advance(timedelta(minutes=1))
    registry.deploy(NAME, actor="deployer", reason="roll out v2")
    log = ops.serve(registry, NAME, requests.iloc[20:], clock=clock)
    import pandas as pd

    log = pd.concat([log_before, log], ignore_index=True)
    rec.save_table("prediction_log", log)
    rec.save_table("alias_history", ops.alias_history_frame(registry, NAME, "deployed-prod"))
    rec.save_audit_export(registry)
    return _check(rec, "4.6-every-prediction-versioned", checks.versioned_log_check(registry, NAME, log,
                                                                                   versions={1, 2}))


def test_a_service_that_caches_the_alias_fails_the_check_and_c4_2(tmp_path, data, scorers, monkeypatch):
    rec, registry, clock, ctx = _run(tmp_path, "control")
    assert _serving(rec, registry, clock, data, scorers, resolve_once=False, monkeypatch=monkeypatch)
    assert grading.grade_prediction_versions(ctx).level == 4
    rec, registry, clock, ctx = _run(tmp_path, "broken")
    assert not _serving(rec, registry, clock, data, scorers, resolve_once=True, monkeypatch=monkeypatch)
    assert grading.grade_prediction_versions(ctx).level == 0
