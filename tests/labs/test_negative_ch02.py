"""Chapter 2 negative controls: remove a control, and its check fails and its criterion drops.

Each case runs the notebook's own cells (setup, the section's measurement, save and check
cells) in a fresh evidence folder, with one control removed through a parameter or a
monkeypatched helper, then grades the saved artifacts with the chapter's criteria. The
positive run (every control in place) grades each of those criteria at level 4.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mlops_kit.evidence import start_chapter
from mlops_kit.evidence.grading import ch02 as grading
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.labs import ch02, ch02_sync as sync
from mlops_kit.quality import NullRateCheck, QualitySuite

from ._cells import Cells, collect_failures

CELLS = Cells("02_feature_store.ipynb")
SCALE = 0.5   # half the default world: the same effects, half the run time
SETUP = ["bcf07e47", "15b1af01"]
SECTION_1 = ["6b720aee", "ee803647", "4cd0e5ce"]
SECTION_3 = CELLS.between("d76df0d9", "d9ed77fc")
EXERCISE_21 = ["e5eee4f2", "83ecf0be", "c194e0de"]
SECTION_4 = CELLS.between("2ac59967", "569523be")
SECTIONS_5_6 = ["2ac59967", *CELLS.between("f9a23a76", "c61e9e07")]  # section 5 reads `users`
ENGINE_EQUALITY = ["3b7c4baa", "4dba36c4"]   # the optional same-training-set-on-both-engines cells


def _start(root: Path) -> dict:
    ns = {"seed": 7, "learner": None, "scale": SCALE, "evidence_dir": str(root), "quiz_answers": None, "online_store": "sqlite",
          "offline_engine": "duckdb"}
    return CELLS.run(SETUP, ns)


def _grade(root: Path, fn) -> int:
    return fn(GradingContext(root, None, [])).level


@pytest.fixture(scope="module")
def positive(tmp_path_factory):
    """Every control in place: the sections run, every check passes (a failure raises)."""
    root = tmp_path_factory.mktemp("ch02-positive")
    ns = CELLS.run(SECTION_1 + SECTION_3 + EXERCISE_21 + SECTION_4 + SECTIONS_5_6[1:], _start(root))
    return root, ns


def test_positive_run_grades_complete(positive):
    root, _ = positive
    for fn in (grading.grade_two_teams, grading.grade_leakage_recheck, grading.grade_ttl, grading.grade_freshness,
               grading.grade_parity, grading.grade_contract):
        assert _grade(root, fn) == 4, fn.__name__


def test_no_created_timestamp_filter_leaks_and_is_caught(tmp_path, monkeypatch):
    failed = collect_failures(monkeypatch)
    real = ch02.pit_training_set
    monkeypatch.setattr(ch02, "pit_training_set",   # the control removed: never filter by created timestamp
                        lambda store, world, *, filter_by_created_timestamp: real(
                            store, world, filter_by_created_timestamp=False))
    ns = CELLS.run(SECTION_3, _start(tmp_path))
    assert ns["leaks"]["PIT, filter_by_created_timestamp"]["rows"] > 0
    assert {"2.3-late-corrections-filtered", "2.3-leakage-check"} <= set(failed)
    assert _grade(tmp_path, grading.grade_leakage_recheck) == 0


@pytest.mark.parametrize("ttl", [timedelta(days=3650), timedelta(hours=73), timedelta(hours=24)],
                         ids=["no-ttl", "just-too-long", "too-short"])
def test_wrong_ttl_fails_the_exercise(positive, monkeypatch, ttl):
    root, ns = positive
    failed = collect_failures(monkeypatch)
    try:
        CELLS.run(["e5eee4f2"], ns)
        ns["merchant_ttl"] = ttl                      # instead of the solution cell
        CELLS.run(["c194e0de"], ns)
        assert failed == ["2.3-ttl-admits-good-refuses-stale"]
        assert _grade(root, grading.grade_ttl) == 0
    finally:
        monkeypatch.undo()
        CELLS.run(EXERCISE_21, ns)                    # restore the positive evidence
    assert _grade(root, grading.grade_ttl) == 4


def test_no_catch_up_materialization_leaves_online_stale(tmp_path, monkeypatch):
    failed = collect_failures(monkeypatch)
    ns = CELLS.run(SECTION_1, _start(tmp_path))
    store = ns["store"]
    monkeypatch.setattr(store, "materialize_incremental",   # the control removed: an empty window
                        lambda end, views=None: store.materialize(end, end, views=views))
    CELLS.run(SECTION_4, ns)
    assert {"2.4-incremental-from-watermark", "2.4-freshness-slo", "2.4-parity-restored"} <= set(failed)
    assert _grade(tmp_path, grading.grade_freshness) == 2
    assert _grade(tmp_path, grading.grade_parity) == 2


def test_contract_without_blocking_rules_lets_the_broken_batch_in(tmp_path, monkeypatch):
    failed = collect_failures(monkeypatch)

    def weak_suite(view):   # the control broken: only the null rule, which the broken batch passes
        return QualitySuite(view=view.name, checks=[
            NullRateCheck(id="count_present", severity="block", owner="risk-features", column="txn_count",
                          max_rate=0.0, remediation="Write 0 for users without transactions, never null.")])

    monkeypatch.setattr(sync, "contract_suite", weak_suite)
    ns = CELLS.run(SECTION_1 + SECTIONS_5_6, _start(tmp_path))
    assert ns["rows_after"] > ns["rows_before"]
    assert "2.6-contract-blocks-bad-batch" in failed
    assert _grade(tmp_path, grading.grade_contract) == 2


def _equality_cells(positive, tmp_path, *, engine):
    """The engine-equality cells on the positive run's store, its engine labelled ``engine``.

    The store is DuckDB either way: labelled "spark", the cells run the comparison logic of a
    Spark build (rebuild on a second DuckDB store over the same workspace, assert_frame_equal,
    record the check) without starting Spark. The check lands in a fresh evidence folder.
    """
    _, ns = positive
    mine = dict(ns, engines={**ns["engines"], "offline_engine": engine})
    mine["rec"] = start_chapter(2, evidence_dir=str(tmp_path), seed=7, scale=SCALE, quiz_answers=None)
    return CELLS.run(ENGINE_EQUALITY, mine)


def test_default_build_compares_nothing_and_starts_no_second_engine(positive, tmp_path, monkeypatch):
    def no_second_build(*args, **kwargs):
        raise AssertionError("the DuckDB build must not rebuild the training set")

    monkeypatch.setattr(ch02, "pit_training_set", no_second_build)
    monkeypatch.setattr(sync, "lab_store", no_second_build)
    ns = _equality_cells(positive, tmp_path, engine="duckdb")
    assert ns["engine_equality"]["compared"] is False
    assert 'offline_engine="spark"' in ns["engine_equality"]["verdict"]
    assert ns["rec"].checks == []


def test_same_training_set_on_both_stores_passes_the_equality_check(positive, tmp_path):
    ns = _equality_cells(positive, tmp_path, engine="spark")
    assert ns["engine_equality"]["equal"] is True
    assert [(c["id"], c["passed"]) for c in ns["rec"].checks] == [("2.3-same-training-set-on-both-engines", True)]


def test_a_differing_training_set_fails_the_equality_check(positive, tmp_path, monkeypatch):
    failed = collect_failures(monkeypatch)
    real = ch02.pit_training_set

    def one_value_off(store, world, *, filter_by_created_timestamp):   # the engines disagree on one row
        frame = real(store, world, filter_by_created_timestamp=filter_by_created_timestamp)
        frame.loc[frame.index[3], "fraud_rate_30d"] = 0.5 if frame["fraud_rate_30d"].iloc[3] != 0.5 else 0.25
        return frame

    monkeypatch.setattr(ch02, "pit_training_set", one_value_off)
    ns = _equality_cells(positive, tmp_path, engine="spark")
    assert failed == ["2.3-same-training-set-on-both-engines"]
    assert ns["engine_equality"]["equal"] is False
    assert "fraud_rate_30d" in ns["engine_equality"]["verdict"]
