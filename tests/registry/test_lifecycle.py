"""States, promotion gates and attestations, approvals, deploy, rollback and alias history."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from registry_helpers import fit_model, register, to_production

from mlops_kit.errors import (
    ApprovalError,
    ConflictError,
    IllegalTransitionError,
    PolicyViolationError,
    RegistryError,
)
from mlops_kit.registry import (
    TRANSITIONS,
    ApprovalRule,
    ContractCheck,
    EnvironmentRecorded,
    MetricThreshold,
    ModelRegistry,
    NoSegmentRegression,
    alias_spans,
)


def test_transition_table_is_explicit_and_illegal_moves_list_allowed_targets(registry):
    register(registry)
    with pytest.raises(IllegalTransitionError) as info:
        registry.promote("fraud", 1, "approved-prod", actor="alice")
    assert info.value.details["allowed"] == ["candidate", "rejected", "archived"]
    registry.transition("fraud", 1, "rejected", actor="lead", reason="wrong label window")
    with pytest.raises(IllegalTransitionError) as info:
        registry.transition("fraud", 1, "candidate", actor="lead", reason="undo")
    assert info.value.details["allowed"] == ["archived"]
    registry.transition("fraud", 1, "archived", actor="lead", reason="cleanup")
    with pytest.raises(IllegalTransitionError, match="final state"):
        registry.transition("fraud", 1, "rejected", actor="lead", reason="again")
    assert [(e.from_state, e.to_state) for e in registry.state_history("fraud", 1)] == [
        (None, "registered"), ("registered", "rejected"), ("rejected", "archived")]
    # every state in the table is reachable only along listed edges
    assert set(TRANSITIONS) == {s for targets in TRANSITIONS.values() for s in targets} | {"registered"}


def test_promotion_walks_the_stages_and_records_state_and_aliases(registry):
    register(registry)
    mv = to_production(registry, "fraud", 1)
    assert mv.state == "deployed"
    assert set(mv.aliases) == {"candidate", "staging", "approved-prod", "deployed-prod"}
    assert [e.to_state for e in registry.state_history("fraud", 1)] == [
        "registered", "candidate", "staging", "approved", "deployed"]


def test_free_form_aliases_move_without_state_change(registry):
    register(registry)
    register(registry, seed=1)
    registry.promote("fraud", 1, "champion-eu", actor="alice", reason="eu launch")
    registry.promote("fraud", 2, "champion-eu", actor="bob", reason="retrained")
    assert registry.get_model_version("fraud", 2).state == "registered"
    with pytest.raises(ConflictError):
        registry.promote("fraud", 2, "champion-eu", actor="bob")


def test_each_policy_result_is_stored_as_an_attestation(registry):
    register(registry)
    registry.promote("fraud", 1, "candidate", actor="alice")
    atts = registry.attestations("fraud", 1)
    assert [(a.policy_id, a.verdict, a.stage) for a in atts] == [
        ("lineage_complete", "pass", "candidate"), ("environment_recorded", "pass", "candidate")]
    assert atts[0].at == registry._now() and atts[0].audit_seq == len(registry.audit)


def test_metric_threshold_against_production_absolute_and_relative(registry):
    register(registry, auc=0.80)
    to_production(registry, "fraud", 1)
    registry.set_policies("staging", [MetricThreshold(metric="auc", minimum=0.7, min_abs_improvement=0.01,
                                                      min_rel_improvement=0.02)])
    # 0.81: +0.01 absolute (ok) but +1.25 % relative (< 2 %): blocked
    register(registry, seed=1, auc=0.81)
    registry.promote("fraud", 2, "candidate", actor="alice")
    with pytest.raises(PolicyViolationError) as info:
        registry.promote("fraud", 2, "staging", actor="alice")
    failure = info.value.details["failures"][0]
    assert failure["policy_id"] == "metric_threshold:auc" and "1.25%" in failure["reason"]
    assert failure["observed"]["abs_improvement"] == pytest.approx(0.01)
    assert failure["observed"]["rel_improvement"] == pytest.approx(0.01 / 0.80)
    mv = registry.get_model_version("fraud", 2)
    assert mv.state == "candidate" and "staging" not in mv.aliases  # alias did not move
    assert registry.audit.entries()[-1].action == "promotion_blocked"
    assert registry.attestations("fraud", 2)[-1].verdict == "fail"  # evidence of the refusal is kept
    # 0.83: +0.03 absolute, +3.75 % relative: passes
    register(registry, seed=2, auc=0.83)
    registry.promote("fraud", 3, "candidate", actor="alice")
    assert "staging" in registry.promote("fraud", 3, "staging", actor="alice").aliases
    # below the minimum
    register(registry, seed=3, auc=0.65)
    registry.promote("fraud", 4, "candidate", actor="alice")
    with pytest.raises(PolicyViolationError, match="below the minimum"):
        registry.promote("fraud", 4, "staging", actor="alice")


def test_metrics_on_different_eval_sets_are_not_comparable(registry):
    register(registry, auc=0.80)
    to_production(registry, "fraud", 1)
    registry.set_policies("staging", [MetricThreshold(metric="auc", min_abs_improvement=0.0)])
    register(registry, seed=1, auc=0.95, eval_set="f" * 64)
    registry.promote("fraud", 2, "candidate", actor="alice")
    with pytest.raises(PolicyViolationError, match="not comparable"):
        registry.promote("fraud", 2, "staging", actor="alice")


def test_segment_regression_beyond_tolerance_blocks_and_all_reasons_are_listed(registry):
    register(registry, auc=0.80, segments={"DE": {"auc": 0.80}, "FR": {"auc": 0.78}, "NL": {"auc": 0.70}})
    to_production(registry, "fraud", 1)
    registry.set_policies("staging", [
        NoSegmentRegression(metric="auc", tolerance=0.02),
        MetricThreshold(metric="auc", minimum=0.9),
    ])
    register(registry, seed=1, auc=0.85, segments={"DE": {"auc": 0.90}, "FR": {"auc": 0.75}})
    registry.promote("fraud", 2, "candidate", actor="alice")
    with pytest.raises(PolicyViolationError) as info:
        registry.promote("fraud", 2, "staging", actor="alice")
    failures = {f["policy_id"]: f for f in info.value.details["failures"]}
    assert set(failures) == {"no_segment_regression:auc", "metric_threshold:auc"}
    seg = failures["no_segment_regression:auc"]
    # FR drops 0.03 (> 0.02); NL missing on the candidate; DE improves
    assert seg["observed"]["drops"]["FR"] == pytest.approx(0.03)
    assert seg["observed"]["drops"]["NL"] is None and "NL" in seg["reason"] and "FR" in seg["reason"]
    assert seg["observed"]["drops"]["DE"] == pytest.approx(-0.10)


def test_contract_and_environment_policies(registry):
    register(registry)
    _, X = fit_model(0)
    drifted = X.assign(n_tx_24h=X["n_tx_24h"].astype("float64") + 0.5, amount=X["amount"] * 1000)
    registry.set_policies("candidate", [ContractCheck(data=drifted, data_name="serving sample"),
                                        EnvironmentRecorded(packages=("scikit-learn", "torch"))])
    with pytest.raises(PolicyViolationError) as info:
        registry.promote("fraud", 1, "candidate", actor="alice")
    reasons = {f["policy_id"]: f["reason"] for f in info.value.details["failures"]}
    assert "dtype_mismatch" in reasons["contract_check"] and "out_of_range" in reasons["contract_check"]
    assert reasons["environment_recorded"] == "not recorded: torch"
    registry.set_policies("candidate", [ContractCheck(data=X.head(50))])
    assert registry.promote("fraud", 1, "candidate", actor="alice").state == "candidate"


def test_approvals_need_distinct_non_author_principals_in_every_required_role(registry):
    register(registry, author="alice")
    registry.promote("fraud", 1, "candidate", actor="alice")
    registry.promote("fraud", 1, "staging", actor="alice")
    with pytest.raises(ApprovalError, match="author"):
        registry.approve("fraud", 1, actor="alice", role="ml-owner", note="self-approval")
    registry.approve("fraud", 1, actor="olivia", role="ml-owner", note="metrics reviewed")
    with pytest.raises(ApprovalError) as info:
        registry.promote("fraud", 1, "approved-prod", actor="olivia")
    assert info.value.details["missing_roles"] == ["risk"]
    with pytest.raises(ApprovalError, match="already approved"):
        registry.approve("fraud", 1, actor="olivia", role="risk", note="me again")
    registry.approve("fraud", 1, actor="rita", role="risk", note="ok")
    assert registry.promote("fraud", 1, "approved-prod", actor="olivia").state == "approved"
    assert sorted((a.actor, a.role) for a in registry.approvals("fraud", 1)) == [("olivia", "ml-owner"), ("rita", "risk")]


def test_approval_rule_with_principals_checks_role_membership(workspace, clock):
    rule = ApprovalRule(required_roles=("ml-owner", "risk"), principals={"olivia": ["ml-owner"], "rita": ["risk"]})
    reg = ModelRegistry(workspace, clock=clock, approval_rule=rule)
    register(reg)
    with pytest.raises(ApprovalError, match="does not hold"):
        reg.approve("fraud", 1, actor="olivia", role="risk", note="not mine")
    with pytest.raises(ApprovalError, match="does not hold"):
        reg.approve("fraud", 1, actor="mallory", role="risk", note="who am I")
    reg.approve("fraud", 1, actor="rita", role="risk", note="ok")
    reg.close()


def test_deploy_moves_deployed_prod_only_to_the_approved_version(registry):
    register(registry)
    register(registry, seed=1)
    to_production(registry, "fraud", 1)
    registry.promote("fraud", 2, "candidate", actor="alice")
    registry.promote("fraud", 2, "staging", actor="alice")
    with pytest.raises(ConflictError, match="already deployed"):
        registry.deploy("fraud", actor="ops")  # approved-prod still holds v1
    assert registry.get_model_version_by_alias("fraud", "deployed-prod").version == 1


def test_rollback_returns_to_last_known_good_and_never_to_a_bad_version(registry, clock):
    for seed in range(4):
        register(registry, seed=seed)
    for version in (1, 2, 3):
        clock.advance(timedelta(hours=1))
        to_production(registry, "fraud", version)
    registry.transition("fraud", 4, "rejected", actor="lead", reason="leaky feature")
    clock.advance(timedelta(hours=1))
    back = registry.rollback("fraud", actor="oncall", reason="p99 latency breach")
    assert back.version == 2 and back.state == "deployed"
    assert registry.get_model_version("fraud", 3).state == "rolled-back"
    assert registry.get_model_version_by_alias("fraud", "approved-prod").version == 2  # cannot redeploy v3
    with pytest.raises(RegistryError, match="rolled-back"):
        registry.rollback("fraud", actor="oncall", to=3)
    with pytest.raises(RegistryError, match="never deployed"):
        registry.rollback("fraud", actor="oncall", to=4)
    assert registry.rollback("fraud", actor="oncall").version == 1  # v2 now rolled back from too
    with pytest.raises(RegistryError, match="no known-good"):
        registry.rollback("fraud", actor="oncall")
    history = registry.alias_history("fraud", "deployed-prod")
    assert [(e.from_version, e.to_version, e.action) for e in history] == [
        (None, 1, "deploy"), (1, 2, "deploy"), (2, 3, "deploy"), (3, 2, "rollback"), (2, 1, "rollback")]
    assert history[3].actor == "oncall" and history[3].reason == "p99 latency breach"
    assert history[0].at < history[1].at < history[3].at
    spans = alias_spans(history)
    assert [(s["version"], s["moved_in_action"], s["moved_out_action"]) for s in spans] == [
        (1, "deploy", "deploy"), (2, "deploy", "deploy"), (3, "deploy", "rollback"), (2, "rollback", "rollback"),
        (1, "rollback", None)]
    assert spans[2]["until"] - spans[2]["since"] == timedelta(hours=1) and spans[-1]["until"] is None


def test_rollback_to_an_explicit_known_good_version(registry):
    for seed in range(3):
        register(registry, seed=seed)
        to_production(registry, "fraud", seed + 1)
    assert registry.rollback("fraud", actor="oncall", to=1).version == 1
    assert registry.get_model_version("fraud", 3).state == "rolled-back"
    assert registry.get_model_version("fraud", 2).state == "deployed"


def test_rejecting_removes_aliases_but_a_serving_version_must_be_rolled_back_first(registry):
    register(registry)
    register(registry, seed=1)
    to_production(registry, "fraud", 1)
    registry.promote("fraud", 2, "candidate", actor="alice")
    with pytest.raises(RegistryError, match="serving"):
        registry.transition("fraud", 1, "archived", actor="lead", reason="old")
    registry.transition("fraud", 2, "rejected", actor="lead", reason="bias found")
    assert registry.get_model_version("fraud", 2).aliases == ()
    last = registry.alias_history("fraud", "candidate")[-1]
    assert (last.from_version, last.to_version, last.action) == (2, None, "remove")
    with pytest.raises(IllegalTransitionError):
        registry.promote("fraud", 2, "candidate", actor="alice")
    with pytest.raises(IllegalTransitionError):
        registry.approve("fraud", 2, actor="olivia", role="risk", note="too late")


def test_policies_configured_at_construction(workspace, clock):
    _, X = fit_model(0)
    reg = ModelRegistry(workspace, clock=clock,
                        stage_policies={"shadow": [ContractCheck(data=pd.DataFrame({"amount": [1.0]}))]})
    register(reg)
    with pytest.raises(PolicyViolationError, match="missing_column"):
        reg.promote("fraud", 1, "shadow", actor="alice")
    assert [p.policy_id for p in reg.policies_for("shadow")] == ["contract_check"]
    reg.close()
