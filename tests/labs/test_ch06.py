"""Chapter 6 lab: features, gates, serving source, drills helpers and the capstone grader.

Each behaviour is checked against an independent reference: plain loops over the raw
transactions, hand-written verdicts, and fake packs edited by hand for the grader.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit._time import UTC, FixedClock
from mlops_kit.datasets import Scenario, deduplicate, generate_world
from mlops_kit.errors import ValidationError
from mlops_kit.evidence.grading import GradingContext
from mlops_kit.evidence.grading import ch06 as grading
from mlops_kit.labs import ch06 as L
from mlops_kit.labs import ch06_gates as G
from mlops_kit.labs import ch06_ops as O
from mlops_kit.labs import ch06_pack as P


@pytest.fixture(scope="module")
def small_world():
    sc = Scenario(name="t6", start=L.START, days=10, n_users=60, n_merchants=10, n_transactions=1500)
    return generate_world(sc, seed=3)


@pytest.fixture(scope="module")
def daily(small_world):
    return L.daily_user_features(small_world)


def test_daily_features_match_a_plain_loop(small_world, daily):
    rows, _ = daily
    txn = deduplicate(small_world.transactions)
    rng = np.random.default_rng(0)
    for _ in range(25):
        user = int(rng.choice(small_world.users["user_id"]))
        d = int(rng.integers(1, 11))
        m = L.START + timedelta(days=d)
        c1 = c7 = c30 = 0
        s7 = s30 = 0.0
        for r in txn.itertuples():
            if r.user_id != user or not (r.event_timestamp < m and r.ingested_at < m):
                continue
            age = m - r.event_timestamp
            c1 += age <= timedelta(days=1)
            if age <= timedelta(days=7):
                c7, s7 = c7 + 1, s7 + r.amount
            if age <= timedelta(days=30):
                c30, s30 = c30 + 1, s30 + r.amount
        got = rows[(rows["user_id"] == user) & (rows["event_timestamp"] == pd.Timestamp(m))].iloc[0]
        assert (got["txn_count_1d"], got["txn_count_7d"]) == (c1, c7)
        if c7:
            assert got["amount_avg_7d"] == pytest.approx(s7 / c7, abs=1e-4)
        else:
            assert np.isnan(got["amount_avg_7d"])
        if c30:
            assert got["amount_avg_30d"] == pytest.approx(s30 / c30, abs=1e-4)


def test_pit_training_set_has_no_leak_and_leaky_join_is_caught(tmp_path, small_world, daily):
    from mlops_kit.workspace import Workspace

    store, rep = L.build_features(Workspace(tmp_path), small_world)
    assert rep["user_daily"] == len(daily[0])
    frames = L.training_frames(store, small_world)
    assert frames["train"]["event_timestamp"].min() >= pd.Timestamp(L.TRAIN_START)
    assert G.leakage_rate(frames["train"], daily[0]) == 0.0
    leaky = G.leaky_join(frames["train"], daily[0])
    assert G.leakage_rate(leaky, daily[0]) > 0.5
    # snapshot bytes are reproducible: same frame, same sha256 (independently hashed)
    path, digest = L.write_snapshot(Workspace(tmp_path), "train", frames["train"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert L.write_snapshot(Workspace(tmp_path / "other"), "train", frames["train"])[1] == digest


def test_verdicts_and_release_decision_by_hand():
    assert G.verdict(0.3, "<=", 0.3) and not G.verdict(0.31, "<=", 0.3)
    assert G.verdict(1, ">=", 1) and not G.verdict(float("nan"), "<=", 1)
    with pytest.raises(ValidationError):
        G.verdict(1, "<", 2)
    row = G.gate_row("A", "data", "nulls", 0.5, "<=", 0.1)
    assert row["passed"] is False
    rows = [G.gate_row("X", "model", "m", 0, ">=", 1), G.gate_row("X", "feature", "f", 1, "<=", 0),
            G.gate_row("X", "data", "d", 0, "<=", 0)]
    assert G.release_decision(rows) == "blocked by feature gate"
    assert G.release_decision(rows[2:]) == "release"
    table = G.decisions(pd.DataFrame(rows))
    assert table.loc[0, "decision"] == "blocked by feature gate"


def test_decision_probes_cover_every_gate_combination():
    probes = G.decision_probes(seed=3)
    assert len(probes) == 1 + sum(2 ** k * n for k, n in ((1, 3), (2, 3), (3, 1)))   # empty + every ran/failing set
    seen = {G.release_decision(p) for p in probes}
    assert seen == {"release", "blocked by data gate", "blocked by feature gate", "blocked by model gate"}

    def wrong_order(rows):   # model before feature: must disagree on some probe
        for gate in ("data", "model", "feature"):
            if any(r["gate"] == gate and not r["passed"] for r in rows):
                return f"blocked by {gate} gate"
        return "release"

    def first_failing_row(rows):   # row order instead of gate order
        bad = [r for r in rows if not r["passed"]]
        return f"blocked by {bad[0]['gate']} gate" if bad else "release"

    for fn in (wrong_order, first_failing_row):
        assert any(fn(p) != G.release_decision(p) for p in probes), fn.__name__


def test_corrupt_batch_fails_the_data_gate(daily):
    batch = daily[0]
    now = batch["event_timestamp"].max().to_pydatetime()
    good, _ = G.data_gate("ok", batch, now=now)
    bad, _ = G.data_gate("bad", G.corrupt_batch(batch, seed=1), now=now)
    assert all(r["passed"] for r in good)
    failed = {r["check"] for r in bad if not r["passed"]}
    assert {"user_day_unique", "amount_avg_7d_range"} <= failed


def test_scorer_fills_missing_inputs_like_serving():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({c: rng.uniform(0, 50, 400) for c in L.INPUTS}).assign(is_online=rng.integers(0, 2, 400))
    y = (df["amount"] > 30).astype(int)
    scorer = L.CapstoneScorer(L.INPUTS).fit(df, y)
    row = df.head(3).copy()
    row.loc[:, "amount_avg_7d"] = np.nan
    filled = row.copy()
    filled["amount_avg_7d"] = L.FILL["amount_avg_7d"]
    assert np.allclose(scorer.predict(row), scorer.predict(filled))
    with pytest.raises(ValidationError):
        L.CapstoneScorer(("nope",))


class _FakeStore:
    def __init__(self):
        self.calls = []

    def materialize_incremental(self, end):
        self.calls.append(end)

        class _R:
            views = {}
        return _R()

    def get_online_features(self, features, entity_rows, at=None, principal=None, purpose=None):
        n = len(entity_rows)
        return {f.split(":")[1]: [1.0] * n for f in features}


def test_daily_job_runs_once_per_day_at_its_time():
    store, clock = _FakeStore(), FixedClock(L.START)
    src = O.DailyJobSource(store, clock)
    day = L.START + timedelta(days=3)
    keys = np.array([1, 2, 1])
    for minutes in (1, 4, 5, 60, 600, 24 * 60 + 2, 24 * 60 + 6):
        X, missing = src.fetch(keys, day + timedelta(minutes=minutes))
        assert X.shape == (3, len(src.columns)) and not missing.any()
    assert store.calls == [day + O.JOB_AT, day + timedelta(days=1) + O.JOB_AT]
    ages = [r["feature_age_h"] for r in src.reads]
    assert ages[0] is None and ages[-2] == pytest.approx(24 + 2 / 60) and ages[-1] == pytest.approx(0.1)


def test_asof_source_matches_a_loop(daily):
    rows, profile = daily
    src = O.AsOfSource(rows, profile)
    keys = np.array(sorted(rows["user_id"].unique())[:15])
    at = L.START + timedelta(days=4, hours=7)
    X, missing = src.fetch(keys, at)
    for i, k in enumerate(keys):
        r = rows[(rows["user_id"] == k) & (rows["event_timestamp"] <= pd.Timestamp(at))]
        r = r[r["event_timestamp"] == r["event_timestamp"].max()].iloc[0]
        assert X.loc[i, "txn_count_7d"] == r["txn_count_7d"]
        p = profile[(profile["user_id"] == k) & (profile["event_timestamp"] <= pd.Timestamp(at))]
        want = p.sort_values("event_timestamp")["credit_limit"].iloc[-1] if len(p) else np.nan
        assert (np.isnan(want) and missing[i, -1]) or X.loc[i, "credit_limit"] == want


def test_audit_compare_flags_each_difference():
    fp = {"snapshots": {"train": "a" * 64}, "view_fingerprints": {"v": "f"}, "code_revision": "c" * 12,
          "artifact_sha256": "d" * 64, "auc": 0.8}
    same = L.audit_compare(fp, dict(fp))
    assert same["match"].all()
    other = {**fp, "snapshots": {"train": "b" * 64}, "auc": 0.8 + 1e-6}
    bad = L.audit_compare(other, fp)
    assert set(bad.loc[~bad["match"], "item"]) == {"snapshot:train", "auc"}


def test_first_times_and_checklist_location():
    ev = pd.DataFrame({"time": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:15", "2024-01-01 10:30"], utc=True),
                       "kind": ["rollback", "alert", "rollback"]})
    t = O.first_times(ev, containment=("rollback",))
    assert t["first_alert"].startswith("2024-01-01T10:15") and t["first_containment"].startswith("2024-01-01T10:30")
    items = P.checklist_items()
    assert {it["id"] for it in items} == set(P.CHECKLIST_EVIDENCE)
    located = O.locate_checklist(items, P.CHECKLIST_EVIDENCE, lambda rel: rel != "ch06/runbooks.md")
    assert list(located.loc[~located["located"], "id"]) == ["F16"]


def test_review_plan_scores_recorded_answers():
    from mlops_kit.evidence import load_bank

    bank = load_bank("ch06")
    answers = {"banks": {"ch06": {"answers": {q.id: q.answer for q in bank.questions}}}}
    text = P.review_plan(answers, {"drift detect min": 135.0})
    assert f"| ch06 | {len(bank.questions)} | {len(bank.questions)} |" in text
    assert "| mock_exam | 0 |" in text
    with pytest.raises(ValidationError):
        P.review_plan({}, {})


# ------------------------------------------------------------------------------- the grader
def _ctx(pack):
    return GradingContext(pack, None, [])


def _gates(pack, rows, decisions):
    (pack / "ch06").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(pack / "ch06/gate_results.csv", index=False)
    pd.DataFrame(decisions).to_csv(pack / "ch06/release_decisions.csv", index=False)


def test_grader_gates_recompute_verdicts_and_decisions(tmp_path):
    rows = [G.gate_row("A", "data", "d", 0, "<=", 0), G.gate_row("B", "data", "d", 1, "<=", 0),
            G.gate_row("C", "data", "d", 0, "<=", 0), G.gate_row("C", "feature", "f", 0.5, "<=", 0),
            G.gate_row("D", "feature", "f", 0, "<=", 0), G.gate_row("D", "model", "m", 0, ">=", 1)]
    dec = [{"release": r, "decision": d} for r, d in (("A", "release"), ("B", "blocked by data gate"),
                                                      ("C", "blocked by feature gate"), ("D", "blocked by model gate"))]
    _gates(tmp_path, rows, dec)
    assert grading.grade_gates(_ctx(tmp_path)).level == 4
    rows[1]["passed"] = True                       # a row claiming a pass its numbers do not support
    _gates(tmp_path, rows, dec)
    assert grading.grade_gates(_ctx(tmp_path)).level == 0
    rows[1]["passed"] = False
    dec[3]["decision"] = "release"                 # a decision that ignores a failed gate
    _gates(tmp_path, rows, dec)
    assert grading.grade_gates(_ctx(tmp_path)).level == 0


def test_grader_reproducibility_rehashes_snapshot_bytes(tmp_path):
    (tmp_path / "ch06").mkdir()
    (tmp_path / "ch06/train.parquet").write_bytes(b"train-bytes")
    digest = hashlib.sha256(b"train-bytes").hexdigest()
    lineage = {"model": {"artifact_sha256": "e" * 64}, "code": {"revision": "abc"},
               "lineage": {"snapshots": [{"name": "train", "sha256": digest}],
                           "features": [{"view": "v", "fingerprint": "fp"}]}}
    fps = {"snapshots": {"train": digest}, "view_fingerprints": {"v": "fp"}, "code_revision": "abc",
           "artifact_sha256": "e" * 64, "auc": 0.8}
    (tmp_path / "ch06/lineage.json").write_text(json.dumps(lineage))
    (tmp_path / "ch06/repro_audit.json").write_text(json.dumps({"original": fps, "rebuilt": fps, "tolerance": 1e-9}))
    assert grading.grade_reproducibility(_ctx(tmp_path)).level == 4
    (tmp_path / "ch06/train.parquet").write_bytes(b"edited")
    assert grading.grade_reproducibility(_ctx(tmp_path)).level == 0


def test_grader_drills_need_containment_after_the_alert(tmp_path):
    (tmp_path / "ch06").mkdir()
    start = datetime(2024, 1, 1, 18, tzinfo=UTC)
    for name, kind in (("drift", "rollback"), ("outage", "fallback_on")):
        ev = pd.DataFrame({"time": [start + timedelta(minutes=m) for m in (0, 15, 15)],
                           "kind": ["start", "alert", kind]})
        ev.to_csv(tmp_path / f"ch06/drill_{name}_events.csv", index=False)
        (tmp_path / f"ch06/drill_{name}.json").write_text(json.dumps(
            {"fault_start": start.isoformat(), "corrective_actions": [{"id": "CA-1", "passed": True}]}))
        (tmp_path / f"ch06/postmortem_{name}.md").write_text("| CA-1 | act | me | spec | PASS |\n")
    assert grading.grade_drills(_ctx(tmp_path)).level == 4
    ev = pd.DataFrame({"time": [start + timedelta(minutes=m) for m in (5, 30)], "kind": ["rollback", "alert"]})
    ev.to_csv(tmp_path / "ch06/drill_drift_events.csv", index=False)   # rollback BEFORE the alert
    assert grading.grade_drills(_ctx(tmp_path)).level == 2


def test_grader_dashboard_recomputes_psi_and_needs_every_panel(tmp_path):
    from mlops_kit.evidence.grading import psi_from_samples

    (tmp_path / "ch06").mkdir()
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(0, 1, 300), rng.normal(0.3, 1, 200)
    pd.concat([pd.DataFrame({"sample": "reference", "score": ref}),
               pd.DataFrame({"sample": "current", "score": cur})]).to_csv(tmp_path / "ch06/psi_samples.csv", index=False)
    names = ["traffic_split", "latency", "missing_features", "prediction_psi", "kpi_proxy", "feature_freshness",
             "training_serving_skew"]
    for n in names:
        (tmp_path / f"ch06/dash_{n}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 10)
    value = psi_from_samples(pd.read_csv(tmp_path / "ch06/psi_samples.csv").query("sample == 'reference'")["score"],
                             pd.read_csv(tmp_path / "ch06/psi_samples.csv").query("sample == 'current'")["score"])[0]
    dash = {"panels": {n: f"dash_{n}.png" for n in names}, "psi": {"value": value, "bins": 10}}
    (tmp_path / "ch06/dashboard.json").write_text(json.dumps(dash))
    assert grading.grade_dashboard(_ctx(tmp_path)).level == 4
    (tmp_path / "ch06/dashboard.json").write_text(json.dumps({**dash, "psi": {"value": value / 2, "bins": 10}}))
    assert grading.grade_dashboard(_ctx(tmp_path)).level == 2


def test_grader_checklist_needs_every_item_located(tmp_path):
    (tmp_path / "ch06").mkdir()
    (tmp_path / "ch06/a.json").write_text("{}")
    items = [{"id": it["id"], "artifacts": ["ch06/a.json"]} for it in P.checklist_items()]
    (tmp_path / "ch06/final_checklist.json").write_text(json.dumps({"items": items}))
    assert grading.grade_checklist(_ctx(tmp_path)).level == 4
    items[3]["artifacts"] = ["ch06/missing.csv"]
    (tmp_path / "ch06/final_checklist.json").write_text(json.dumps({"items": items}))
    assert grading.grade_checklist(_ctx(tmp_path)).level == 2
