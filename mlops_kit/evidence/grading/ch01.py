"""Chapter 1 criteria: recompute the chapter's measured effects from the saved samples.

Each function re-derives a claim from raw artifacts with code that shares nothing with the
kit's implementations: snapshot ids are re-hashed, AUCs recomputed from saved scores with a
plain rank formula, the as-of condition re-checked row by row, PSI recomputed
(``recompute.psi_from_samples``), SLO statistics recomputed from the saved observations and
the prediction log compared, request by request, with the raw request fields.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from .base import Grade, GradingContext, MissingEvidence, criterion
from .recompute import psi_from_samples

__all__ = ["grade_snapshots", "grade_leakage_auc", "grade_asof_join", "grade_drift_psi",
           "grade_prediction_log", "grade_slos", "grade_runbook", "rank_auc", "percentile_linear"]

_D = "ch01"


def _get(obj: Any, *keys: str) -> Any:
    try:
        for key in keys:
            obj = obj[key]
    except (KeyError, TypeError, IndexError) as exc:
        raise MissingEvidence(f"missing field {'.'.join(keys)}") from exc
    return obj


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MissingEvidence(f"{what} is not a number: {value!r}")
    return float(value)


def rank_auc(labels: list[int], scores: list[float]) -> float:
    """ROC AUC as the Mann-Whitney statistic with average ranks for ties (a plain loop)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = [r for r, y in zip(ranks, labels) if y == 1]
    n_pos, n_neg = len(pos), len(labels) - len(pos)
    if n_pos == 0 or n_neg == 0:
        raise MissingEvidence("a period holds a single class; AUC is undefined")
    return (sum(pos) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def percentile_linear(values: list[float], q: float) -> float:
    """The q-th percentile with linear interpolation between closest ranks (type 7)."""
    data = sorted(values)
    h = (len(data) - 1) * q / 100
    lo = math.floor(h)
    return data[lo] + (h - lo) * (data[min(lo + 1, len(data) - 1)] - data[lo])


@criterion("C1.1")
def grade_snapshots(ctx: GradingContext) -> Grade:
    """The snapshot file re-hashes to its id; both snapshot runs used it and agree; the two
    runs from the mutable table saw different fingerprints."""
    claim = ctx.read_json(f"{_D}/reproducibility.json")
    snap_id, snap_file = _get(claim, "snapshot_id"), _get(claim, "snapshot_file")
    actual = hashlib.sha256(ctx.path(f"{_D}/{snap_file}").read_bytes()).hexdigest()
    if actual != snap_id:
        return Grade(0, f"{snap_file} hashes to {actual[:12]}..., not the stated id {str(snap_id)[:12]}...")
    runs, latest = list(_get(claim, "snapshot_runs")), list(_get(claim, "latest_runs"))
    tolerance = _number(_get(claim, "tolerance"), "tolerance")
    if len(runs) < 2 or any(r.get("fingerprint") != snap_id for r in runs):
        return Grade(0, "the snapshot runs do not all name the verified snapshot id")
    aucs = [_number(r.get("auc"), "snapshot run auc") for r in runs]
    if max(aucs) - min(aucs) > tolerance or tolerance > 1e-3:
        return Grade(0, f"snapshot runs differ by {max(aucs) - min(aucs):.2e} (tolerance {tolerance:g})")
    if len(latest) < 2 or len({r.get("fingerprint") for r in latest}) < 2:
        return Grade(2, "snapshot verified and reproducible, but the mutable-table runs do not show "
                     "two different fingerprints")
    return Grade(4, f"snapshot {snap_id[:12]}... re-hashed; {len(runs)} runs agree within {tolerance:g}; "
                 f"mutable table gave {len({r.get('fingerprint') for r in latest})} fingerprints")


@criterion("C1.2")
def grade_leakage_auc(ctx: GradingContext) -> Grade:
    """Recompute the four AUCs from ``leakage_scores.parquet`` and check the leakage story's order."""
    stated = ctx.read_json(f"{_D}/leakage_auc.json")
    table = ctx.read_table(f"{_D}/leakage_scores.parquet")
    if not {"period", "is_fraud", "score_leaky", "score_pit"} <= set(table.columns):
        return Grade(0, "leakage_scores.parquet lacks period/is_fraud/score_leaky/score_pit")
    got = {}
    for period, prefix in (("offline_test", "offline"), ("production", "production")):
        part = table[table["period"] == period]
        labels = [int(v) for v in part["is_fraud"].tolist()]
        for model in ("leaky", "pit"):
            got[f"{prefix}_{model}_auc"] = rank_auc(labels, [float(v) for v in part[f"score_{model}"].tolist()])
    gaps = {k: abs(v - _number(_get(stated, k), k)) for k, v in got.items()}
    if max(gaps.values()) > 5e-4:
        worst = max(gaps, key=gaps.get)
        return Grade(0, f"{worst}: stated {stated[worst]:.4f}, recomputed {got[worst]:.4f}")
    inflated = got["offline_leaky_auc"] >= got["offline_pit_auc"] + 0.05
    collapses = got["production_leaky_auc"] <= got["offline_leaky_auc"] - 0.05
    summary = ", ".join(f"{k} {v:.3f}" for k, v in got.items())
    if inflated and collapses:
        return Grade(4, f"recomputed {summary}: the leaky offline AUC is inflated and falls in production")
    return Grade(2, f"recomputed {summary} match, but the leakage ordering is not shown")


@criterion("C1.3")
def grade_asof_join(ctx: GradingContext) -> Grade:
    """Re-check the as-of condition on the saved join sample: no point-in-time row uses a
    feature row stamped after it; the naive join does; the stated counts match."""
    claim = ctx.read_json(f"{_D}/asof_join.json")
    table = ctx.read_table(f"{_D}/asof_join_sample.csv")
    need = {"event_timestamp", "naive_feature_timestamp", "pit_feature_timestamp"}
    if not need <= set(table.columns):
        return Grade(0, f"asof_join_sample.csv lacks {sorted(need - set(table.columns))}")
    import pandas as pd

    event = pd.to_datetime(table["event_timestamp"], utc=True)
    counts = {}
    for name in ("naive", "pit"):
        feature = pd.to_datetime(table[f"{name}_feature_timestamp"], utc=True)
        counts[name] = sum(1 for e, f in zip(event.tolist(), feature.tolist()) if not pd.isna(f) and f > e)
    stated = {k: int(_number(_get(claim, f"sample_future_rows_{k}"), k)) for k in ("naive", "pit")}
    if stated != counts:
        return Grade(0, f"stated future-row counts {stated} differ from recomputed {counts}")
    if counts["pit"] == 0 and counts["naive"] > 0:
        return Grade(4, f"{len(table)} sampled rows: naive join used {counts['naive']} future feature rows, "
                     "the point-in-time join none")
    return Grade(0, f"recomputed future rows {counts}: the point-in-time join must use none and the naive one some")


@criterion("C1.4")
def grade_drift_psi(ctx: GradingContext) -> Grade:
    """Recompute the PSI of the shifted and the stable sample against the reference."""
    claim = ctx.read_json(f"{_D}/drift_psi.json")
    ref = ctx.read_table(f"{_D}/{_get(claim, 'reference')}")
    notes, values = [], {}
    for item in list(_get(claim, "features")):
        cur = ctx.read_table(f"{_D}/{_get(item, 'current')}")
        column = _get(item, "column")
        if column not in ref.columns or column not in cur.columns:
            return Grade(0, f"column {column!r} is not in both samples")
        value, _ = psi_from_samples(ref[column], cur[column], bins=int(item.get("bins", 10)))
        stated = _number(item.get("psi"), "psi")
        if abs(value - stated) > 5e-4:
            return Grade(0, f"{item.get('current')}: stated PSI {stated:.4f}, recomputed {value:.4f}")
        values[str(item.get("current"))] = (value, item.get("action"))
        notes.append(f"{item.get('current')}: {value:.4f} -> {item.get('action')}")
    shifted = [v for v, a in values.values() if v >= 0.25 and a in ("page", "mitigate")]
    quiet = [v for v, a in values.values() if v < 0.1 and a in ("none", "log")]
    if shifted and quiet:
        return Grade(4, "; ".join(notes))
    return Grade(2, "PSI recomputed but the shift/no-shift contrast with its responses is missing: " + "; ".join(notes))


@criterion("C1.5")
def grade_prediction_log(ctx: GradingContext) -> Grade:
    """Compare the prediction log with the raw requests: no raw user id or amount; buckets and
    pseudonyms consistent; required fields present; the stated metrics recomputed."""
    log = ctx.read_table(f"{_D}/prediction_log.csv")
    raw = ctx.read_table(f"{_D}/scoring_requests.csv")
    spec = ctx.read_json(f"{_D}/observability.json")
    need = {"request_id", "model_version", "feature_age_h", "fallback_used", "user_ref", "amount_bucket", "score"}
    if not need <= set(log.columns):
        return Grade(0, f"prediction_log.csv lacks {sorted(need - set(log.columns))}")
    merged = log.merge(raw[["request_id", "user_id", "amount"]], on="request_id", suffixes=("", "__raw"))
    if len(merged) != len(log):
        return Grade(0, "some logged requests are not in scoring_requests.csv")
    raw_cols = {"user_id__raw" if "user_id__raw" in merged else "user_id", "amount__raw" if "amount__raw" in merged else "amount"}
    logged = [c for c in log.columns if c != "request_id"]
    for row in merged.to_dict("records"):
        texts = {str(row[c]) for c in logged}
        for col in raw_cols:
            if str(row[col]) in texts:
                return Grade(0, f"request {row['request_id']}: the raw {col.split('__')[0]} appears in the log")
    edges = [float(e) for e in _get(spec, "amount_edges")]
    for row in merged.to_dict("records"):
        amount = float(row["amount__raw" if "amount__raw" in row else "amount"])
        below = [e for e in edges if amount < e]
        label = f"<{edges[0]:g}" if amount < edges[0] else f">={edges[-1]:g}" if not below else \
            f"[{max(e for e in edges if e <= amount):g}, {min(below):g})"
        if str(row["amount_bucket"]) != label:
            return Grade(0, f"request {row['request_id']}: bucket {row['amount_bucket']!r}, expected {label!r}")
    uid = "user_id__raw" if "user_id__raw" in merged else "user_id"
    pairs = set(zip(merged[uid].tolist(), merged["user_ref"].tolist()))
    if len({u for u, _ in pairs}) != len(pairs) or len({r for _, r in pairs}) != len(pairs) or \
            not all(re.fullmatch(r"[0-9a-f]{8,64}", str(r)) for _, r in pairs):
        return Grade(0, "user_ref is not a consistent one-to-one hex pseudonym of the user id")
    fallback = sum(str(v).lower() == "true" for v in log["fallback_used"].tolist()) / len(log)
    stated = _number(_get(spec, "metrics", "fallback_rate"), "fallback_rate")
    if abs(fallback - stated) > 1e-4:
        return Grade(0, f"stated fallback_rate {stated} but the log gives {fallback:.4f}")
    threshold = _number(_get(spec, "fallback_rule_threshold"), "fallback_rule_threshold")
    if bool(_get(spec, "fallback_rule_fires")) != (fallback > threshold):
        return Grade(0, "the fallback rule's stated verdict contradicts the recomputed rate")
    return Grade(4, f"{len(log)} log rows checked against raw requests: no raw values, buckets and pseudonyms "
                 f"consistent; fallback rate {fallback:.3f} recomputed")


@criterion("C1.6")
def grade_slos(ctx: GradingContext) -> Grade:
    """Recompute every SLO's statistic and verdict from the saved observations; each SLO has an
    owner and an alert, and the set covers freshness, correctness, latency p95 and p99, quality."""
    slos = list(_get(ctx.read_json(f"{_D}/slos.json"), "slos"))
    results = {r["slo"]: r for r in _get(ctx.read_json(f"{_D}/slo_results.json"), "results")}
    obs = ctx.read_table(f"{_D}/slo_observations.csv")
    notes, covered = [], set()
    for slo in slos:
        name = _get(slo, "name")
        if not slo.get("owner") or not isinstance(slo.get("alert"), dict) or not slo["alert"].get("route"):
            return Grade(0, f"SLO {name!r} has no owner or no alert route")
        values = [float(v) for v in obs.loc[obs["indicator"] == slo["indicator"], "value"].tolist()]
        if not values or name not in results:
            return Grade(0, f"SLO {name!r}: no observations or no stated result")
        stat = slo["statistic"]
        value = sum(values) / len(values) if stat == "rate" else percentile_linear(values, float(stat[1:]))
        verdict = "breached" if value > float(slo["objective"]) else "met"
        if len(values) < int(slo.get("min_samples", 1)):
            verdict = "inconclusive"
        stated = results[name]
        if stated.get("verdict") != verdict or abs(float(stated.get("observed")) - value) > 0.01 + 1e-3 * abs(value):
            return Grade(0, f"SLO {name!r}: stated {stated.get('observed')} {stated.get('verdict')}, "
                         f"recomputed {value:.4f} {verdict}")
        covered.add(f"{slo['kind']}:{stat}" if slo["kind"] == "latency" else slo["kind"])
        notes.append(f"{name} {verdict}")
    need = {"freshness", "correctness", "latency:p95", "latency:p99", "quality"}
    if need <= covered:
        return Grade(4, "; ".join(notes))
    return Grade(2, f"verdicts recomputed, but no SLO for {sorted(need - covered)}")


@criterion("C1.7")
def grade_runbook(ctx: GradingContext) -> Grade:
    """The runbook's taxonomy table names every incident class with a severity, detection
    signals and an escalation path of at least two levels."""
    text = ctx.path(f"{_D}/runbook.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and re.fullmatch(r"SEV\d", cells[1]):
            rows[cells[0]] = cells
    need = ("data outage", "feature skew", "model regression", "latency", "cost spike")
    missing = [n for n in need if n not in rows]
    if missing:
        return Grade(0, f"the taxonomy lacks {missing}")
    short = [n for n in need if len(rows[n][5].split("->")) < 2 or not rows[n][2]]
    if short:
        return Grade(2, f"incomplete escalation or detection for {short}")
    return Grade(4, f"{len(need)} incident classes with severity, detection signals and escalation")
