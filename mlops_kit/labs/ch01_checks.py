"""Chapter 1 lab, verdicts: what each of the chapter's checks compares, as plain functions.

Each ``*_check`` function returns the keyword arguments of ``rec.check`` (``passed``,
``observed``, ``threshold``, ``detail``, ``look_at``) computed from what the run measured,
so the notebook's check cells stay short and a test can run the same verdict on a run
whose control was removed. The two exercise checkers run the learner's code on hand-built
cases with a known answer and compare every part of what it returns.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .._io import sha256_file
from ..errors import ExerciseNotDoneError
from ..quality import SLO, evaluate_slo
from .ch01_ops import future_rows

__all__ = ["quality_slo_problems", "reproducibility_check", "leakage_check", "asof_oracle",
           "asof_exercise_check", "drift_check", "log_privacy_check", "LOG_FIELDS"]

#: the fields an incident needs in every prediction log row
LOG_FIELDS = ("model_version", "feature_age_h", "fallback_used")


def _probe(observations: pd.DataFrame, indicator: str, share: float, n: int = 200) -> pd.DataFrame:
    """``observations`` with ``indicator`` replaced by ``n`` 0/1 reads of which ``share`` are bad."""
    bad = int(round(share * n))
    probe = pd.DataFrame({"indicator": indicator, "value": [1.0] * bad + [0.0] * (n - bad)})
    return pd.concat([observations[observations["indicator"] != indicator], probe], ignore_index=True)


def quality_slo_problems(slo: Any, *, observations: pd.DataFrame, owner: str, null_indicator: str = "feature_null",
                         objective: float = 0.05, window: timedelta = timedelta(days=1)) -> list[str]:
    """What is wrong with the exercise's quality SLO, found by evaluating it.

    The SLO is evaluated on the measured ``observations`` with the null reads replaced by
    probes in which 1 %, ``objective`` and ``objective`` + 1 % of reads are null: it must
    report each share as its observed value, be met up to the objective, breach and fire its
    alert above it. ``owner`` is the owner of the feature view that serves the feature.
    """
    if not isinstance(slo, SLO):
        return [f"quality_slo must be an SLO, got {type(slo).__name__}"]
    problems = []
    if slo.kind != "quality":
        problems.append(f"kind {slo.kind!r}: a share of null feature values is a data-quality objective")
    for share in (0.01, objective, objective + 0.01):
        values = _probe(observations, null_indicator, share)
        result = evaluate_slo(slo, values.loc[values["indicator"] == slo.indicator, "value"].to_numpy(float))
        should_breach = share > objective + 1e-12
        if result.observed is None or abs(result.observed - share) > 1e-9:
            problems.append(f"with {share:.0%} of reads null the SLO observed {result.observed!r}: it must measure "
                            "the null reads and report their share")
            break
        if (result.verdict == "breached") != should_breach or (result.alert is not None) != should_breach:
            problems.append(f"with {share:.0%} of reads null the SLO is {result.verdict} (alert "
                            f"{'fires' if result.alert else 'silent'}); the objective is at most {objective:.0%}")
            break
    if slo.window != window:
        problems.append(f"window {slo.window} is not the one-day window asked for")
    if slo.owner != owner:
        problems.append(f"owner {slo.owner!r} does not own the feature view that serves the feature")
    if slo.alert.severity == "info":
        problems.append("an 'info' alert escalates to nobody")
    elif slo.alert.severity != "warning":
        problems.append(f"severity {slo.alert.severity!r}: a rising null rate degrades scores but does not stop "
                        "serving; it should not wake anyone at night")
    return problems


def reproducibility_check(runs_latest: list[dict[str, Any]], runs_snapshot: list[dict[str, Any]], *, snap_id: str,
                          snapshot_copy: Path, tolerance: float, tamper_refused: bool) -> dict[str, Any]:
    """The mutable table moved between its runs; every snapshot run read ``snap_id`` and agrees."""
    latest_fps = [r["fingerprint"] for r in runs_latest]
    snap_fps = [r["fingerprint"] for r in runs_snapshot]
    aucs = [r["auc"] for r in runs_snapshot]
    spread = max(aucs) - min(aucs) if aucs else float("inf")
    passed = (len(set(latest_fps)) == len(latest_fps) >= 2 and runs_latest[0]["auc"] != runs_latest[-1]["auc"]
              and len(runs_snapshot) >= 2 and set(snap_fps) == {snap_id} and spread <= tolerance
              and sha256_file(snapshot_copy) == snap_id and tamper_refused)
    return {"passed": bool(passed),
            "observed": {"latest_auc": [r["auc"] for r in runs_latest], "snapshot_auc": aucs,
                         "snapshot_fingerprints_read": sorted({f[:12] for f in snap_fps}),
                         "edited_snapshot_refused": tamper_refused},
            "threshold": f"latest runs differ; snapshot runs read {snap_id[:12]} and agree within {tolerance:g}",
            "detail": "training from the mutable table is not reproducible; training from a content-addressed "
                      "snapshot is, and an edited snapshot is refused",
            "look_at": "which bytes each run read: write_latest / write_snapshot / snapshot_run in ch01_repro"}


def leakage_check(aucs: dict[str, float], *, min_gap: float = 0.05) -> dict[str, Any]:
    """The leaky model's offline AUC is inflated over the point-in-time one, and falls in production."""
    inflation = aucs["offline_leaky_auc"] - aucs["offline_pit_auc"]
    fall = aucs["offline_leaky_auc"] - aucs["production_leaky_auc"]
    return {"passed": bool(inflation >= min_gap and fall >= min_gap),
            "observed": {"inflation": round(inflation, 4), "fall_in_production": round(fall, 4)},
            "threshold": {"inflation": f">= {min_gap}", "fall_in_production": f">= {min_gap}"},
            "detail": "the leaky join inflates offline AUC and the inflation vanishes in production",
            "look_at": "the two training sets given to O.leakage_scores"}


def asof_oracle(rows: pd.DataFrame, features: pd.DataFrame, key: str) -> pd.DataFrame:
    """The as-of join by a plain loop: per row, the key's latest feature row at or before it."""
    feature_cols = [c for c in features.columns if c not in (key, "event_timestamp")]
    out = []
    for row in rows.to_dict("records"):
        same = features[(features[key] == row[key]) & (features["event_timestamp"] <= row["event_timestamp"])]
        best = same.loc[same["event_timestamp"].idxmax()] if len(same) else None
        out.append({**row, **{c: (None if best is None else best[c]) for c in feature_cols},
                    "feature_timestamp": None if best is None else best["event_timestamp"]})
    return pd.DataFrame(out)


def _asof_cases() -> tuple[pd.DataFrame, pd.DataFrame]:
    t = pd.Timestamp("2024-03-01", tz="UTC")
    h = pd.Timedelta(hours=1)
    rows = pd.DataFrame({"transaction_id": [11, 12, 13, 14, 15, 16, 17],
                         "user_id": [1, 2, 1, 3, 2, 1, 1],
                         "event_timestamp": [t + 5 * h, t + 1 * h, t + 2 * h, t + 4 * h, t + 9 * h, t, t + 2 * h]})
    features = pd.DataFrame({"user_id": [1, 2, 1, 2, 1],
                             "event_timestamp": [t + 1 * h, t + 3 * h, t + 2 * h, t + 8 * h, t + 6 * h],
                             "account_status": ["active", "active", "frozen", "closed", "closed"],
                             "credit_limit": [1000.0, 500.0, 1000.0, 0.0, 0.0]})
    return rows, features


def _same(a: pd.Series, b: pd.Series) -> bool:
    return len(a) == len(b) and all((pd.isna(x) and pd.isna(y)) or x == y for x, y in zip(a.tolist(), b.tolist()))


def asof_exercise_check(asof_join: Callable[..., pd.DataFrame], pit: pd.DataFrame, *, rows: pd.DataFrame,
                        features: pd.DataFrame, probe: pd.DataFrame, reference: pd.DataFrame,
                        key: str = "user_id") -> dict[str, Any]:
    """Check the learner's ``asof_join`` on hand-built cases and its result ``pit`` on the real rows.

    Hand-built cases (a row exactly at a feature row's time, a row before any feature row, a
    key with no feature rows, rows out of time order) are compared with :func:`asof_oracle`
    column by column; on the real rows, ``pit`` must keep one row per input row in the input
    order, use no future row, pick the same ``feature_timestamp`` as the oracle on ``probe``
    and the same values as the feature store's point-in-time join (``reference``).
    """
    problems = []
    case_rows, case_features = _asof_cases()
    try:
        mine = asof_join(case_rows.copy(), case_features.copy(), key)
    except ExerciseNotDoneError:
        raise
    except Exception as exc:
        mine, problems = None, [f"on the hand-built cases asof_join raised {type(exc).__name__}: {exc}"]
    if mine is not None:
        want = asof_oracle(case_rows, case_features, key)
        if "feature_timestamp" not in mine.columns or len(mine) != len(want):
            problems.append("on the hand-built cases: expected one row per input row with a feature_timestamp")
        elif mine["transaction_id"].tolist() != want["transaction_id"].tolist():
            problems.append(f"on the hand-built cases the rows come back as {mine['transaction_id'].tolist()}, "
                            f"not in their input order {want['transaction_id'].tolist()}")
        else:
            wrong = []
            for column in ("feature_timestamp", "account_status", "credit_limit"):
                got, exp = mine.get(column), want[column]
                if column == "feature_timestamp" and got is not None:
                    got, exp = pd.to_datetime(got, utc=True), pd.to_datetime(exp, utc=True)
                if got is None or not _same(got, exp):
                    wrong.append(column)
            if wrong:
                problems.append(f"on the hand-built cases the columns {wrong} differ from the as-of rule")
    order_ok = "transaction_id" in pit.columns and pit["transaction_id"].tolist() == rows["transaction_id"].tolist()
    future = future_rows(pit) if "feature_timestamp" in pit.columns else -1
    ids = probe["transaction_id"].tolist()
    got = pit.set_index("transaction_id").reindex(ids) if order_ok else None
    agree = {c: float(np.mean([(pd.isna(a) and pd.isna(b)) or a == b for a, b in
                               zip(got[c].tolist(), reference.set_index("transaction_id").loc[ids, c].tolist())]))
             if got is not None and c in got.columns else 0.0 for c in ("account_status", "credit_limit")}
    oracle = asof_oracle(probe.head(300), features, key)
    stamps_ok = got is not None and future == 0 and _same(
        pd.to_datetime(got["feature_timestamp"].iloc[:300], utc=True).reset_index(drop=True),
        pd.to_datetime(oracle["feature_timestamp"], utc=True))
    if not order_ok:
        problems.append("on the real rows: one row per input row, in the input order")
    return {"passed": bool(not problems and future == 0 and stamps_ok and min(agree.values()) == 1.0),
            "observed": {"case_problems": problems, "future_rows": future, "agreement_with_store": agree,
                         "feature_timestamps_match": bool(stamps_ok), "rows": len(pit)},
            "threshold": "hand-built cases right; 0 future rows; timestamps and values equal to the references",
            "detail": "your as-of join picks the right feature row (and its time) for every row, in the input order",
            "look_at": "Exercise 1.2: " + ("; ".join(problems) if problems else "compare your join with the store")}


def drift_check(drift: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The shifted window is mitigated (PSI >= 0.25); the pre-shift window triggers nothing (PSI < 0.1)."""
    cur, stable = drift["current"], drift["stable"]
    passed = cur["psi"] >= 0.25 and cur["action"] == "mitigate" and stable["psi"] < 0.1 and stable["action"] == "none"
    return {"passed": bool(passed), "observed": {k: (v["psi"], v["action"]) for k, v in drift.items()},
            "threshold": "shift: PSI >= 0.25 -> mitigate; stable: PSI < 0.1 -> none",
            "detail": "the shift is detected and mitigated; the pre-shift window triggers nothing",
            "look_at": "the drift windows and the response policy's bands"}


def log_privacy_check(log: pd.DataFrame, hits: dict[str, int]) -> dict[str, Any]:
    """No raw user id or amount in the log; the fields an incident needs are there."""
    missing = [f for f in LOG_FIELDS if f not in log.columns]
    return {"passed": bool(sum(hits.values()) == 0 and not missing), "observed": {"raw_hits": hits, "missing": missing},
            "threshold": "0 raw user ids or amounts; version, feature age and fallback logged",
            "detail": "the prediction log carries the fields incidents need and no raw sensitive value",
            "look_at": "O.prediction_log: salted_hash and bucketize"}
