"""Chapter 3 evidence: graded criteria on hand-built packs (backfill, cost, access, drift responses)
and the figures and runbook of ``ch03_report``."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.evidence.grading.ch03 import (grade_access_log, grade_backfill_idempotent, grade_cost_report,
                                             grade_drift_responses)
from mlops_kit.quality import ResponsePolicy


# -- graded criteria on hand-built packs ---------------------------------------------------------
def _ctx(tmp_path):
    (tmp_path / "ch03").mkdir(exist_ok=True)
    return GradingContext(tmp_path, {}, [])


def test_grade_backfill(tmp_path):
    ctx = _ctx(tmp_path)
    for name, body in (("a.parquet", b"same bytes"), ("b.parquet", b"same bytes"), ("c.parquet", b"other")):
        (tmp_path / "ch03" / name).write_bytes(body)
    digest = hashlib.sha256(b"same bytes").hexdigest()
    claim = {"partition": "2024-02-15", "first_run_file": "a.parquet", "retry_file": "b.parquet",
             "first_run_sha256": digest, "retry_sha256": digest, "hashes_equal": True}
    (tmp_path / "ch03" / "backfill.json").write_text(json.dumps(claim))
    assert grade_backfill_idempotent(ctx).level == 4
    (tmp_path / "ch03" / "backfill.json").write_text(json.dumps({**claim, "retry_file": "c.parquet"}))
    assert grade_backfill_idempotent(ctx).level == 0
    (tmp_path / "ch03" / "backfill.json").write_text(json.dumps({**claim, "retry_sha256": "0" * 64}))
    assert grade_backfill_idempotent(ctx).level == 2


def test_grade_cost_report(tmp_path):
    ctx = _ctx(tmp_path)
    sample = pd.DataFrame({"user_id": [1, 2], "event_timestamp": pd.to_datetime(["2024-01-02", "2024-01-02"], utc=True),
                           "amount_sum_7d": [1.5, 2.0]})
    sample.to_parquet(tmp_path / "ch03" / "full.parquet", index=False)
    sample.iloc[::-1].to_parquet(tmp_path / "ch03" / "inc.parquet", index=False)
    pd.DataFrame({"day": ["2024-01-01", "2024-01-02"], "rows": [60, 40]}).to_csv(tmp_path / "ch03" / "inv.csv", index=False)
    claim = {"modes": [{"mode": "full_refresh", "rows_scanned": 100}, {"mode": "incremental", "rows_scanned": 25}],
             "rows_scanned_ratio": 0.25, "values_identical": True, "full_sample": "full.parquet",
             "incremental_sample": "inc.parquet", "inventory": "inv.csv"}
    (tmp_path / "ch03" / "cost_report.json").write_text(json.dumps(claim))
    assert grade_cost_report(ctx).level == 4
    (tmp_path / "ch03" / "cost_report.json").write_text(json.dumps({**claim, "rows_scanned_ratio": 0.1}))
    assert grade_cost_report(ctx).level == 2
    sample.assign(amount_sum_7d=[1.5, 2.5]).to_parquet(tmp_path / "ch03" / "inc.parquet", index=False)
    (tmp_path / "ch03" / "cost_report.json").write_text(json.dumps(claim))
    assert grade_cost_report(ctx).level == 0


def test_grade_access_log(tmp_path):
    ctx = _ctx(tmp_path)
    log = pd.DataFrame([
        {"at": "2024-03-01T01:00:00+00:00", "principal": None, "view": "card_holder", "sensitivity": "restricted",
         "outcome": "denied"},
        {"at": "2024-03-01T01:10:00+00:00", "principal": "svc", "view": "card_holder", "sensitivity": "restricted",
         "outcome": "allowed"}])
    grant = {"action": "grant", "view": "card_holder", "subject_type": "principal", "subject": "svc",
             "at": "2024-03-01T01:05:00+00:00"}
    log.to_csv(tmp_path / "ch03" / "access_log.csv", index=False)
    (tmp_path / "ch03" / "access_events.json").write_text(json.dumps([grant]))
    assert grade_access_log(ctx).level == 4
    (tmp_path / "ch03" / "access_events.json").write_text(json.dumps([{**grant, "at": "2024-03-01T02:00:00+00:00"}]))
    assert grade_access_log(ctx).level == 0  # the allowed read came before the grant
    log.iloc[:1].to_csv(tmp_path / "ch03" / "access_log.csv", index=False)
    assert grade_access_log(ctx).level == 2


def test_grade_drift_responses(tmp_path):
    ctx = _ctx(tmp_path)
    rules = ResponsePolicy.default().to_dict()
    # by hand: PSI 0.05 with a failed test is moderate (critical -> page); 0.3 major; 0.02 passed test none
    data = {"policy": rules,
            "responses": [{"column": "amount", "criticality": "high", "psi": 0.3, "verdict": "drift", "action": "page"},
                          {"column": "x", "criticality": "low", "psi": None, "verdict": "inconclusive",
                           "action": "log"}],
            "response_table": [{"magnitude": 0.2, "psi": 0.05, "verdict": "drift", "action": "page"},
                               {"magnitude": 0.0, "psi": 0.02, "verdict": "no_drift", "action": "none"},
                               {"magnitude": 0.5, "psi": 0.1, "verdict": "drift", "action": "page"}]}
    path = tmp_path / "ch03" / "drift_report.json"
    path.write_text(json.dumps(data))
    assert grade_drift_responses(ctx).level == 4
    data["response_table"][0]["action"] = "none"           # a policy that ignored the failed test
    path.write_text(json.dumps(data))
    grade = grade_drift_responses(ctx)
    assert grade.level == 0 and "amount x1.20: none" in grade.why
    data["response_table"] = data["response_table"][1:]     # consistent, but no test-only drift shown
    path.write_text(json.dumps(data))
    assert grade_drift_responses(ctx).level == 2


# --- ch03_report: the notebook's figures and runbook ---------------------------------------------------------------

def _bar_widths(ax):
    return sorted(round(p.get_width(), 6) for p in ax.patches)


def _bar_heights(ax):
    return sorted(round(p.get_height(), 6) for p in ax.patches)


def test_null_by_segment_figure_draws_every_share_and_the_limit():
    import matplotlib.pyplot as plt
    from mlops_kit.labs import ch03_report
    shares = pd.DataFrame({"broken": [0.25, 0.0], "fixed": [0.0, 0.002]}, index=["premium", "standard"])
    fig = ch03_report.null_by_segment_figure(shares)
    ax = fig.axes[0]
    assert _bar_heights(ax) == sorted([0.25, 0.0, 0.0, 0.002])
    assert [tuple(line.get_ydata()) for line in ax.get_lines()] == [(0.01, 0.01)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["block above 1 %", "broken", "fixed"]
    assert ax.get_title() == "Null rate by card programme: broken vs fixed delivery"
    plt.close(fig)


def test_drift_figure_histograms_and_segment_psi():
    import matplotlib.pyplot as plt
    from mlops_kit.labs import ch03_report
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"amount": rng.lognormal(3, 1, 500)})
    cur = pd.DataFrame({"amount": rng.lognormal(3.5, 1, 500)})
    by_segment = pd.DataFrame({"premium": [0.3, 0.01]}, index=["amount", "txn_count_24h"])
    fig = ch03_report.drift_figure(ref, cur, 0.3456, by_segment)
    left, right = fig.axes
    assert left.get_title() == "amount: PSI 0.35" and left.get_xscale() == "log"
    # two density histograms of 39 bins each, each integrating to 1 over its bins
    bars = left.patches
    assert len(bars) == 78
    for part in (bars[:39], bars[39:]):
        assert sum(p.get_height() * p.get_width() for p in part) == pytest.approx(1.0)
    assert _bar_widths(right) == [0.01, 0.3]
    assert sorted(line.get_xdata()[0] for line in right.get_lines()) == [0.1, 0.25]
    assert right.get_xlabel() == "PSI (0.1 moderate, 0.25 major)"
    plt.close(fig)


def test_backfill_validation_and_rows_scanned_figures():
    import matplotlib.pyplot as plt
    from mlops_kit.labs import ch03_report
    strict = pd.DataFrame({"feature": ["amount_avg_7d", "txn_count_7d", "amount_avg_7d"],
                           "check": ["value_diff", "value_diff", "row_count"], "observed": [0.8, 0.0, 5.0]})
    fig = ch03_report.backfill_validation_figure(strict)
    ax = fig.axes[0]
    assert _bar_widths(ax) == [0.0, 0.8]
    red = [p for p in ax.patches if p.get_width() > 0]
    assert len(red) == 1 and red[0].get_facecolor()[:3] == pytest.approx((0xc0 / 255, 0x39 / 255, 0x2b / 255))
    plt.close(fig)
    table = pd.DataFrame({"rows_scanned": [1000, 120]}, index=["full_refresh", "incremental"])
    fig = ch03_report.rows_scanned_figure(table, 0.12)
    assert _bar_widths(fig.axes[0]) == [120, 1000]
    assert fig.axes[0].get_title() == "One more day: incremental scans 12% of a full refresh"
    plt.close(fig)


def test_backfill_runbook_text():
    from mlops_kit.labs import ch03_report
    lineage = {"backfill_id": "bf-1", "view": "user_activity", "start": "2024-02-15", "end": "2024-02-22",
               "shadow_version": 3, "base_version": 2, "code_name": "recompute", "code_fingerprint": "abcdef0123456789"}
    strict = pd.DataFrame({"feature": ["amount_avg_7d", "txn_count_7d", "amount_sum_7d"], "passed": [False, True, False]})
    text = ch03_report.backfill_runbook(lineage, strict, {"wrong_rows": 40}, {"wrong_rows": 0, "rows": 300}, fx_bug=100)
    assert text == (
        "# Backfill bf-1 of user_activity\n"
        "- window: [2024-02-15, 2024-02-22), shadow v3 of live v2\n"
        "- code: recompute (abcdef012345)\n"
        "- what changed: amount features were 100x too high (currency bug); counts unchanged\n"
        "- validated: strict check failed only on ['amount_avg_7d', 'amount_sum_7d']; passed with rtol=0.1\n"
        "- result: 40 -> 0 wrong rows of 300 sampled\n"
        "- if downstream metrics regress: store.rollback_promotion('user_activity') (the old version is kept)")
