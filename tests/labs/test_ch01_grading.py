"""Chapter 1's grading criteria on hand-built packs: each recomputes what it grades."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.evidence.grading.ch01 import grade_asof_join, grade_prediction_log, grade_slos, grade_snapshots
from mlops_kit.labs import ch01 as L
from mlops_kit.labs import ch01_ops as O
from mlops_kit.quality import SLO, Alert


# -- grading criteria on hand-built packs -------------------------------------------------
def _ctx(tmp_path, files: dict[str, object]) -> GradingContext:
    for rel, content in files.items():
        path = tmp_path / "ch01" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
    return GradingContext(tmp_path, {}, [])


def test_grade_snapshots_rehashes_the_file(tmp_path):
    data = b"snapshot-bytes"
    sid = hashlib.sha256(data).hexdigest()
    claim = {"snapshot_id": sid, "snapshot_file": "snap.parquet", "tolerance": 1e-9,
             "snapshot_runs": [{"fingerprint": sid, "auc": 0.8}, {"fingerprint": sid, "auc": 0.8}],
             "latest_runs": [{"fingerprint": "a", "auc": 0.7}, {"fingerprint": "b", "auc": 0.75}]}
    assert grade_snapshots(_ctx(tmp_path / "ok", {"reproducibility.json": claim, "snap.parquet": data})).level == 4
    bad = _ctx(tmp_path / "bad", {"reproducibility.json": claim, "snap.parquet": data + b"!"})
    assert grade_snapshots(bad).level == 0


def test_grade_asof_join_recounts_future_rows(tmp_path):
    sample = pd.DataFrame({"event_timestamp": ["2024-01-02T00:00:00Z"] * 3,
                           "naive_feature_timestamp": ["2024-01-05T00:00:00Z", "2024-01-01T00:00:00Z", None],
                           "pit_feature_timestamp": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", None]})
    honest = {"sample_future_rows_naive": 1, "sample_future_rows_pit": 0}
    assert grade_asof_join(_ctx(tmp_path / "a", {"asof_join.json": honest, "asof_join_sample.csv": sample})).level == 4
    lie = {"sample_future_rows_naive": 1, "sample_future_rows_pit": 0}
    leaky = sample.assign(pit_feature_timestamp=sample["naive_feature_timestamp"])
    assert grade_asof_join(_ctx(tmp_path / "b", {"asof_join.json": lie, "asof_join_sample.csv": leaky})).level == 0


def test_grade_prediction_log_catches_a_raw_amount(tmp_path):
    raw = pd.DataFrame({"request_id": [0, 1], "user_id": [7, 9], "amount": [5.0, 60.0]})
    log = pd.DataFrame({"request_id": [0, 1], "model_version": "m", "feature_age_h": [1.0, None],
                        "fallback_used": [False, True], "user_ref": ["ab12cd34", "ef56ab78"],
                        "amount_bucket": ["<10", "[50, 200)"], "score": [0.1, 0.2]})
    spec = {"amount_edges": [10, 50, 200, 1000], "metrics": {"fallback_rate": 0.5},
            "fallback_rule_threshold": 0.05, "fallback_rule_fires": True}
    files = {"prediction_log.csv": log, "scoring_requests.csv": raw, "observability.json": spec}
    assert grade_prediction_log(_ctx(tmp_path / "ok", files)).level == 4
    leaked = {**files, "prediction_log.csv": log.assign(score=[0.1, 60.0])}
    assert grade_prediction_log(_ctx(tmp_path / "raw", leaked)).level == 0
    wrong_bucket = {**files, "prediction_log.csv": log.assign(amount_bucket=["<10", "[10, 50)"])}
    assert grade_prediction_log(_ctx(tmp_path / "bucket", wrong_bucket)).level == 0


def test_grade_slos_recomputes_the_verdicts(tmp_path):
    slos = [s.to_dict() for s in L.default_slos()]
    slos.append(SLO(name="nulls", kind="quality", indicator="feature_null", statistic="rate", objective=0.05,
                    window=timedelta(days=1), owner="t", alert=Alert(name="N", severity="warning", route="q")).to_dict())
    rng = np.random.default_rng(2)
    obs = pd.concat([pd.DataFrame({"indicator": "feature_age_hours", "value": rng.uniform(0, 100, 50)}),
                     pd.DataFrame({"indicator": "online_read_ms", "value": rng.uniform(0, 2, 50)}),
                     pd.DataFrame({"indicator": "parity_mismatch", "value": np.zeros(50)}),
                     pd.DataFrame({"indicator": "feature_null", "value": (np.arange(50) < 1).astype(float)})])
    results = L.evaluate_slos([SLO.from_dict(s) for s in slos], obs)
    files = {"slos.json": {"slos": slos}, "slo_observations.csv": obs,
             "slo_results.json": {"results": results.to_dict("records")}}
    assert grade_slos(_ctx(tmp_path / "ok", files)).level == 4
    flipped = results.assign(verdict=np.where(results["slo"] == "nulls", "breached", results["verdict"]))
    files_bad = {**files, "slo_results.json": {"results": flipped.to_dict("records")}}
    assert grade_slos(_ctx(tmp_path / "bad", files_bad)).level == 0


def test_grade_leakage_auc_recomputes_from_scores(tmp_path):
    rng = np.random.default_rng(4)
    n = 400
    y = rng.integers(0, 2, 2 * n)
    period = ["offline_test"] * n + ["production"] * n
    leaky = np.where(np.arange(2 * n) < n, y * 0.8 + rng.random(2 * n) * 0.3, rng.random(2 * n))
    pit = y * 0.3 + rng.random(2 * n)
    scores = pd.DataFrame({"period": period, "is_fraud": y, "score_leaky": leaky, "score_pit": pit})
    off, prod = scores[:n], scores[n:]
    stated = {"offline_leaky_auc": roc_auc_score(off.is_fraud, off.score_leaky),
              "offline_pit_auc": roc_auc_score(off.is_fraud, off.score_pit),
              "production_leaky_auc": roc_auc_score(prod.is_fraud, prod.score_leaky),
              "production_pit_auc": roc_auc_score(prod.is_fraud, prod.score_pit)}
    ctx = _ctx(tmp_path / "ok", {"leakage_auc.json": stated})
    scores.to_parquet(tmp_path / "ok" / "ch01" / "leakage_scores.parquet", index=False)
    from mlops_kit.evidence.grading.ch01 import grade_leakage_auc, grade_runbook

    assert grade_leakage_auc(ctx).level == 4
    (tmp_path / "ok" / "ch01" / "leakage_auc.json").write_text(
        json.dumps({**stated, "production_leaky_auc": stated["production_leaky_auc"] + 0.01}))
    assert grade_leakage_auc(ctx).level == 0
    runbook = O.render_runbook(O.TAXONOMY, slos=L.default_slos())
    assert grade_runbook(_ctx(tmp_path / "rb", {"runbook.md": runbook.encode()})).level == 4
    cut = runbook.replace("| cost spike |", "| budget |")
    assert grade_runbook(_ctx(tmp_path / "rb2", {"runbook.md": cut.encode()})).level == 0


def test_grade_drift_psi_contrast(tmp_path):
    from mlops_kit.evidence.grading.ch01 import grade_drift_psi

    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"amount": rng.lognormal(3, 1, 1500)})
    stable = pd.DataFrame({"amount": rng.lognormal(3, 1, 1500)})
    shifted = pd.DataFrame({"amount": rng.lognormal(3.8, 1, 1500)})
    claim = {"reference": "r.csv", "features": [
        {"column": "amount", "current": f"{n}.csv", "bins": 10, **O.drift_response(ref.amount, f.amount)}
        for n, f in (("s", stable), ("c", shifted))]}
    files = {"r.csv": ref, "s.csv": stable, "c.csv": shifted, "drift_psi.json": claim}
    assert grade_drift_psi(_ctx(tmp_path / "ok", files)).level == 4
    claim["features"][1]["psi"] += 0.01
    assert grade_drift_psi(_ctx(tmp_path / "bad", files)).level == 0
