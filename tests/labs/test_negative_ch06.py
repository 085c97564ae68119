"""Chapter 6 negative controls: remove a control, and its check fails and its criterion drops.

The notebook's own cells run once with every control in place (the module fixture: each check
passes, C6.1 and C6.3 grade 4); each case then runs one section with one control removed
through a monkeypatched helper and asserts which checks failed and the criterion's level.

A drill serves one traffic window through a stateful daily job, and serving an earlier window
again after a later one is not a faithful replay: the outage case runs in a second workspace
(its own 6.1 prefix) and is graded beside the positive drift evidence; the drift case serves the
last window again and runs last, after the positive grades were asserted.
"""

from __future__ import annotations

import shutil

import pytest

from mlops_kit.evidence.grading import ch06 as grading
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.labs import ch06_gates as G, ch06_ops as O
from mlops_kit.rollout import RegistryModelProvider

from ._cells import Cells, collect_failures

CELLS = Cells("06_capstone.ipynb")
SETUP = ["da11615f", "0de91c46"]
LIFECYCLE = CELLS.between("4ca3c42c", "6e437be1")
GATES = CELLS.between("643491fc", "b4a05e25")
OUTAGE = CELLS.between("4bf82fde", "a063e4ba")
DRIFT = CELLS.between("51d47f5c", "64ce7dc8")


def _grade(root, fn) -> tuple[int, str]:
    g = fn(GradingContext(root, None, []))
    return g.level, g.why


@pytest.fixture(scope="module")
def capstone(tmp_path_factory):
    root = tmp_path_factory.mktemp("ch06-positive")
    ns = {"seed": 7, "learner": None, "scale": 1, "evidence_dir": str(root), "quiz_answers": None, "online_store": "sqlite"}
    CELLS.run(SETUP + LIFECYCLE + GATES + OUTAGE + DRIFT, ns)   # a failing check raises here
    return root, ns


def test_positive_run_grades_complete(capstone):
    root, _ = capstone
    assert _grade(root, grading.grade_gates)[0] == 4
    assert _grade(root, grading.grade_drills)[0] == 4


def test_feature_gate_without_leakage_check_ships_the_leaky_release(capstone, monkeypatch):
    root, ns = capstone
    failed = collect_failures(monkeypatch)
    real = G.feature_gate
    monkeypatch.setattr(G, "feature_gate", lambda release, **kw: [   # the gate's leakage row removed
        r for r in real(release, **kw) if r["check"] != "pit_leakage_rate"])
    try:
        CELLS.run(GATES, ns)
        assert ns["want"]["C: leaky training join"] == "release"
        assert failed == ["6.2-gates-decide-releases"]
        assert _grade(root, grading.grade_gates)[0] == 2
    finally:
        monkeypatch.undo()
        CELLS.run(GATES, ns)
    assert _grade(root, grading.grade_gates)[0] == 4


def test_outage_without_feature_retrieval_guardrail_is_not_contained(capstone, tmp_path, monkeypatch):
    root, _ = capstone
    failed = collect_failures(monkeypatch)
    real = O.guardrails
    monkeypatch.setattr(O, "guardrails", lambda outage=None: real())   # model guardrails only: no fallback
    ns = {"seed": 7, "learner": None, "scale": 1, "evidence_dir": str(tmp_path), "quiz_answers": None, "online_store": "sqlite"}
    CELLS.run(SETUP + LIFECYCLE + OUTAGE, ns)
    assert {"6.5-exercise-outage-guardrail", "6.5-outage-contained"} <= set(failed)
    for name in ("drill_drift.json", "drill_drift_events.csv", "postmortem_drift.md"):   # the positive drift drill
        shutil.copyfile(root / "ch06" / name, tmp_path / "ch06" / name)
    level, why = _grade(tmp_path, grading.grade_drills)
    assert level == 2 and why.startswith("outage:") and "drift:" in why


def test_drift_abort_without_registry_rollback_fails(capstone, monkeypatch):
    root, ns = capstone
    failed = collect_failures(monkeypatch)
    # the rollback step removed: the provider reports a rollback but leaves deployed-prod where it is
    monkeypatch.setattr(RegistryModelProvider, "rollback", lambda self, *, actor, reason, to=None: str(
        self.registry.get_model_version_by_alias(self.name, "deployed-prod").version))
    try:
        CELLS.run(DRIFT, ns)   # the drift window served a second time, after the positive drill
        assert ns["now_serving"] != ns["known_good"]
        assert failed == ["6.5-drift-rolled-back"]
        level, why = _grade(root, grading.grade_drills)
        assert level == 2 and "CA-D2" in why
    finally:
        monkeypatch.undo()
