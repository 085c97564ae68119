"""Chapter 1 lab, presentation: the figures, tables and evidence records the notebook shows.

Plain functions that turn results computed by :mod:`mlops_kit.labs.ch01_ops` into a figure,
a small DataFrame or the JSON document the grader reads, so the notebook's cells stay short.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .ch01_ops import AMOUNT_EDGES
from .ch01_ops import DRIFT_WINDOWS as _WINDOW_DAYS

__all__ = ["DRIFT_WINDOWS", "plot_leakage_gap", "drift_psi_record", "plot_drift_amounts", "outage_table",
           "asof_evidence", "observability_record"]

#: the day ranges of the drift windows drawn by :func:`plot_drift_amounts`
DRIFT_WINDOWS = {name: f"days {lo}-{hi}" for name, (lo, hi) in _WINDOW_DAYS.items()}


def plot_leakage_gap(aucs: dict[str, float]) -> Any:
    """Bar chart of the four AUCs from ``leakage_scores`` (leaky vs point-in-time, offline vs production)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = ["leaky model\noffline", "point-in-time\noffline", "leaky model\nproduction", "point-in-time\nproduction"]
    values = [aucs["offline_leaky_auc"], aucs["offline_pit_auc"], aucs["production_leaky_auc"], aucs["production_pit_auc"]]
    bars = ax.bar(labels, values, color=["#c0504d", "#4f81bd", "#c0504d", "#4f81bd"])
    ax.bar_label(bars, fmt="%.3f"); ax.set_ylim(0.5, 1.0); ax.set_ylabel("ROC AUC")
    ax.set_title("Leakage: offline AUC inflated, production AUC falls")
    fig.tight_layout()
    return fig


def drift_psi_record(drift: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``drift_psi`` evidence document: one entry per window, pointing at its saved sample CSV.

    ``drift`` maps a window name (``stable``, ``current``) to the ``drift_response`` result for
    ``amount`` against the reference window, whose sample is ``drift_reference.csv``.
    """
    return {"reference": "drift_reference.csv", "features": [
        {"column": "amount", "current": f"drift_{n}.csv", "psi": drift[n]["psi"], "bins": 10,
         "level": drift[n]["level"], "action": drift[n]["action"]} for n in ("stable", "current")]}


def plot_drift_amounts(samples: dict[str, pd.DataFrame], drift: dict[str, dict[str, Any]],
                       windows: dict[str, tuple[int, int]] | None = None) -> Any:
    """Step histograms (share of transactions, log-scaled amount) of the reference, stable and current windows.

    ``windows`` (name -> ``(first_day, end_day)``) labels each curve; default :data:`DRIFT_WINDOWS`.
    """
    labels = DRIFT_WINDOWS if windows is None else {n: f"days {lo}-{hi}" for n, (lo, hi) in windows.items()}
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.geomspace(1, 5000, 40)
    for name, color in (("reference", "#4f81bd"), ("stable", "#9bbb59"), ("current", "#c0504d")):
        values = samples[name]["amount"]
        ax.hist(values, bins=bins, histtype="step", lw=1.6, color=color, weights=np.full(len(values), 1 / len(values)),
                label=f"{name}, {labels[name]}" + (f" (PSI {drift[name]['psi']:.3f})" if name in drift else ""))
    ax.set_xscale("log"); ax.set_xlabel("amount (log scale)"); ax.set_ylabel("share of transactions"); ax.legend()
    ax.set_title("Amount distribution before and after the shift")
    fig.tight_layout()
    return fig


def outage_table(outage: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per serving phase: share of requests served, served by the fallback, and with missing keys.

    ``outage`` maps a phase name to the frame returned by ``serve_requests``; shares are rounded to 4 places.
    """
    return pd.DataFrame({k: {"served": round(float(v["served"].mean()), 4),
                             "served_by_fallback": round(float(v["fallback_used"].mean()), 4),
                             "missing_keys": round(float(v["feature_age_h"].isna().mean()), 4)}
                         for k, v in outage.items()}).T


def observability_record(metrics: dict[str, float], rules: pd.DataFrame, healthy: pd.DataFrame,
                         hits: dict[str, int]) -> dict[str, Any]:
    """The ``observability`` evidence document: log metrics, rule verdicts (outage and healthy),
    the amount bucket edges, the fallback rule's threshold and verdict, and the raw-value hits."""
    fallback_rule = rules.set_index("metric").loc["fallback_rate"]
    return {"metrics": metrics, "rules": rules.to_dict("records"),
            "healthy_rules": healthy.to_dict("records"), "amount_edges": list(AMOUNT_EDGES),
            "fallback_rule_threshold": float(fallback_rule["threshold"]),
            "fallback_rule_fires": bool(fallback_rule["fires"]), "raw_value_hits": hits}


def asof_evidence(rows: pd.DataFrame, naive: pd.DataFrame, pit: pd.DataFrame, *, seed: int,
                  n: int = 2000) -> tuple[pd.DataFrame, dict[str, int]]:
    """The ``asof_join`` evidence: a seeded sample of rows with both joins' feature times, and the counts.

    ``naive`` and ``pit`` hold one row per row of ``rows``, in the same order.
    """
    from .ch01_ops import future_rows

    idx = rows.sample(n=min(n, len(rows)), random_state=seed).index
    sample = pd.DataFrame({"event_timestamp": rows.loc[idx, "event_timestamp"].to_numpy(),
                           "naive_feature_timestamp": naive.loc[idx, "feature_timestamp"].to_numpy(),
                           "pit_feature_timestamp": pit.loc[idx, "feature_timestamp"].to_numpy()})
    stats = {"rows": len(rows), "future_rows_naive": future_rows(naive), "future_rows_pit": future_rows(pit)}
    for name in ("naive", "pit"):
        stats[f"sample_future_rows_{name}"] = int((sample[f"{name}_feature_timestamp"] > sample["event_timestamp"]).sum())
    return sample, stats
