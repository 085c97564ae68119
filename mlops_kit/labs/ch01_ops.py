"""Chapter 1 lab, operations: the failure modes made to happen, the prediction log, the runbook.

* skew: the online service's hand-written null defaults vs the offline feature code;
* leakage: a leaky training set (future labels, today's profile) vs the point-in-time one,
  with the scores kept so a grader can recompute every AUC; a naive "latest" join;
* drift: PSI of transaction amounts before and after the covariate shift;
* outage: a replica online store that restored only some key shards, and the fallback model;
* observability: a structured, privacy-scrubbed prediction log, metrics and rules tied to actions;
* the baseline runbook: incident taxonomy, severities, escalation paths, rendered as Markdown.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from .._time import ensure_utc
from ..datasets import World, fit_evaluate, time_split, training_set
from ..errors import ValidationError
from ..features import FeatureStore
from ..governance import bucketize, salted_hash
from ..quality import ResponsePolicy, column_drift, psi
from .ch01 import PROFILE_VIEW, USER_FEATURES, USER_VIEW

__all__ = [
    "serving_defaults", "production_model", "as_online_requests", "skew_report", "skew_experiment",
    "leakage_scores", "naive_latest_join", "future_rows", "DRIFT_WINDOWS", "drift_samples", "drift_response", "fit_fallback", "serve_requests", "AMOUNT_EDGES",
    "prediction_log", "raw_value_hits", "METRIC_RULES", "log_metrics", "evaluate_rules",
    "TAXONOMY", "PLATFORM_SIGNALS", "check_taxonomy", "render_runbook",
]

_NULL_DEFAULT_COLUMNS = ("amount_avg_7d", "amount_avg_30d", "fraud_rate_30d", "credit_limit")


# -- training-serving skew ----------------------------------------------------------------
def serving_defaults(frame: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """The online service's own null handling (re-written by hand in another code base).

    Missing averages, fraud rates and credit limits become the training mean (the offline
    feature code, ``feature_matrix``, turns them into 0 and ratios into 1).
    """
    out = frame.copy()
    for name in _NULL_DEFAULT_COLUMNS:
        out[name] = out[name].astype("float64").fillna(float(train[name].astype("float64").mean()))
    return out


def production_model(frame: pd.DataFrame, *, seed: int, flag_share: float = 0.02) -> tuple[Any, Any, float]:
    """The production scorer: trained on the first 70 % of ``frame`` (by time).

    Returns ``(split, scorer, threshold)``; ``threshold`` flags ``flag_share`` of the training rows.
    """
    if not 0 < flag_share < 0.5:
        raise ValidationError(f"production_model: flag_share must be in (0, 0.5), got {flag_share!r}.",
                              fix="Use e.g. flag_share=0.02.")
    split = time_split(frame, test_share=0.3)
    report = fit_evaluate(split.train, split.test, model="logistic", seed=seed)
    return split, report, float(np.quantile(report.predict_proba(split.train), 1 - flag_share))


def as_online_requests(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as the scoring service receives them: a JSON payload per request, parsed back."""
    return pd.DataFrame(json.loads(frame.to_json(orient="records", date_format="iso")))


def skew_report(scorer: Any, offline: pd.DataFrame, online_paths: dict[str, pd.DataFrame], *,
                threshold: float) -> dict[str, Any]:
    """Score ``offline`` and each online path's frame (same rows); per path, how scores differ.

    ``score_mismatch_rate``: share of rows whose score differs by more than 1e-6;
    ``decision_flip_rate``: share whose decision flips at ``threshold``.
    """
    base = scorer.predict_proba(offline)
    result: dict[str, Any] = {"rows": int(len(offline)), "threshold": round(threshold, 6),
                              "rows_with_a_null_default": int(offline[list(_NULL_DEFAULT_COLUMNS)]
                                                              .isna().any(axis=1).sum())}
    for path, frame in online_paths.items():
        if len(frame) != len(offline):
            raise ValidationError(f"skew_report: path {path!r} has {len(frame)} rows, offline {len(offline)}.",
                                  fix="Score the same rows on every path.")
        online = scorer.predict_proba(frame)
        result[path] = {"score_mismatch_rate": round(float((np.abs(online - base) > 1e-6).mean()), 6),
                        "decision_flip_rate": round(float(((online >= threshold) != (base >= threshold)).mean()), 6),
                        "max_abs_score_diff": round(float(np.abs(online - base).max()), 6)}
    return result


def skew_experiment(world: World, *, seed: int, flag_share: float = 0.02,
                    frame: pd.DataFrame | None = None) -> tuple[dict[str, Any], Any]:
    """:func:`production_model`, then :func:`skew_report` for the hand-written online defaults
    and for the shared definition, both applied to the rows as the service receives them."""
    split, scorer, threshold = production_model(training_set(world) if frame is None else frame, seed=seed,
                                                flag_share=flag_share)
    received = as_online_requests(split.test)
    paths = {"hand_written_defaults": serving_defaults(received, split.train), "shared_definition": received}
    return skew_report(scorer, split.test, paths, threshold=threshold), scorer


# -- leakage -------------------------------------------------------------------------------
def leakage_scores(world: World, *, seed: int, frame: pd.DataFrame | None = None,
                   leaky_frame: pd.DataFrame | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Leaky vs point-in-time training, with every score kept.

    Rows are split in time: first half trains, the next quarter is the offline test, the last
    quarter is production (where only point-in-time features exist). Returns the four AUCs and
    a frame ``period, is_fraud, score_leaky, score_pit`` (offline rows score each model on its
    own features; production rows score both on point-in-time features). ``frame`` is
    ``training_set(world)`` and ``leaky_frame`` ``training_set(world, leaky=True)`` when already
    computed (same rows, same order).
    """
    honest = training_set(world) if frame is None else frame
    leaky = training_set(world, leaky=True) if leaky_frame is None else leaky_frame
    if len(leaky) != len(honest) or not leaky["transaction_id"].equals(honest["transaction_id"]):
        raise ValidationError("leakage_scores: frame and leaky_frame must hold the same rows in the same order.",
                              fix="Build both with training_set(world) and training_set(world, leaky=True).")
    first = time_split(honest, test_share=0.5)
    later = time_split(first.test, test_share=0.5)
    ts = honest["event_timestamp"]
    train = (ts < pd.Timestamp(first.cutoff)).to_numpy()
    offline = ((ts >= pd.Timestamp(first.cutoff)) & (ts < pd.Timestamp(later.cutoff))).to_numpy()
    production = (ts >= pd.Timestamp(later.cutoff)).to_numpy()
    pit = fit_evaluate(honest[train], honest[offline], model="logistic", seed=seed)
    lk = fit_evaluate(leaky[train], leaky[offline], model="logistic", seed=seed)
    parts = [pd.DataFrame({"period": "offline_test", "is_fraud": honest.loc[offline, "is_fraud"].astype(int),
                           "score_leaky": lk.predict_proba(leaky[offline]),
                           "score_pit": pit.predict_proba(honest[offline])}),
             pd.DataFrame({"period": "production", "is_fraud": honest.loc[production, "is_fraud"].astype(int),
                           "score_leaky": lk.predict_proba(honest[production]),
                           "score_pit": pit.predict_proba(honest[production])})]
    sample = pd.concat(parts, ignore_index=True)
    sample[["score_leaky", "score_pit"]] = sample[["score_leaky", "score_pit"]].round(8)
    aucs = {"offline_leaky_auc": lk.auc, "offline_pit_auc": pit.auc,
            "production_leaky_auc": lk.auc_on(honest[production]),
            "production_pit_auc": pit.auc_on(honest[production])}
    return {k: round(v, 6) for k, v in aucs.items()}, sample


def naive_latest_join(rows: pd.DataFrame, features: pd.DataFrame, key: str) -> pd.DataFrame:
    """The leaky join: every row gets its key's *latest* feature row, whatever the row's time.

    The feature row's time is kept as ``feature_timestamp``.
    """
    latest = (features.sort_values("event_timestamp", kind="stable").groupby(key, as_index=False).tail(1)
              .rename(columns={"event_timestamp": "feature_timestamp"}))
    return rows.merge(latest, on=key, how="left", validate="many_to_one")


def future_rows(joined: pd.DataFrame) -> int:
    """Rows that used a feature row stamped after the row's own ``event_timestamp``."""
    if not {"event_timestamp", "feature_timestamp"} <= set(joined.columns):
        raise ValidationError("future_rows: needs 'event_timestamp' and 'feature_timestamp' columns.",
                              fix="Keep the feature row's time as feature_timestamp in your join.")
    return int((joined["feature_timestamp"] > joined["event_timestamp"]).sum())


# -- drift ---------------------------------------------------------------------------------
#: the default drift windows, in days since the world's start: ``(first, last)`` (end excluded)
DRIFT_WINDOWS = {"reference": (20, 30), "stable": (30, 40), "current": (45, 60)}


def drift_samples(world: World, *, seed: int, n: int = 4000,
                  windows: dict[str, tuple[int, int]] | None = None) -> dict[str, pd.DataFrame]:
    """Seeded amount samples (column ``amount``), one per window of ``windows``.

    ``windows`` maps a name to ``(first_day, end_day)`` since the world's start; it must hold
    ``reference``. Default :data:`DRIFT_WINDOWS`: reference days 20-30, ``stable`` days 30-40
    (before the covariate shift) and ``current`` days 45-60 (after it).
    """
    windows = DRIFT_WINDOWS if windows is None else windows
    if "reference" not in windows or not all(isinstance(w, tuple) and len(w) == 2 and 0 <= w[0] < w[1]
                                             for w in windows.values()):
        raise ValidationError(f"drift_samples: windows must map names (incl. 'reference') to (first_day, end_day), "
                              f"got {windows!r}.", fix="Pass e.g. {'reference': (20, 30), 'current': (45, 60)}.")
    start = world.scenario.start
    txn = world.transactions
    rng = np.random.default_rng(seed)

    def window(lo: int, hi: int) -> pd.DataFrame:
        mask = (txn["event_timestamp"] >= pd.Timestamp(start + timedelta(days=lo))) & \
               (txn["event_timestamp"] < pd.Timestamp(start + timedelta(days=hi)))
        values = txn.loc[mask, "amount"].to_numpy(np.float64)
        if values.size == 0:
            raise ValidationError(f"drift_samples: no transactions in days {lo}-{hi}.",
                                  fix=f"Use windows inside the world's {world.scenario.days} days.")
        take = rng.choice(values.size, size=min(n, values.size), replace=False)
        return pd.DataFrame({"amount": np.sort(values[take])})

    return {name: window(lo, hi) for name, (lo, hi) in windows.items()}


def drift_response(reference: Any, current: Any, *, magnitude: float = 0.0, criticality: str = "critical",
                   policy: ResponsePolicy | None = None) -> dict[str, Any]:
    """PSI of ``current`` scaled by ``1 + magnitude`` against ``reference``, the drift test's verdict
    (``column_drift``), and ``policy``'s response (default :meth:`ResponsePolicy.default`) for a
    feature of ``criticality`` given both."""
    if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)) or not -0.9 <= magnitude <= 5:
        raise ValidationError(f"drift_response: magnitude must be in [-0.9, 5], got {magnitude!r}.",
                              fix="Pass e.g. magnitude=0.3 (amounts 30 % higher).")
    ref, cur = np.asarray(reference, float), np.asarray(current, float) * (1 + magnitude)
    value = psi(ref, cur)
    test = column_drift(ref, cur, column="amount")   # the drift test's verdict goes into the response too
    response = (ResponsePolicy.default() if policy is None else policy).evaluate(
        criticality=criticality, psi=value, test_failed=test.verdict == "drift")
    return {"psi": round(value, 4), "verdict": test.verdict, "level": response.level, "action": response.action,
            "reason": response.reason}


# -- outage and fallback -------------------------------------------------------------------
_REQUEST = ("amount", "merchant_category", "channel")


def _request_matrix(frame: pd.DataFrame, categories: dict[str, list[str]]) -> np.ndarray:
    cols = [np.log1p(frame["amount"].to_numpy(np.float64))]
    for name, values in categories.items():
        cols += [(frame[name].astype(str) == v).to_numpy(np.float64) for v in values]
    return np.column_stack(cols)


def fit_fallback(train: pd.DataFrame) -> Any:
    """The baseline model served when features are missing: request fields only."""
    categories = {n: sorted(train[n].astype(str).unique()) for n in ("merchant_category", "channel")}
    model = LogisticRegression(max_iter=2000).fit(_request_matrix(train, categories),
                                                  train["is_fraud"].astype(int))
    return lambda frame: model.predict_proba(_request_matrix(frame, categories))[:, 1]


def serve_requests(store: FeatureStore, requests: pd.DataFrame, model: Any, fallback: Any, *,
                   now: datetime, use_fallback: bool = True) -> pd.DataFrame:
    """Score ``requests`` with features read from ``store``'s online store at ``now``.

    A request whose user features are missing (unknown key or expired) is scored by
    ``fallback`` when ``use_fallback``; otherwise it is not served (``score`` null).
    Returns one row per request: ``fallback_used``, ``served``, ``feature_age_h``, ``score``.
    """
    now = ensure_utc(now, name="serve_requests(now)")
    refs = [f"{USER_VIEW}:{f}" for f in USER_FEATURES] + \
           [f"{PROFILE_VIEW}:{f}" for f in ("account_status", "credit_limit", "risk_tier")]
    keys = [{"user_id": int(u)} for u in requests["user_id"]]
    online = pd.DataFrame(store.get_online_features(refs, keys, include_timestamps=True))
    stamp = pd.to_datetime(online[f"{USER_VIEW}__event_timestamp"], utc=True)
    missing = stamp.isna().to_numpy()
    frame = requests.drop(columns=[c for c in online.columns if c in requests.columns and c != "user_id"])
    frame = pd.concat([frame.reset_index(drop=True), online.drop(columns=["user_id"])], axis=1)
    scores = np.full(len(frame), np.nan)
    if (~missing).any():
        scores[~missing] = model.predict_proba(frame[~missing])
    if use_fallback and missing.any():
        scores[missing] = fallback(frame[missing])
    out = requests[["request_id", "user_id", "amount", "is_fraud"]].reset_index(drop=True)
    out["feature_age_h"] = ((pd.Timestamp(now) - stamp).dt.total_seconds() / 3600).round(2)
    out["fallback_used"] = missing & use_fallback
    out["served"] = ~np.isnan(scores)
    out["score"] = np.round(scores, 6)
    return out


# -- observability -------------------------------------------------------------------------
AMOUNT_EDGES = (10, 50, 200, 1000)


def prediction_log(served: pd.DataFrame, *, model_version: str, scored_at: datetime, salt: str,
                   threshold: float) -> pd.DataFrame:
    """The structured prediction log: no raw user id or amount (salted hash, amount bucket)."""
    at = ensure_utc(scored_at, name="prediction_log(scored_at)").isoformat()
    return pd.DataFrame({
        "request_id": served["request_id"].to_numpy(), "scored_at": at, "model_version": model_version,
        "user_ref": salted_hash(served["user_id"].astype("int64").astype(str), salt=salt),
        "amount_bucket": bucketize(served["amount"], edges=list(AMOUNT_EDGES)),
        "feature_age_h": served["feature_age_h"].to_numpy(), "fallback_used": served["fallback_used"].to_numpy(),
        "score": served["score"].to_numpy(), "decision": np.where(served["score"] >= threshold, "review", "approve"),
    })


def raw_value_hits(log: pd.DataFrame, raw: pd.DataFrame, *, key: str = "request_id") -> dict[str, int]:
    """Per sensitive column of ``raw``: log rows where some cell equals that row's raw value as text.

    ``raw`` holds ``key`` and the sensitive columns of the requests the log describes; rows
    are matched on ``key``, so coincidences between unrelated rows do not count.
    """
    if key not in log.columns or key not in raw.columns:
        raise ValidationError(f"raw_value_hits: both frames need the key column {key!r}.",
                              fix="Log the request id with every prediction.")
    merged = log.merge(raw, on=key, how="inner", suffixes=("", "__raw"))
    cells = merged[[c for c in log.columns if c != key]].astype(str)
    hits = {}
    for column in (c for c in raw.columns if c != key):
        source = merged[f"{column}__raw" if f"{column}__raw" in merged.columns else column].astype(str)
        hits[column] = int(cells.eq(source, axis=0).any(axis=1).sum())
    return hits


METRIC_RULES = (
    {"metric": "fallback_rate", "threshold": 0.05, "window": "10 min", "action": "page on-call; keep the "
     "baseline model serving; fail over or re-materialize the online store", "owner": "risk-features"},
    {"metric": "feature_age_p95_h", "threshold": 120.0, "window": "1 h", "action": "ticket; check the "
     "materialization job and its watermark", "owner": "risk-features"},
    {"metric": "unserved_rate", "threshold": 0.001, "window": "5 min", "action": "page on-call; enable the "
     "fallback flag", "owner": "ml-platform"},
)


def log_metrics(log: pd.DataFrame) -> dict[str, float]:
    """The monitoring metrics computed from a prediction log."""
    ages = log["feature_age_h"].dropna().to_numpy(float)
    return {"requests": int(len(log)), "fallback_rate": round(float(log["fallback_used"].mean()), 4),
            "feature_age_p95_h": round(float(np.percentile(ages, 95)), 2) if ages.size else float("inf"),
            "unserved_rate": round(float(log["score"].isna().mean()), 4),
            "score_mean": round(float(log["score"].mean()), 4)}


def evaluate_rules(metrics: dict[str, float], rules: tuple[dict[str, Any], ...] = METRIC_RULES) -> pd.DataFrame:
    """One row per rule: the metric value, its threshold, whether it fires, and the action."""
    rows = []
    for rule in rules:
        if rule["metric"] not in metrics:
            raise ValidationError(f"evaluate_rules: no metric {rule['metric']!r} in {sorted(metrics)}.",
                                  fix="Compute it in log_metrics() or fix the rule's metric name.")
        value = metrics[rule["metric"]]
        rows.append({"metric": rule["metric"], "value": value, "threshold": rule["threshold"],
                     "fires": bool(value > rule["threshold"]), "action": rule["action"], "owner": rule["owner"]})
    return pd.DataFrame(rows)


# -- the baseline runbook ------------------------------------------------------------------
TAXONOMY = (
    {"incident": "data outage", "signals": ["FeatureFreshnessBurn", "fallback_rate"], "severity": "SEV1",
     "first_response": "serve the baseline model for requests without features; restore or fail over the online "
     "store; re-materialize from the last watermark", "rollback_unit": "online store / materialization job",
     "escalation": ["risk-features on-call", "ml-platform on-call", "incident commander"]},
    {"incident": "feature skew", "signals": ["FeatureParityBroken"], "severity": "SEV2",
     "first_response": "compare offline and online values for sampled keys; pin the serving code to the shared "
     "feature definition; disable the skewed feature by flag", "rollback_unit": "feature view version",
     "escalation": ["risk-features on-call", "feature owner", "ml lead"]},
    {"incident": "model regression", "signals": ["drift_psi_major"], "severity": "SEV2",
     "first_response": "check drift and segment metrics; shadow the previous version; roll the deployed-prod "
     "alias back if the KPI proxy confirms", "rollback_unit": "registry alias deployed-prod",
     "escalation": ["ml-training on-call", "model owner", "ml lead"]},
    {"incident": "latency", "signals": ["OnlineLatencyP95", "OnlineLatencyP99"], "severity": "SEV2",
     "first_response": "check online-store read latency and saturation; shed load to the fallback; scale reads",
     "rollback_unit": "serving deployment", "escalation": ["ml-platform on-call", "sre on-call",
                                                           "incident commander"]},
    {"incident": "cost spike", "signals": ["rows_scanned_per_run"], "severity": "SEV3",
     "first_response": "find the job that rescans (full instead of incremental materialization, runaway "
     "backfill); pause it; restore the incremental schedule", "rollback_unit": "job schedule",
     "escalation": ["ml-platform on-call", "finops owner"]},
)
#: signals the platform emits outside the SLOs and log rules: the drift response's "major" level
#: and the materialization report's ``rows_scanned`` per run (a full rescan is a cost spike)
PLATFORM_SIGNALS = ("drift_psi_major", "rows_scanned_per_run")
REQUIRED_INCIDENTS = ("data outage", "feature skew", "model regression", "latency", "cost spike")
SEVERITIES = {"SEV1": "customer impact now: page, 15 min to acknowledge",
              "SEV2": "degraded or at risk: page in business hours, 1 h to acknowledge",
              "SEV3": "no customer impact: ticket, next business day"}


def check_taxonomy(taxonomy: tuple[dict[str, Any], ...], known_signals: set[str]) -> list[str]:
    """Problems with a taxonomy: a missing class, unknown severity or signal, short escalation."""
    problems = []
    names = [t.get("incident") for t in taxonomy]
    problems += [f"incident class {name!r} is missing" for name in REQUIRED_INCIDENTS if name not in names]
    for item in taxonomy:
        name = item.get("incident")
        if item.get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity {item.get('severity')!r} is not one of {sorted(SEVERITIES)}")
        unknown = [s for s in item.get("signals", []) if s not in known_signals]
        if not item.get("signals") or unknown:
            problems.append(f"{name}: detection signals {unknown or '(none)'} are not defined alerts or metrics")
        if len(item.get("escalation", [])) < 2:
            problems.append(f"{name}: escalation path needs at least two levels")
    return problems


def render_runbook(taxonomy: tuple[dict[str, Any], ...], *, slos: list[Any],
                   rules: tuple[dict[str, Any], ...] = METRIC_RULES) -> str:
    """The baseline runbook as Markdown: severities, taxonomy, signals, escalation, SLOs, rules."""
    lines = ["# Baseline runbook: fraud scoring", "", "## Severities", "", "| severity | meaning |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in SEVERITIES.items()]
    lines += ["", "## Incident taxonomy", "",
              "| incident | severity | detected by | first response | rollback unit | escalation |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {t['incident']} | {t['severity']} | {', '.join(t['signals'])} | {t['first_response']} | "
              f"{t['rollback_unit']} | {' -> '.join(t['escalation'])} |" for t in taxonomy]
    lines += ["", "## SLOs and their alerts", "", "| SLO | objective | alert | severity | route | owner |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {s.name} | {s.statistic} {s.indicator} <= {s.objective:g} | {s.alert.name} | "
              f"{s.alert.severity} | {s.alert.route} | {s.owner} |" for s in slos]
    lines += ["", "## Log metrics and the actions they trigger", "", "| metric | fires above | window | action | owner |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['metric']} | {r['threshold']:g} | {r['window']} | {r['action']} | {r['owner']} |" for r in rules]
    return "\n".join(lines) + "\n"
