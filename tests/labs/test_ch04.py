"""Chapter 4 lab: behaviour checked against independent references (hand-worked values, brute force)."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit.datasets import MERCHANT_RISK_FEATURES, PROFILE_FEATURES, USER_STATS_FEATURES
from mlops_kit.errors import IntegrityError, ValidationError
from mlops_kit.evidence.grading import ch04 as grading
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.labs import ch04, ch04_ops as ops
from mlops_kit.registry import ApprovalRule, check_contract
from mlops_kit.workspace import Workspace

SEED, SCALE = 3, 0.2


@pytest.fixture(scope="module")
def data():
    return ch04.make_data(seed=SEED, scale=SCALE)


@pytest.fixture(scope="module")
def scorers(data):
    full = ch04.train_scorer(data, kind="logistic", seed=SEED)
    lite_inputs = tuple(c for c in full[0].inputs if c not in PROFILE_FEATURES)
    lite = ch04.train_scorer(data, kind="logistic", inputs=lite_inputs, seed=SEED)
    return full, lite


def reference_gate(candidate, production, same_eval_set, *, minimum, min_gain):
    if candidate is None:
        return False, "not recorded"
    if candidate < minimum:
        return False, "minimum"
    if production is None:
        return True, "no production"
    if not same_eval_set:
        return False, "not comparable"
    return (candidate - production >= min_gain), "gain"


def _registry_with_versions(tmp_path, data, scorers):
    (s1, r1), (s3, r3) = scorers
    reg, clock = ch04.lab_registry(Workspace(tmp_path / "ws"))
    ch04.register_scorer(reg, data, s1, r1, author="ana", code_revision="c1", run_id="r1")
    ch04.register_scorer(reg, data, s3, r3, author="ana", code_revision="c3", run_id="r3")
    for stage in ("candidate", "staging"):
        clock.advance(timedelta(minutes=1))
        reg.promote(ch04.MODEL, 1, stage, actor="ana")
    reg.approve(ch04.MODEL, 1, actor="raj", role="ml-owner", note="ok")
    reg.approve(ch04.MODEL, 1, actor="lee", role="risk", note="ok")
    reg.promote(ch04.MODEL, 1, "approved-prod", actor="raj")
    clock.advance(timedelta(minutes=1))
    reg.deploy(ch04.MODEL, actor="ops")
    return reg, clock


def test_make_data_splits_in_time_and_validates(data):
    assert data.train["event_timestamp"].max() < data.eval["event_timestamp"].min()
    assert data.eval["event_timestamp"].max() < data.serving["event_timestamp"].min()
    total = len(data.train) + len(data.eval) + len(data.serving)
    assert abs(len(data.train) / total - 0.6) < 0.02
    with pytest.raises(ValidationError, match="seed"):
        ch04.make_data(seed=-1)


def test_frame_sha256_changes_with_one_value():
    df = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    other = df.copy()
    other.loc[1, "a"] = 2.5
    assert ch04.frame_sha256(df) == ch04.frame_sha256(df.copy())
    assert ch04.frame_sha256(df) != ch04.frame_sha256(other)


def test_contract_catches_the_retyped_column_only(data, scorers):
    (s1, _), _ = scorers
    sig = ch04.model_signature(s1.inputs)
    changed = ops.upstream_payload(data, seed=SEED, scale=SCALE, change="retype", field="merchant_category")
    # independent reference: the only column whose pandas dtype changed
    differ = [c for c in s1.inputs if changed[c].dtype != data.serving[c].dtype]
    assert differ == ["merchant_category"]
    assert check_contract(sig, data.serving[list(s1.inputs)]).ok
    report = check_contract(sig, changed[list(s1.inputs)])
    assert [(v.column, v.kind) for v in report.violations] == [("merchant_category", "dtype_mismatch")]
    impact = ops.score_impact(s1, data.serving, changed)
    assert impact["silent"] and impact["rows_changed"] > 0
    assert 0 < impact["share_moved"] <= impact["rows_changed"] / impact["rows"] and impact["moved_by"] == 0.10
    assert ops.score_impact(s1, data.serving, changed, moved_by=0.5)["share_moved"] <= impact["share_moved"]
    for bad in (0, -0.1, True, "10%"):
        with pytest.raises(ValidationError, match="moved_by"):
            ops.score_impact(s1, data.serving, changed, moved_by=bad)


def test_lite_scorer_ignores_profile_columns(data, scorers):
    _, (lite, _) = scorers
    scrambled = data.eval.copy()
    scrambled["credit_limit"] = 1e9
    scrambled["risk_tier"] = "high"
    assert np.array_equal(lite.predict(data.eval), lite.predict(scrambled))
    assert not set(PROFILE_FEATURES) & set(lite.inputs)


def test_baseline_reads_no_velocity_view_and_the_default_reads_every_view(tmp_path, data, scorers):
    (full, r_full), _ = scorers
    base, r_base = ch04.train_scorer(data, kind="logistic", inputs=ch04.BASELINE_INPUTS, seed=SEED)
    assert set(ch04.SERVING_INPUTS) == {*ch04.REQUEST_INPUTS, *USER_STATS_FEATURES, *MERCHANT_RISK_FEATURES,
                                        *PROFILE_FEATURES} == set(full.inputs)
    assert set(ch04.SERVING_INPUTS) - set(base.inputs) == set(USER_STATS_FEATURES)
    scrambled = data.eval.copy()
    for name in USER_STATS_FEATURES:  # the baseline never sees them: any values give the same scores
        scrambled[name] = 1e6
    assert np.array_equal(base.predict(data.eval), base.predict(scrambled))
    assert not np.array_equal(full.predict(data.eval), full.predict(scrambled))
    reg, _ = ch04.lab_registry(Workspace(tmp_path / "ws"))
    ch04.register_scorer(reg, data, base, r_base, author="ana", code_revision="c1", run_id="r1")
    ch04.register_scorer(reg, data, full, r_full, author="ana", code_revision="c2", run_id="r2")
    views = {v: sorted(ref.view for ref in reg.get_model_version(ch04.MODEL, v).lineage.features) for v in (1, 2)}
    assert views == {1: ["merchant_risk", "user_profile_features"],
                     2: ["merchant_risk", "user_profile_features", "user_transaction_stats"]}


def test_gate_checker_accepts_reference_and_flags_a_wrong_gate():
    assert ops.check_gate_function(reference_gate) == []

    def ignores_eval_set(c, p, same, *, minimum, min_gain):
        return reference_gate(c, p, True, minimum=minimum, min_gain=min_gain)

    problems = ops.check_gate_function(ignores_eval_set)
    assert len(problems) == 1 and "different evaluation sets" in problems[0]
    assert ops.check_gate_function(lambda *a, **k: True)  # wrong shape

    def vague(c, p, same, *, minimum, min_gain):           # right verdicts, a reason that names no rule
        return reference_gate(c, p, same, minimum=minimum, min_gain=min_gain)[0], "decided"

    assert any("different rules" in p for p in ops.check_gate_function(vague))
    assert len(ops.gate_cases()) == 10 and set(ops.gate_cases()["rule"]) == {"recorded", "minimum", "eval-set", "gain"}


def test_verdict_gate_blocks_a_worse_version(tmp_path, data, scorers):
    reg, _ = _registry_with_versions(tmp_path, data, scorers)
    out = ops.gate_outcomes(reg, ch04.MODEL, verdict=reference_gate, minimum=0.5, min_gain=0.0)
    aucs = {v.version: v.metadata.metrics["auc"] for v in reg.search_model_versions(ch04.MODEL)}
    expected_v2 = aucs[2] - aucs[1] >= 0.0  # hand rule: beat production v1
    assert out.set_index("version").loc[2, "passes"] == expected_v2


def test_approval_rule_checker():
    good = ApprovalRule(required_roles=("ml-owner", "risk"),
                        principals={"ana": ["ml-engineer"], "raj": ["ml-owner"], "lee": ["risk"]})
    assert ops.check_approval_rule(good, author="ana") == []
    single = ApprovalRule(required_roles=("ml-owner",), principals={"raj": ["ml-owner"], "lee": ["risk"]})
    problems = ops.check_approval_rule(single, author="ana")
    assert any("lee approving as 'risk'" in p for p in problems) and any("alone covers" in p for p in problems)
    anyone = ApprovalRule(required_roles=("ml-owner", "risk"))     # no principals: anyone may approve anything
    assert any("ana approving as 'ml-owner' a version by omar" in p for p in ops.check_approval_rule(anyone))
    wrong_holder = ApprovalRule(required_roles=("ml-owner", "risk"), principals={"raj": ["ml-owner", "risk"]})
    assert any("raj approving as 'risk'" in p for p in ops.check_approval_rule(wrong_holder, author="ana"))
    owner_ana = ApprovalRule(required_roles=("ml-owner", "risk"),
                             principals={"ana": ["ml-owner"], "raj": ["ml-owner"], "lee": ["risk"]})
    assert [p for p in ops.check_approval_rule(owner_ana)] == [
        "ana approving as 'ml-owner' a version by omar: accepted, expected refused "
        "(ana is an ML engineer: she does not own model quality)"]
    assert ops.check_approval_rule("not a rule") == ["rule must be an ApprovalRule, got str"]


def test_blast_radius_matches_brute_force(tmp_path, data, scorers):
    reg, _ = _registry_with_versions(tmp_path, data, scorers)
    docs = ops.lineage_documents(reg)
    radius = ops.blast_radius(reg, "user_profile_features", 1)
    brute = sorted((d["model"]["name"], d["model"]["version"]) for d in docs
                   for f in d["lineage"]["features"] if f["view"] == "user_profile_features" and f["version"] == 1)
    assert sorted((r["model"], r["version"]) for r in radius["affected"]) == brute == [(ch04.MODEL, 1)]
    assert [r["version"] for r in radius["retrain"]] == [1]
    assert radius["fallback_candidates"] == [{"model": ch04.MODEL, "version": 2, "state": "registered"}]
    assert ops.blast_radius(reg, "user_profile_features", 2)["affected"] == []


def test_serve_logs_the_version_deployed_at_each_instant(tmp_path, data, scorers):
    reg, clock = _registry_with_versions(tmp_path, data, scorers)
    for stage in ("candidate", "staging"):
        reg.promote(ch04.MODEL, 2, stage, actor="ana")
    reg.approve(ch04.MODEL, 2, actor="raj", role="ml-owner", note="ok")
    reg.approve(ch04.MODEL, 2, actor="lee", role="risk", note="ok")
    reg.promote(ch04.MODEL, 2, "approved-prod", actor="raj")
    first = ops.serve(reg, ch04.MODEL, data.serving.head(5), clock=clock)
    deploy_at = clock.advance(timedelta(seconds=30))
    reg.deploy(ch04.MODEL, actor="ops")
    second = ops.serve(reg, ch04.MODEL, data.serving.iloc[5:9], clock=clock)
    log = pd.concat([first, second], ignore_index=True)
    expected = [1 if pd.Timestamp(at) < pd.Timestamp(deploy_at) else 2 for at in log["at"]]
    assert log["model_version"].tolist() == expected == [1] * 5 + [2] * 4
    assert all(ops.holder_at(reg, ch04.MODEL, "deployed-prod", at) == v for at, v in zip(log["at"], expected))
    direct = reg.load_model(ch04.MODEL, version=2).predict(data.serving.iloc[5:9])
    assert np.allclose(second["fraud_probability"], np.round(direct, 6))


def test_tamper_copy_names_the_edited_entry_and_leaves_the_original(tmp_path, data, scorers):
    reg, _ = _registry_with_versions(tmp_path, data, scorers)
    seq = next(e.seq for e in reg.audit.entries() if e.action == "approve")
    out = ops.tamper_audit_copy(reg, Workspace(tmp_path / "copy"), seq=seq,
                                edit=lambda p: {**p, "role": "intern"}, export_to=tmp_path / "t.jsonl")
    assert out["verification"]["first_broken_seq"] == seq and not out["verification"]["ok"]
    assert "append-only" in out["guard"]
    assert reg.audit.verify().ok
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert lines[seq - 1]["payload"]["role"] == "intern"
    with pytest.raises(ValidationError):
        ops.tamper_audit_copy(reg, Workspace(tmp_path / "copy"), seq=seq, edit=dict)


def test_tamper_artifact_is_refused_then_restored(tmp_path, data, scorers):
    reg, _ = _registry_with_versions(tmp_path, data, scorers)
    message = ops.tamper_artifact(reg, ch04.MODEL, 1)
    assert message.startswith(IntegrityError.__name__)
    reg.load_model(ch04.MODEL, version=1)  # restored: loads again


def _pack(tmp_path, reg, log, history, tamper):
    pack = tmp_path / "pack"
    (pack / "ch04").mkdir(parents=True, exist_ok=True)
    reg.audit.export(pack / "ch04" / "audit_export.jsonl")
    log.to_csv(pack / "ch04" / "prediction_log.csv", index=False)
    history.to_csv(pack / "ch04" / "alias_history.csv", index=False)
    (pack / "ch04" / "audit_tamper.json").write_text(json.dumps(tamper))
    return GradingContext(pack, {}, [])


def test_grading_recomputes_prediction_log_and_tamper(tmp_path, data, scorers):
    reg, clock = _registry_with_versions(tmp_path, data, scorers)
    log = ops.serve(reg, ch04.MODEL, data.serving.head(4), clock=clock)
    history = ops.alias_history_frame(reg, ch04.MODEL, "deployed-prod")
    seq = next(e.seq for e in reg.audit.entries() if e.action == "approve")
    tamper = ops.tamper_audit_copy(reg, Workspace(tmp_path / "copy"), seq=seq, edit=lambda p: {**p, "note": "x"},
                                   export_to=tmp_path / "pack" / "ch04" / "audit_tampered.jsonl")
    ctx = _pack(tmp_path, reg, log, history, tamper)
    assert grading.grade_prediction_versions(ctx).level == 2  # one version only
    assert grading.grade_tamper_detected(ctx).level == 4
    assert grading.grade_separation_of_duties(ctx).level == 4
    log.loc[2, "model_version"] = 2
    log.to_csv(ctx.pack / "ch04" / "prediction_log.csv", index=False)
    assert grading.grade_prediction_versions(ctx).level == 0
    bad = dict(tamper, edited_seq=seq + 1)
    (ctx.pack / "ch04" / "audit_tamper.json").write_text(json.dumps(bad))
    assert grading.grade_tamper_detected(ctx).level == 0


def test_gate_checker_reports_a_stub_as_not_done():
    from mlops_kit.errors import ExerciseNotDoneError
    from mlops_kit.labs.ch04_ops import check_gate_function

    def stub(*_args, **_kwargs):
        raise ExerciseNotDoneError("Exercise 4.1: not done yet")

    with pytest.raises(ExerciseNotDoneError, match="not done yet"):
        check_gate_function(stub)


def test_alias_split_and_approval_attempts(tmp_path, data, scorers):
    from mlops_kit.labs import ch04_gov as gov

    reg, clock = _registry_with_versions(tmp_path, data, scorers)
    assert gov.alias_split(reg, ch04.MODEL) == {"approved-prod": 1, "deployed-prod": 1}
    assert gov.resolve_alias(reg, ch04.MODEL, "shadow") is None
    for stage in ("candidate", "staging"):
        reg.promote(ch04.MODEL, 2, stage, actor="ana")
    reg.approval_rule = ApprovalRule(required_roles=("ml-owner", "risk"),
                                     principals={"ana": ["ml-engineer"], "raj": ["ml-owner"], "lee": ["risk"]})
    start = clock()
    log = gov.approval_attempts(reg, ch04.MODEL, 2, [("ana", "ml-owner"), ("raj", "ml-owner"), ("lee", "risk")],
                                clock=clock, early_promote=("ana", "raj"))
    assert [(e["actor"], e["role"], e["result"].split(":")[0]) for e in log] == [
        ("ana", "ml-owner", "refused"), ("raj", "promote", "refused"), ("raj", "ml-owner", "recorded"),
        ("lee", "risk", "recorded")]
    assert clock() - start == timedelta(minutes=15)
    approvals = [a.to_dict() for a in reg.approvals(ch04.MODEL, 2)]
    assert sorted((a["actor"], a["role"]) for a in approvals) == [("lee", "risk"), ("raj", "ml-owner")]
    assert gov.alias_split(reg, ch04.MODEL) == {"approved-prod": 1, "deployed-prod": 1}
