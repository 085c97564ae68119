"""Chapter 1 negative controls: remove or break a control and both its check and its criterion fail.

Each case runs the chapter's steps (the lab functions the notebook calls) into a scratch
evidence dir, once with the control and once without it: with the control the check passes
and the grader gives the full level; without it ``rec.check`` raises and the criterion drops.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit.datasets import Scenario, entity_frame, generate_world, training_set, user_profile_features
from mlops_kit.errors import CheckFailedError
from mlops_kit.evidence import start_chapter
from mlops_kit.evidence.grading import ch01 as grading
from mlops_kit.evidence.grading.base import GradingContext
from mlops_kit.labs import ch01 as L
from mlops_kit.labs import ch01_checks as C
from mlops_kit.labs import ch01_ops as O
from mlops_kit.labs import ch01_repro as R
from mlops_kit.labs import ch01_views as V

SEED = 3


@pytest.fixture(scope="module")
def world():
    return generate_world(Scenario.small(), seed=SEED)


@pytest.fixture(scope="module")
def full(world):
    return training_set(world)


def _run(tmp_path, name):
    rec = start_chapter(1, evidence_dir=tmp_path / name, seed=SEED, scale=0.1)
    return rec, GradingContext(tmp_path / name, {}, [])


def _check(rec, check_id, verdict) -> bool:
    """Record the check as the notebook does; True when it passed, False when it raised."""
    try:
        rec.check(check_id, **verdict)
        return True
    except CheckFailedError:
        return False


# -- reproducibility: the second rebuild reads another snapshot ----------------------------
def _reproducibility(rec, ws, world, full, *, rebuild_from_moved_table: bool) -> bool:
    now = world.scenario.end + timedelta(days=30)     # the small world's labels need time to mature
    runs_latest, reads = [], []
    for as_of in (now, now + timedelta(days=3)):
        path = R.write_latest(ws, R.latest_training_table(world, as_of=as_of, frame=full))
        reads.append(pd.read_parquet(path))
        runs_latest.append({"read_at": as_of.isoformat(), "fingerprint": R.sha256_file(path),
                            **R.train_and_score(reads[-1], seed=SEED)})
    snap_id = R.write_snapshot(ws, reads[0])
    second = R.write_snapshot(ws, reads[1]) if rebuild_from_moved_table else snap_id
    runs_snapshot = [R.snapshot_run(ws, snap_id, seed=SEED), R.snapshot_run(ws, second, seed=SEED)]
    snapshot_file = f"snapshot_{snap_id[:12]}.parquet"
    shutil.copyfile(ws.snapshots_dir / f"{snap_id}.parquet", rec.path(snapshot_file))
    rec.save_json("reproducibility", {"latest_runs": runs_latest, "snapshot_runs": runs_snapshot,
                                      "snapshot_id": snap_id, "snapshot_file": snapshot_file, "tolerance": 1e-9})
    return _check(rec, "1.3-snapshot-reproducible", C.reproducibility_check(
        runs_latest, runs_snapshot, snap_id=snap_id, snapshot_copy=rec.path(snapshot_file), tolerance=1e-9,
        tamper_refused=True))


def test_rebuild_from_a_different_snapshot_fails_the_check_and_c1_1(tmp_path, world, full):
    rec, ctx = _run(tmp_path, "control")
    assert _reproducibility(rec, rec.workspace(), world, full, rebuild_from_moved_table=False)
    assert grading.grade_snapshots(ctx).level == 4
    rec, ctx = _run(tmp_path, "broken")
    assert not _reproducibility(rec, rec.workspace(), world, full, rebuild_from_moved_table=True)
    assert grading.grade_snapshots(ctx).level == 0


# -- leakage: the "point-in-time" model trained on leaky features too ----------------------
def _leakage(rec, world, full, leaky, *, point_in_time: bool) -> bool:
    aucs, scores = O.leakage_scores(world, seed=SEED, frame=full if point_in_time else leaky, leaky_frame=leaky)
    rec.save_json("leakage_auc", aucs)
    rec.save_table("leakage_scores.parquet", scores, max_rows=len(scores))
    return _check(rec, "1.4-leakage-inflates", C.leakage_check(aucs, min_gap=0.05))


def test_no_point_in_time_training_set_fails_the_check_and_c1_2(tmp_path, world, full):
    leaky = training_set(world, leaky=True)
    rec, ctx = _run(tmp_path, "control")
    assert _leakage(rec, world, full, leaky, point_in_time=True)
    assert grading.grade_leakage_auc(ctx).level == 4
    rec, ctx = _run(tmp_path, "broken")
    assert not _leakage(rec, world, full, leaky, point_in_time=False)
    assert grading.grade_leakage_auc(ctx).level == 2


# -- the as-of join replaced by the naive latest join --------------------------------------
def _asof(rec, store, world, join) -> bool:
    rows = entity_frame(world)[["transaction_id", "user_id", "event_timestamp"]]
    profiles = user_profile_features(world).drop(columns="created_timestamp")
    pit = join(rows, profiles, "user_id")
    probe = rows.sample(n=500, random_state=SEED).reset_index(drop=True)
    reference = store.get_historical_features(probe, ["user_profile:account_status", "user_profile:credit_limit"])
    sample, stats = V.asof_evidence(rows, O.naive_latest_join(rows, profiles, "user_id"), pit, seed=SEED + 1)
    rec.save_table("asof_join_sample", sample)
    rec.save_json("asof_join", stats)
    return _check(rec, "1.4-exercise-asof-join", C.asof_exercise_check(join, pit, rows=rows, features=profiles,
                                                                        probe=probe, reference=reference))


def _asof_join(rows, features, key):
    right = features.assign(feature_timestamp=features["event_timestamp"]).sort_values("event_timestamp", kind="stable")
    left = rows.assign(_order=np.arange(len(rows))).sort_values("event_timestamp", kind="stable")
    out = pd.merge_asof(left, right, on="event_timestamp", by=key, direction="backward")
    return out.sort_values("_order").drop(columns="_order").reset_index(drop=True)


@pytest.mark.filterwarnings("ignore")
def test_a_latest_join_instead_of_the_as_of_join_fails_the_check_and_c1_3(tmp_path, world):
    rec, ctx = _run(tmp_path, "control")
    store = L.build_platform(rec.workspace(), world, now=world.scenario.end)
    assert _asof(rec, store, world, _asof_join)
    assert grading.grade_asof_join(ctx).level == 4
    rec, ctx = _run(tmp_path, "broken")
    assert not _asof(rec, store, world, O.naive_latest_join)
    assert grading.grade_asof_join(ctx).level == 0


# -- drift: the "quiet" control window placed after the shift ------------------------------
def _drift(rec, drift_world, windows) -> bool:
    samples = O.drift_samples(drift_world, seed=SEED, n=1500, windows=windows)
    drift = {n: O.drift_response(samples["reference"]["amount"], samples[n]["amount"]) for n in ("stable", "current")}
    for name, frame in samples.items():
        rec.save_table(f"drift_{name}", frame)
    rec.save_json("drift_psi", V.drift_psi_record(drift))
    return _check(rec, "1.4-drift-detected", C.drift_check(drift))


def test_a_control_window_after_the_shift_fails_the_check_and_c1_4(tmp_path):
    drift_world = generate_world(Scenario.covariate_drift().with_scale(0.2), seed=SEED)
    rec, ctx = _run(tmp_path, "control")
    assert _drift(rec, drift_world, {"reference": (20, 30), "stable": (30, 40), "current": (45, 60)})
    assert grading.grade_drift_psi(ctx).level == 4
    rec, ctx = _run(tmp_path, "broken")
    assert not _drift(rec, drift_world, {"reference": (20, 30), "stable": (42, 52), "current": (45, 60)})
    assert grading.grade_drift_psi(ctx).level == 2


# -- observability: the user id no longer pseudonymised ------------------------------------
def _log(rec) -> bool:
    rng = np.random.default_rng(SEED)
    served = pd.DataFrame({"request_id": np.arange(60), "user_id": rng.integers(1000, 1100, 60),
                           "amount": np.round(rng.lognormal(3, 1, 60), 2), "feature_age_h": rng.uniform(0, 50, 60),
                           "fallback_used": np.arange(60) % 10 == 0, "score": np.round(rng.random(60), 6)})
    raw = served[["request_id", "user_id", "amount"]]
    log = O.prediction_log(served, model_version="fraud_scorer:1", scored_at=pd.Timestamp("2024-03-01", tz="UTC"),
                           salt="ch01-test", threshold=0.1)
    hits = O.raw_value_hits(log, raw)
    metrics = O.log_metrics(log)
    rules = O.evaluate_rules(metrics)
    rec.save_table("prediction_log", log)
    rec.save_table("scoring_requests", raw)
    rec.save_json("observability", V.observability_record(metrics, rules, rules, hits))
    return _check(rec, "1.5-log-private-and-complete", C.log_privacy_check(log, hits))


def test_a_log_without_the_salted_hash_fails_the_check_and_c1_5(tmp_path, monkeypatch):
    rec, ctx = _run(tmp_path, "control")
    assert _log(rec)
    assert grading.grade_prediction_log(ctx).level == 4
    monkeypatch.setattr(O, "salted_hash", lambda values, *, salt: pd.Series(values).astype(str).to_numpy())
    rec, ctx = _run(tmp_path, "broken")
    assert not _log(rec)
    assert grading.grade_prediction_log(ctx).level == 0
