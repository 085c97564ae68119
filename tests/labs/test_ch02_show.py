"""Chapter 2 show helpers: the figures, tables and records behind the short notebook cells."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from mlops_kit.datasets import Scenario, generate_world
from mlops_kit.features import FeatureStore, FeatureView, Field
from mlops_kit.labs import ch02, ch02_show as show, ch02_sync as sync

UTC = timezone.utc


@pytest.fixture(scope="module")
def world():
    return generate_world(Scenario.small(), seed=3)


def test_late_summary_and_figure_hand_built():
    import matplotlib.pyplot as plt

    late = pd.DataFrame({"late": [False, True, True, True, False],
                         "delay_h": [0.1, 2.0, 4.0, 10.0, 0.5]})
    got = show.late_summary(late, 0.6, {"x": {"differ": 1}})
    want_p95 = round(float(np.percentile([2.0, 4.0, 10.0], 95)), 2)
    assert got == {"late_share": 0.6, "late_transactions": 3, "p95_delay_h_late": want_p95,
                   "skew_vs_serving": {"x": {"differ": 1}}}
    fig = show.late_delay_figure(late, 0.6)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights) == 3 and "60.0%" in fig.axes[0].get_title()
    plt.close(fig)


def test_auc_and_age_figures_draw_the_numbers():
    import matplotlib.pyplot as plt

    aucs = pd.DataFrame({"training_set": ["a", "b"], "offline_auc": [0.9, 0.7], "production_auc": [0.6, 0.7]})
    fig = show.auc_figure(aucs)
    assert [p.get_height() for p in fig.axes[0].patches] == [0.9, 0.7, 0.6, 0.7]
    plt.close(fig)
    before, after = pd.DataFrame({"age_h": np.arange(1.0, 101.0)}), pd.DataFrame({"age_h": [5.0, 6.0, None]})
    fig = show.age_figure(before, after, 26.0)
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert widths == pytest.approx([np.percentile([5.0, 6.0], 95), np.percentile(np.arange(1.0, 101.0), 95)])
    plt.close(fig)


def test_outage_window_and_ttl_reading():
    day = pd.Timestamp("2024-01-01", tz="UTC")
    ts = [day + pd.Timedelta(days=d) for d in range(5)]
    gappy = pd.DataFrame({"merchant_id": [1] * 5 + [2] * 3 + [3] * 3,
                          "event_timestamp": ts + [ts[0], ts[1], ts[4]] + [ts[0], ts[2], ts[3]],
                          "fraud_rate_30d": [0.99] * 5 + [0.9, 0.8, 0.7] + [0.1, 0.2, 0.3]})
    hit, window = show.outage_window(gappy, ts[2], before=timedelta(days=1, hours=1), after=timedelta(days=2))
    assert hit == 2                                     # merchant 1 has all rows: not in the outage
    assert window["event_timestamp"].tolist() == [ts[1]]  # bounds are strict: ts[4] is at + 2 days
    seen = sync.ttl_window(window, ts[2], timedelta(days=2))
    assert show.ttl_reading(seen) == 0.8
    assert show.ttl_reading(sync.ttl_window(window, ts[2], timedelta(hours=1))) == "null (fallback)"


def test_ttl_slider_prints_ttl_window(capsys):
    rows = pd.DataFrame({"event_timestamp": pd.to_datetime(["2024-01-01", "2024-01-03"], utc=True),
                         "fraud_rate_30d": [0.1, 0.2]})
    at = pd.Timestamp("2024-01-04", tz="UTC")
    box = show.ttl_slider(rows, at, start_hours=30)      # the notebook passes the learner's TTL
    slider = box.children[0]
    assert slider.value == 30 and show.ttl_slider(rows, at, start_hours=1000).children[0].value == 336
    slider.value = 12                                   # observers fire when code sets a value
    out = capsys.readouterr().out
    assert sync.ttl_window(rows, at, timedelta(hours=12)).to_string(index=False) in out
    assert "value read: null (fallback)" in out


def test_run_table_and_records():
    from types import SimpleNamespace as NS

    def run(scanned):
        return NS(views={"user_txn_count": NS(end=1, rows_scanned=scanned, rows_written=2, watermark=3, extra=9)})

    table = show.run_table([("a", run(10)), ("b", run(4))])
    assert table.to_dict(orient="records") == [
        {"run": "a", "end": 1, "rows_scanned": 10, "rows_written": 2, "watermark": 3},
        {"run": "b", "end": 1, "rows_scanned": 4, "rows_written": 2, "watermark": 3}]
    stacked = show.by_phase(pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [3]}))
    assert stacked.to_dict(orient="list") == {"x": [1, 2, 3], "phase": ["before", "before", "after"]}
    slo = NS(to_dict=lambda: {"name": "s"})
    assert show.freshness_summary(slo, 30.12345, 2.0, "breached", "met") == {
        "slo": {"name": "s"}, "p95_before_h": 30.123, "p95_after_h": 2.0,
        "verdict_before": "breached", "verdict_after": "met"}
    before = NS(compared=10, mismatches=[1, 2], missing_online=[])
    after = NS(compared=10, mismatches=[], missing_online=[7])
    assert show.parity_summary(before, after) == {
        "before": {"compared": 10, "mismatches": 2, "missing_online": 0},
        "after": {"compared": 10, "mismatches": 0, "missing_online": 1}}


def _v2(**overrides):
    spec = dict(name="user_txn_count", entities=[ch02.USER], schema=[Field(name="txn_count", dtype="int64")],
                ttl=timedelta(days=3), created_timestamp_column="created_timestamp", version=2,
                owner="risk-features", description="30 days", tags={"window": "30d"})
    spec.update(overrides)
    return FeatureView(**spec)


def test_version_2_problems_one_rule_each():
    v1 = ch02.txn_7d_view()
    assert show.version_2_problems(_v2(), v1) == []
    cases = {"version": _v2(version=3), "tags": _v2(tags={"window": "7d"}), "feature": _v2(schema=[Field(name="n", dtype="int64")]),
             "ttl": _v2(ttl=timedelta(days=1)), "owner": _v2(owner=""), "description": _v2(description="a month")}
    for what, view in cases.items():
        assert len(show.version_2_problems(view, v1)) == 1, what
    record = show.definitions_record(v1, ch02.txn_7d_view(window_days=30), _v2(), None, {"differ": 0})
    assert record["v1_fingerprint"] == v1.fingerprint and record["silent_refused"] is False
    assert record["v2"] == _v2().to_dict()


def test_pinned_reads_return_each_version(world, tmp_path):
    store = FeatureStore(tmp_path / "v")
    store.apply([ch02.txn_7d_view(), ch02.txn_7d_view(window_days=30, version=2)])
    f7, f30 = ch02.shared_7d_frame(world), ch02.shared_7d_frame(world, window=timedelta(days=30))
    store.ingest("user_txn_count", f7, version=1)
    store.ingest("user_txn_count", f30, version=2)
    midnight = world.scenario.start + timedelta(days=20)
    users = [0, 1, 2, 3]
    got = show.pinned_reads(store, users, midnight + timedelta(hours=1),
                            {"a": "user_txn_count@v1:txn_count", "b": "user_txn_count@v2:txn_count"})
    for col, frame in (("a", f7), ("b", f30)):
        want = frame[frame["event_timestamp"] == midnight].set_index("user_id")["txn_count"].reindex(users)
        assert got[col].tolist() == want.tolist()
    assert got["user_id"].tolist() == users


def test_contract_record_lists_rules_and_deprecation():
    view = ch02.txn_7d_view()
    suite = sync.contract_suite(view)
    got = show.contract_record(view, suite, {"replacement": "user_txn_count:v2", "end_of_life": "x"})
    assert (got["view"], got["version"], got["owner"]) == ("user_txn_count", 1, view.owner)
    assert [r["id"] for r in got["rules"]] == ["one_row_per_user_day", "count_non_negative", "count_present"]
    assert got["deprecation"] == {"replacement": "user_txn_count:v2", "end_of_life": "x", "notice_days": 30}
    assert got["schema"] == view.to_dict()["schema"]
