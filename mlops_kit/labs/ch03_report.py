"""Chapter 3 lab, reporting: the figures and the backfill runbook the notebook saves as evidence.

* :func:`null_by_segment_figure` — null share of ``amount`` per card programme, broken vs fixed;
* :func:`drift_figure` — amount histograms (reference vs current) and PSI per card programme;
* :func:`backfill_validation_figure` — share of changed values per feature, shadow vs live;
* :func:`rows_scanned_figure` — source rows scanned by a full refresh vs an incremental update;
* :func:`backfill_runbook` — the markdown runbook of one backfill, from its lineage record.

Each figure function only draws and returns the figure; the notebook saves and shows it.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["null_by_segment_figure", "drift_figure", "backfill_validation_figure", "rows_scanned_figure",
           "backfill_runbook"]


def null_by_segment_figure(null_by_segment: pd.DataFrame, *, block_above: float = 0.01) -> Any:
    """Bar chart of the null share per segment (one bar colour per delivery) with the blocking line."""
    fig, ax = plt.subplots(figsize=(6, 2.8))
    null_by_segment.plot.bar(ax=ax, color=["#c0392b", "#27ae60"], rot=0)
    ax.axhline(block_above, color="k", ls="--", lw=1, label=f"block above {block_above:.0%}".replace("%", " %"))
    ax.set_ylabel("null share of amount")
    ax.set_title("Null rate by card programme: broken vs fixed delivery")
    ax.legend()
    fig.tight_layout()
    return fig


def drift_figure(reference: pd.DataFrame, current: pd.DataFrame, amount_psi: float, by_segment: pd.DataFrame,
                 *, bands: tuple[float, float] = (0.1, 0.25)) -> Any:
    """Left: log-binned amount histograms of both windows; right: PSI per segment with the bands."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    bins = np.logspace(0, np.log10(max(reference["amount"].max(), current["amount"].max())), 40)
    axes[0].hist(reference["amount"], bins=bins, alpha=0.6, density=True, label="reference (days 20-39)")
    axes[0].hist(current["amount"], bins=bins, alpha=0.6, density=True, label="current (days 40-59)")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("amount")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"amount: PSI {amount_psi:.2f}")
    by_segment.plot.barh(ax=axes[1])
    axes[1].axvline(bands[0], color="k", ls=":", lw=1)
    axes[1].axvline(bands[1], color="k", ls="--", lw=1)
    axes[1].set_xlabel(f"PSI ({bands[0]:g} moderate, {bands[1]:g} major)")
    axes[1].set_title("PSI per card programme")
    fig.tight_layout()
    return fig


def backfill_validation_figure(strict: pd.DataFrame) -> Any:
    """Share of matched rows whose value changed, per feature (red where anything changed)."""
    diff = strict[strict["check"] == "value_diff"].set_index("feature")["observed"]
    fig, ax = plt.subplots(figsize=(6, 2.6))
    diff.plot.barh(ax=ax, color=["#c0392b" if v > 0 else "#27ae60" for v in diff])
    ax.set_xlabel("share of matched rows whose value changed")
    ax.set_title("Shadow vs live inside the backfill window")
    fig.tight_layout()
    return fig


def rows_scanned_figure(table: pd.DataFrame, ratio: float) -> Any:
    """Horizontal bars of ``table["rows_scanned"]`` per mode, titled with the incremental/full ratio."""
    fig, ax = plt.subplots(figsize=(6, 2.4))
    table["rows_scanned"].plot.barh(ax=ax, color=["#7f8c8d", "#2980b9"])
    ax.set_xlabel("source rows scanned")
    ax.set_title(f"One more day: incremental scans {ratio:.0%} of a full refresh")
    fig.tight_layout()
    return fig


def backfill_runbook(lineage: dict[str, Any], strict: pd.DataFrame, before: dict[str, Any], after: dict[str, Any],
                     *, fx_bug: float) -> str:
    """The markdown runbook of a backfill: window, code, what changed, validation, result, rollback."""
    failed = strict[strict["passed"].eq(False)]["feature"].tolist()
    return "\n".join([
        f"# Backfill {lineage['backfill_id']} of {lineage['view']}",
        f"- window: [{lineage['start']}, {lineage['end']}), shadow v{lineage['shadow_version']} "
        f"of live v{lineage['base_version']}",
        f"- code: {lineage['code_name']} ({lineage['code_fingerprint'][:12]})",
        f"- what changed: amount features were {fx_bug}x too high (currency bug); counts unchanged",
        f"- validated: strict check failed only on {failed}; passed with rtol=0.1",
        f"- result: {before['wrong_rows']} -> {after['wrong_rows']} wrong rows of {after['rows']} sampled",
        "- if downstream metrics regress: store.rollback_promotion('user_activity') (the old version is kept)"])
