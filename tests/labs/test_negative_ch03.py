"""Chapter 3 negative controls: remove or break a control and both its check and its criterion fail.

Each case drives the chapter's lab functions into a scratch evidence dir, once with the
control and once without it (a response policy that ignores the drift test's verdict, a
quality gate that lets every delivery through, governance that grants every read): with the
control the check passes and the grader gives level 4; without it ``rec.check`` raises and
the criterion drops.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlops_kit.errors import CheckFailedError
from mlops_kit.evidence import start_chapter
from mlops_kit.evidence.grading import ch03 as grading
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.governance.hook import Governance
from mlops_kit.labs import ch03, ch03_checks as checks, ch03_ops as ops
from mlops_kit.quality import ResponsePolicy

SEED, SCALE = 3, 0.2
RULES = {"inconclusive": "page", "none": "none", "moderate": "page", "major": "mitigate"}


@pytest.fixture(scope="module")
def data():
    return ch03.make_data(seed=SEED, scale=SCALE)


def _run(tmp_path, name):
    rec = start_chapter(3, evidence_dir=tmp_path / name, seed=SEED, scale=SCALE)
    return rec, GradingContext(tmp_path / name, {}, [])


def _check(rec, check_id, verdict) -> bool:
    try:
        rec.check(check_id, **verdict)
        return True
    except CheckFailedError:
        return False


# -- the drift response ignores the test's verdict ------------------------------------------------
def _responses(rec, data) -> bool:
    reference, current = ch03.drift_frames(data.covariate, split_day=40, days=20)
    policy = checks.policy_with(RULES)
    table = ch03.drift_response_table(reference["amount"], [0.0, 0.2, 0.3, 0.8], policy=policy, seed=SEED)
    rec.save_json("drift_report", {"policy": policy.to_dict(), "responses": [],
                                   "response_table": table.to_dict(orient="records")})
    return _check(rec, "3.2-test-verdict-answered", checks.responses_verdict(table, RULES))


def test_a_policy_ignoring_the_test_verdict_fails_the_check_and_c3_6(tmp_path, data, monkeypatch):
    rec, ctx = _run(tmp_path, "control")
    assert _responses(rec, data)
    assert grading.grade_drift_responses(ctx).level == 4
    evaluate = ResponsePolicy.evaluate
    monkeypatch.setattr(ResponsePolicy, "evaluate",          # PSI bands only: the verdict is dropped
                        lambda self, *, test_failed=None, **kw: evaluate(self, **kw))
    rec, ctx = _run(tmp_path, "broken")
    assert not _responses(rec, data)
    grade = grading.grade_drift_responses(ctx)
    assert grade.level == 0 and ": none for PSI" in grade.why


# -- the quality gate lets the broken delivery through ---------------------------------------------
def _gate(rec, data) -> bool:
    clean = ch03.upstream_batch(data.messy, first_day=50, days=7)
    broken, fixed = ch03.break_upstream(clean, seed=SEED), ch03.repair_upstream(clean)
    suite = ch03.transactions_suite()
    now = data.messy.scenario.start + timedelta(days=57, hours=1)
    trainings = []
    first = ch03.gated_training(broken, suite, lambda b: trainings.append(len(b)), now=now)
    second = ch03.gated_training(fixed, suite, lambda b: trainings.append(len(b)), now=now)
    verdict = checks.gate_verdict(first, second, trainings, fixed, null_check_id="amount_nulls_by_segment")
    rec.save_table("quality_broken.parquet", broken)
    rec.save_table("quality_fixed.parquet", fixed)
    rec.save_json("quality_gate", {"suite": suite.to_dict(), "broken_sample": "quality_broken.parquet",
                                   "fixed_sample": "quality_fixed.parquet", "blocking": verdict["observed"]["blocking"],
                                   "fixed_blocking": [r.check_id for r in second["report"].blocking_failures]})
    return _check(rec, "3.1-gate-blocks-before-training", verdict)


def test_a_gate_that_never_blocks_fails_the_check_and_c3_2(tmp_path, data, monkeypatch):
    rec, ctx = _run(tmp_path, "control")
    assert _gate(rec, data)
    assert grading.grade_quality_gate(ctx).level == 4
    monkeypatch.setattr(ch03, "gate", lambda report: None)
    rec, ctx = _run(tmp_path, "broken")
    assert not _gate(rec, data)
    assert grading.grade_quality_gate(ctx).level == 0


# -- governance grants every read of the restricted view -------------------------------------------
def _access(rec, data) -> bool:
    clock = ch03.lab_clock(data.default)
    store, _ = ops.feature_store(rec.workspace(), data.default, clock=clock)
    gov = store.governance
    rows = ops.entity_rows(data.default, n=50, at=data.default.scenario.end, seed=SEED)
    wanted = ["card_holder:home_country", "card_holder:segment"]
    gov.add_principal("svc-fraud-training", roles=["ml-training"], actor="security-admin", reason="training")
    attempts = [ops.try_read(store, rows, wanted, principal=None, purpose="ad-hoc"),
                ops.try_read(store, rows, wanted, principal="svc-fraud-training", purpose="train")]
    clock.advance(timedelta(minutes=5))
    gov.grant("card_holder", principal="svc-fraud-training", actor="customer-data-owner", reason="SEC-42")
    clock.advance(timedelta(minutes=5))
    attempts.append(ops.try_read(store, rows, wanted, principal="svc-fraud-training", purpose="train"))
    read_log = gov.read_log()
    rec.save_table("access_log", read_log)
    rec.save_json("access_events", gov.access_events())
    return _check(rec, "3.5-restricted-read-audited", checks.access_verdict(attempts, read_log))


def test_reads_without_a_grant_check_fail_the_check_and_c3_5(tmp_path, data, monkeypatch):
    rec, ctx = _run(tmp_path, "control")
    assert _access(rec, data)
    assert grading.grade_access_log(ctx).level == 4
    monkeypatch.setattr(Governance, "_granted", lambda self, principal, name: True)
    rec, ctx = _run(tmp_path, "broken")
    assert not _access(rec, data)
    grade = grading.grade_access_log(ctx)
    assert grade.level == 0, grade.why
