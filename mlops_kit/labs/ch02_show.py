"""Chapter 2 lab: figures, small tables and evidence records that keep the notebook's cells short.

Nothing here measures anything new: each function draws, assembles or summarizes results the
notebook computed with ``ch02`` and ``ch02_sync``, so the evidence stays exactly what the cells show.

>>> import pandas as pd
>>> by_phase(pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [2]}))["phase"].tolist()
['before', 'after']
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from ..features import FeatureStore, FeatureView
from .ch02_sync import p95, ttl_window

__all__ = [
    "AUDIT_COLUMNS", "late_delay_figure", "late_summary", "auc_figure", "outage_window", "ttl_reading",
    "ttl_slider", "run_table", "age_figure", "by_phase", "freshness_summary", "parity_summary",
    "version_2_problems", "pinned_reads", "definitions_record", "contract_record",
]

#: Columns of the training samples saved for the leakage audit (keys, times and stamped features).
AUDIT_COLUMNS = ["transaction_id", "user_id", "merchant_id", "event_timestamp", "fraud_rate_30d", "risk_ts",
                 "risk_created", "account_status", "profile_ts", "profile_created"]


# -- section 2: late events ---------------------------------------------------------------
def late_delay_figure(late: pd.DataFrame, late_share: float) -> plt.Figure:
    """Histogram of the ingestion delay of late transactions (``ch02.late_events`` output)."""
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(late.loc[late["late"], "delay_h"], bins=40, color="tab:orange")
    ax.set_xlabel("ingestion delay of late transactions (hours)")
    ax.set_ylabel("transactions")
    ax.set_title(f"{late_share:.1%} of transactions arrive more than 1 h late")
    fig.tight_layout()
    return fig


def late_summary(late: pd.DataFrame, late_share: float, skew: dict[str, Any]) -> dict[str, Any]:
    """The ``late_events`` record: late share and count, p95 delay of late rows, skew vs serving."""
    return {"late_share": round(late_share, 5), "late_transactions": int(late["late"].sum()),
            "p95_delay_h_late": round(float(late.loc[late["late"], "delay_h"].quantile(0.95)), 2),
            "skew_vs_serving": skew}


# -- section 3: point-in-time correctness ---------------------------------------------------
def auc_figure(aucs: pd.DataFrame) -> plt.Figure:
    """Offline vs production ROC AUC per training set (``ch02.evaluate_variants`` output)."""
    fig, ax = plt.subplots(figsize=(7, 3))
    x = range(len(aucs))
    ax.bar([i - 0.2 for i in x], aucs["offline_auc"], width=0.4, label="offline test")
    ax.bar([i + 0.2 for i in x], aucs["production_auc"], width=0.4, label="production")
    ax.set_xticks(list(x), aucs["training_set"])
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("ROC AUC")
    ax.legend()
    ax.set_title("The leaky join wins offline; its AUC falls in production")
    fig.tight_layout()
    return fig


def outage_window(gappy: pd.DataFrame, at: datetime, *, before: timedelta = timedelta(days=14),
                  after: timedelta = timedelta(days=2)) -> tuple[int, pd.DataFrame]:
    """The outage merchant with the highest mean risk, and its risk rows around ``at``.

    Merchants in the outage have fewer rows than the others; rows strictly inside
    ``(at - before, at + after)`` are returned.
    """
    counts = gappy.groupby("merchant_id").size()
    in_gap = gappy[gappy["merchant_id"].isin(counts[counts < counts.max()].index)]
    hit = in_gap.groupby("merchant_id")["fraud_rate_30d"].mean().idxmax()
    rows = gappy[gappy["merchant_id"] == hit]
    window = rows[(rows["event_timestamp"] > at - before) & (rows["event_timestamp"] < at + after)]
    return hit, window


def ttl_reading(seen: pd.DataFrame, *, value: str = "fraud_rate_30d") -> Any:
    """The value a join reads from a ``ttl_window`` table: the winner's, or the text for null."""
    winner = seen.loc[seen["status"] == "winner", value]
    return "null (fallback)" if winner.empty else winner.iloc[0]


def ttl_slider(window: pd.DataFrame, at: datetime, *, start_hours: int = 24) -> Any:
    """A TTL slider (hours) that prints ``ttl_window`` and the value read; wraps ``ttl_window``."""
    import ipywidgets as widgets

    slider = widgets.IntSlider(value=min(max(int(start_hours), 1), 336), min=1, max=336, step=1, description="TTL (h)")
    shown = widgets.Output()

    def on_change(change: dict[str, Any]) -> None:
        shown.clear_output(wait=True)
        with shown:
            seen = ttl_window(window, at, timedelta(hours=change["new"]))
            print(seen.to_string(index=False))
            print("value read:", ttl_reading(seen))

    slider.observe(on_change, names="value")
    return widgets.VBox([slider, shown])


# -- section 4: offline/online sync ---------------------------------------------------------
def run_table(runs: list[tuple[str, Any]], view: str = "user_txn_count") -> pd.DataFrame:
    """One row per materialization run: its name, window end, rows scanned/written and watermark."""
    keep = ("end", "rows_scanned", "rows_written", "watermark")
    return pd.DataFrame([{"run": name, **{k: v for k, v in r.views[view].__dict__.items() if k in keep}}
                         for name, r in runs])


def age_figure(ages_before: pd.DataFrame, ages_after: pd.DataFrame, objective: float) -> plt.Figure:
    """p95 online feature age before and after the catch-up, against the SLO objective."""
    fig, ax = plt.subplots(figsize=(7, 3))
    p95s = [p95(ages_before["age_h"]), p95(ages_after["age_h"])]
    ax.barh(["after catch-up", "before catch-up (run failed)"], p95s[::-1], color=["tab:green", "tab:red"])
    ax.axvline(objective, color="black", linestyle="--", label=f"SLO: p95 <= {objective:g} h")
    ax.set_xlabel("p95 online feature age over 2,000 users (hours)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def by_phase(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Stack two tables with a ``phase`` column (``before`` / ``after``)."""
    return pd.concat([before.assign(phase="before"), after.assign(phase="after")], ignore_index=True)


def freshness_summary(slo: Any, p95_before: float, p95_after: float, verdict_before: str,
                      verdict_after: str) -> dict[str, Any]:
    """The ``freshness`` record: the SLO, p95 ages (3 decimals) and verdicts before/after."""
    return {"slo": slo.to_dict(), "p95_before_h": round(p95_before, 3), "p95_after_h": round(p95_after, 3),
            "verdict_before": verdict_before, "verdict_after": verdict_after}


def parity_summary(report_before: Any, report_after: Any) -> dict[str, Any]:
    """The ``parity`` record: compared, mismatches and missing-online counts of two reports."""
    return {phase: {"compared": r.compared, "mismatches": len(r.mismatches), "missing_online": len(r.missing_online)}
            for phase, r in (("before", report_before), ("after", report_after))}


# -- section 5: definitions as code -----------------------------------------------------------
def version_2_problems(candidate: FeatureView, v1: FeatureView) -> list[str]:
    """What keeps ``candidate`` from being a valid version 2 of ``v1`` (empty when valid).

    Rules: same name and version 2; ``tags['window'] == '30d'`` and a description naming the
    30-day window; same entity and feature name; same TTL and created-timestamp column; an owner.
    """
    problems = []
    if candidate.name != v1.name or candidate.version != 2:
        problems.append(f"name must stay '{v1.name}' and version must be 2")
    if candidate.tags.get("window") != "30d":
        problems.append("tags['window'] must say '30d'")
    if "30 day" not in (candidate.description or "").replace("-day", " day"):
        problems.append("the description must say the window is 30 days")
    if candidate.feature_names != v1.feature_names or candidate.join_keys != v1.join_keys:
        problems.append("keep the entity and the feature name")
    if candidate.created_timestamp_column != v1.created_timestamp_column or candidate.ttl != v1.ttl:
        problems.append("keep the TTL and the created timestamp column")
    if not candidate.owner:
        problems.append("name an owner")
    return problems


def pinned_reads(store: FeatureStore, users: list[int], at: datetime, features: dict[str, str]) -> pd.DataFrame:
    """Point-in-time reads of each pinned feature (column name -> ``view@vN:feature``) at ``at``."""
    probe = pd.DataFrame({"user_id": users, "event_timestamp": [at] * len(users)})
    probe["event_timestamp"] = probe["event_timestamp"].astype("datetime64[us, UTC]")
    return probe.assign(**{col: store.get_historical_features(probe, [ref])[ref.split(":")[1]]
                           for col, ref in features.items()})


def definitions_record(v1: FeatureView, silent: FeatureView, v2: FeatureView, refusal: str | None,
                       changed: dict[str, Any]) -> dict[str, Any]:
    """The ``definitions`` record: the three specs with fingerprints, the refusal and the v1/v2 diff."""
    return {"v1": v1.to_dict(), "v1_fingerprint": v1.fingerprint,
            "silent": silent.to_dict(), "silent_fingerprint": silent.fingerprint,
            "v2": v2.to_dict(), "v2_fingerprint": v2.fingerprint,
            "silent_refused": refusal is not None, "refusal": refusal, "v1_vs_v2": changed}


# -- section 6: governance ----------------------------------------------------------------------
def contract_record(view: FeatureView, suite: Any, entry: dict[str, Any], *, notice_days: int = 30) -> dict[str, Any]:
    """The data contract of ``view``: schema, time columns, the suite's rules, owner and deprecation."""
    return {"view": view.name, "version": view.version, "owner": view.owner, "schema": view.to_dict()["schema"],
            "timestamp_field": view.timestamp_field, "created_timestamp_column": view.created_timestamp_column,
            "rules": [c.to_dict() for c in suite.checks],
            "deprecation": {"replacement": entry["replacement"], "end_of_life": entry["end_of_life"],
                            "notice_days": notice_days}}
