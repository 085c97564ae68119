"""Chapter 6 views: the notebook's tables, panels and write-ups, against hand-built fakes."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import pytest

from mlops_kit._time import UTC
from mlops_kit.errors import MlopsKitError
from mlops_kit.labs import ch06 as L
from mlops_kit.labs import ch06_ops as O
from mlops_kit.labs import ch06_views as V


def _ts(*s):
    return pd.to_datetime(list(s), utc=True)


class _FakeRegistry:
    """Just enough registry for the views: refusals, approvals, attestations, alias history."""

    def __init__(self, refuse=("promote", "approve"), deployed=3, history=()):
        self.refuse, self.deployed, self.history, self.calls = set(refuse), deployed, list(history), []

    def promote(self, name, version, stage, **kw):
        self.calls.append(("promote", name, version, stage))
        if "promote" in self.refuse:
            raise MlopsKitError("no")

    def approve(self, name, version, **kw):
        self.calls.append(("approve", name, version, kw["role"]))
        if "approve" in self.refuse:
            raise MlopsKitError("no")

    def approvals(self, name, version):
        return [NS(actor="ana", role="ml-owner", note="ok"), NS(actor="bo", role="risk", note=f"v{version}")]

    def attestations(self, name, version):
        return [NS(version=version, stage="candidate", policy_id=f"p{version}", verdict="pass", reason="r")]

    def alias_history(self, name, alias):
        return self.history

    def get_model_version_by_alias(self, name, alias):
        return NS(version=str(self.deployed))


def test_set_and_model_tables_by_hand():
    f = {"train": pd.DataFrame({"event_timestamp": _ts("2024-01-02 05:00", "2024-01-01 23:00"), "is_fraud": [1, 0]}),
         "eval": pd.DataFrame({"event_timestamp": _ts("2024-02-01"), "is_fraud": [0]})}
    t = V.set_table(f)
    assert t.to_dict(orient="records") == [
        {"set": "train", "rows": 2, "from": datetime(2024, 1, 1).date(), "to": datetime(2024, 1, 2).date(), "fraud_rate": 0.5},
        {"set": "eval", "rows": 1, "from": datetime(2024, 2, 1).date(), "to": datetime(2024, 2, 1).date(), "fraud_rate": 0.0}]
    rep = {"parameters": {"inputs": ["a", "b"]}, "auc": 0.8, "segment_metrics": {"online": {"auc": 0.7}}}
    assert V.model_table({"m": rep}).to_dict(orient="records") == [{"model": "m", "inputs": 2, "eval_auc": 0.8, "online": 0.7}]


def test_try_unreviewed_records_each_refusal():
    reg = _FakeRegistry(refuse={"promote"})
    got = V.try_unreviewed(reg, 5)
    assert got == [{"attempt": "skip the stages", "refused": True, "error": "MlopsKitError"},
                   {"attempt": "approve own model", "refused": False, "error": ""}]
    assert reg.calls == [("promote", L.MODEL, 5, "approved-prod"), ("approve", L.MODEL, 5, "ml-owner")]
    assert all(a["refused"] for a in V.try_unreviewed(_FakeRegistry(), 5))


def test_registry_tables_by_hand():
    reg = _FakeRegistry(history=[NS(from_version=None, to_version=1, action="promote", actor="a", reason="x"),
                                 NS(from_version=1, to_version=2, action="rollback", actor="b", reason="y")])
    assert V.approvals_table(reg, 4)["note"].tolist() == ["ok", "v4"]
    att = V.attestation_table(reg, (2, 7))
    assert att[["version", "policy"]].values.tolist() == [[2, "p2"], [7, "p7"]]
    hist = V.alias_history_table(reg)
    assert str(hist["from"].dtype) == "Int64" and hist["from"].isna().tolist() == [True, False]
    assert hist["to"].tolist() == [1, 2] and hist["action"].tolist() == ["promote", "rollback"]


def test_lifecycle_stages_fail_where_the_evidence_is_missing():
    approvals = pd.DataFrame({"role": ["risk", "ml-owner"]})
    result = NS(status="completed", measurements=pd.DataFrame({"verdict": ["pass", "inconclusive"]}))
    kw = dict(feat={"user_daily": 10, "user_profile": 3}, frames={"train": pd.DataFrame({"x": range(4)})},
              snap={"train": (None, "ab" * 32)}, report={"auc": 0.81234}, version=2, approvals=approvals)
    good = dict(parity_ok=True, leak_rate=0.0, auc_floor=0.75)
    ok = V.lifecycle_stages(refused=True, result=result, deployed=2, **kw, **good)
    assert [s["stage"] for s in ok] == ["features", "training set", "model", "registry", "canary", "monitoring"]
    assert all(s["status"] == "ok" for s in ok)
    assert ok[1]["detail"] == "4 rows, leakage rate 0, snapshot abababababab"
    assert ok[2]["detail"] == "eval AUC 0.812 (floor 0.75)"
    bad = NS(status="completed", measurements=pd.DataFrame({"verdict": ["fail", "pass"]}))
    st = {s["stage"]: s["status"] for s in V.lifecycle_stages(refused=False, result=bad, deployed=1, parity_ok=False,
                                                             leak_rate=0.01, auc_floor=0.9, **kw)}
    assert all(v == "failed" for v in st.values()), st


def test_psi_samples_match_a_loop():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    times = [t0 + pd.Timedelta(hours=h) for h in range(30)]
    req = pd.DataFrame({"event_timestamp": times, "arm": ["stable", "candidate"] * 15,
                        "score": [0.123456789012345 * (h + 1) % 1 for h in range(30)]})
    warm_end = t0 + pd.Timedelta(hours=12)
    got = V.psi_samples(req, warm_end)
    ref = [round(r.score, 10) for r in req.itertuples() if r.event_timestamp < warm_end and r.arm == "stable"]
    cur = [round(r.score, 10) for r in req.itertuples() if r.event_timestamp >= times[-1] - pd.Timedelta(hours=6)]
    assert got["sample"].tolist() == ["reference"] * len(ref) + ["current"] * len(cur)
    assert got["score"].tolist() == pytest.approx(ref + cur, abs=1e-12) and len(cur) == 7


def test_dashboard_figures_and_summary(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(V, "plot_traffic_split", lambda result, title: plt.figure())
    hours = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    hourly = pd.DataFrame({"hour": hours, "latency_p95_ms": [1, 2, 3], "latency_p99_ms": [4, 9, 5],
                           "missing_feature_rate": [0, 0.2, 0], "error_rate": [0, 0, 0],
                           "decline_rate_stable": [0.1] * 3, "decline_rate_candidate": [0.2] * 3})
    ms = pd.DataFrame({"guardrail": ["input-drift"] * 2, "time": hours[:2], "value": [0.1, np.nan], "verdict": ["pass", "pass"]})
    fresh = pd.DataFrame({"hour": hours, "feature_age_h": [1.0, 30.0, 2.0]})
    skew = pd.DataFrame({"feature": ["a", "b"], "psi_train_vs_served": [0.01, 0.05]})
    figs = V.dashboard_figures(NS(measurements=ms), hourly, fresh, skew)
    assert list(figs) == ["traffic_split", "latency", "missing_features", "prediction_psi", "kpi_proxy",
                          "feature_freshness", "training_serving_skew"]
    assert figs["latency"].axes[0].get_title() == "prediction latency"
    assert len(figs["prediction_psi"].axes[0].lines[0].get_xdata()) == 1     # the NaN measurement is left out
    dash = V.dashboard_summary(figs, 0.07, skew, fresh, hourly)
    assert dash == {"panels": {n: f"dash_{n}.png" for n in figs}, "psi": {"value": 0.07, "bins": 10}, "max_skew_psi": 0.05,
                    "max_feature_age_h": 30.0, "p99_ms_max": 9.0, "missing_rate_max": 0.2}
    plt.close("all")


def test_detect_minutes_and_drill_summary():
    assert V.detect_minutes(None, "2024-01-01T00:00Z") is None
    assert V.detect_minutes("2024-01-01T01:30Z", "2024-01-01T00:45Z") == 45.0
    rep = NS(time_to_detect=timedelta(minutes=15), time_to_recover=timedelta(hours=1))
    t = V.drill_summary({"outage": (rep, "fallback")})
    assert t.to_dict(orient="records") == [{"drill": "outage", "detected_after_min": 15.0, "contained_after_min": 60.0,
                                            "how": "fallback"}]


def test_outage_and_drift_actions_pass_and_fail_by_hand():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    times = [t0 + pd.Timedelta(minutes=15 * k) for k in range(12)]
    arms = ["stable"] * 3 + ["fallback"] * 6 + ["stable"] * 3
    guard = O.outage_guardrail(metric="missing_feature_rate", threshold=0.4, window_min=20, action="fallback", arm="all")
    alert = pd.DataFrame({"time": [times[1]], "kind": ["alert"], "detail": ["feature-retrieval: 0.9 > 0.4 -> fail"]})
    res = NS(requests=pd.DataFrame({"event_timestamp": times, "arm": arms}), events=alert)
    guards = O.guardrails(outage=guard)
    run = lambda actions: {a.id: a.run().passed for a in actions}  # noqa: E731
    # fallback from 00:45 to 02:15 (exclusive); containment 00:30 -> the window starts at 00:45
    ok = V.outage_actions(guards, _FakeRegistry(), res, contained=times[2], recovered=times[9], fault_start=times[0])
    assert run(ok) == {"CA-O1": True, "CA-O2": True, "CA-O3": True}
    assert "missing_feature_rate > 0.4 over 0:20:00" in ok[0].spec     # the guard the drill ran with
    rb = _FakeRegistry(history=[NS(action="rollback")])
    bad = V.outage_actions(O.guardrails(), rb, res, contained=times[0], recovered=times[9], fault_start=times[0])
    assert run(bad) == {"CA-O1": False, "CA-O2": False, "CA-O3": False}
    # the guard fired, but more than an hour after the fault; a rollback held before the drill is not counted
    late = V.outage_actions(guards, rb, res, contained=times[2], recovered=times[9], fault_start=times[1] - pd.Timedelta(hours=2),
                            rollbacks_before=1)
    assert run(late) == {"CA-O1": False, "CA-O2": True, "CA-O3": True}
    ev = pd.DataFrame({"time": [times[4]], "kind": ["abort"]})
    drift = NS(events=ev, requests=pd.DataFrame({"event_timestamp": times, "arm": ["candidate"] * 4 + ["stable"] * 8}))
    assert run(V.drift_actions(O.guardrails(), _FakeRegistry(deployed=3), drift, known_good=3)) == {
        "CA-D1": True, "CA-D2": True, "CA-D3": True}
    late = NS(events=ev, requests=drift.requests.assign(arm=["candidate"] * 5 + ["stable"] * 7))
    assert run(V.drift_actions([], _FakeRegistry(deployed=4), late, known_good=3)) == {
        "CA-D1": False, "CA-D2": False, "CA-D3": False}


def test_write_up_saves_the_three_artifacts(monkeypatch):
    saved = {}
    rec = NS(save_markdown=lambda n, t: saved.__setitem__(n, t), save_table=lambda n, t: saved.__setitem__(n, t),
             save_json=lambda n, d: saved.__setitem__(n, d))
    report = NS(to_dict=lambda: {"title": "t"})
    monkeypatch.setattr(V, "incident_report", lambda res, fault, title, bad_arm: report)
    monkeypatch.setattr(V, "postmortem_markdown", lambda rep, **kw: f"# {kw['summary']} / {len(kw['corrective_actions'])}")
    ev = pd.DataFrame({"time": _ts("2024-01-01 10:00", "2024-01-01 10:15"), "kind": ["alert", "fallback_on"]})
    actions = [NS(id="CA-1", spec="s1", run=lambda: NS(passed=True)), NS(id="CA-2", spec="s2", run=lambda: NS(passed=False))]
    rep, results = V.write_up(rec, "x", NS(events=ev), None, "title", "cause", ["f"], actions)
    assert rep is report and results == [{"id": "CA-1", "passed": True, "spec": "s1"}, {"id": "CA-2", "passed": False, "spec": "s2"}]
    assert set(saved) == {"postmortem_x", "drill_x_events", "drill_x"} and saved["postmortem_x"] == "# title / 2"
    assert saved["drill_x"]["title"] == "t" and saved["drill_x"]["corrective_actions"] == results
    assert saved["drill_x"]["containment_kind"] == "fallback_on"
