"""Figures of a simulation: traffic split over time and each guardrail against its threshold.

Both return a :class:`matplotlib.figure.Figure` and never call ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..errors import ValidationError
from .result import RolloutResult

__all__ = ["plot_traffic_split", "plot_guardrails"]

_MARKERS = {"promote": ("tab:green", "-"), "complete": ("tab:green", "--"), "pause": ("tab:orange", "-"),
            "resume": ("tab:orange", ":"), "abort": ("tab:red", "-"), "revert": ("tab:red", "-"),
            "rollback": ("tab:red", "--"), "switch": ("tab:blue", "-"), "fallback_on": ("tab:purple", "-"),
            "fallback_off": ("tab:purple", ":"), "restore": ("black", "-"), "partial_rollback": ("tab:brown", "-")}


def _check(result: RolloutResult) -> None:
    if not isinstance(result, RolloutResult):
        raise ValidationError(f"expected a RolloutResult, got {type(result).__name__}.",
                              fix="Pass the value returned by RolloutSimulator.run().")
    if result.intervals.empty:
        raise ValidationError("the result has no intervals yet.", fix="Run the simulator first.")


def _decision_lines(ax, result: RolloutResult, label: bool) -> None:
    seen = set()
    for e in result.events.itertuples():
        if e.kind in _MARKERS:
            color, style = _MARKERS[e.kind]
            ax.axvline(e.time, color=color, linestyle=style, linewidth=1,
                       label=e.kind if label and e.kind not in seen else None)
            seen.add(e.kind)


def plot_traffic_split(result: RolloutResult, *, title: str = "Traffic split") -> Figure:
    """Stacked share of requests served by stable, candidate and fallback per interval."""
    _check(result)
    iv = result.intervals
    n = np.maximum(iv["n"].to_numpy(dtype=float), 1)
    fig = Figure(figsize=(9, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    x = iv["start"]
    shares = [iv["n_stable"] / n * 100, iv["n_candidate"] / n * 100, iv["n_fallback"] / n * 100]
    ax.stackplot(x, *shares, labels=["stable", "candidate", "fallback"],
                 colors=["tab:blue", "tab:orange", "tab:purple"], alpha=0.6, step="post")
    ax.step(x, iv["weight"], where="post", color="black", linewidth=1, label="candidate weight %")
    if "n_shadow" in iv and iv["n_shadow"].sum() > 0:
        ax.step(x, iv["n_shadow"] / n * 100, where="post", color="tab:gray", linestyle=":", label="shadowed %")
    _decision_lines(ax, result, label=True)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of requests")
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    return fig


def plot_guardrails(result: RolloutResult, names: Sequence[str] | None = None) -> Figure:
    """One panel per guardrail: measured value, threshold, verdict colours and decision markers."""
    _check(result)
    ms = result.measurements
    available = list(dict.fromkeys(ms["guardrail"])) if not ms.empty else []
    names = available if names is None else list(names)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ValidationError(f"plot_guardrails: unknown or no guardrails {unknown or names}; measured: {available}.",
                              fix="Pass names of guardrails given to the simulator.")
    fig = Figure(figsize=(9, 2.2 * len(names)))
    colors = {"pass": "tab:green", "breach": "tab:orange", "fail": "tab:red", "inconclusive": "tab:gray"}
    for k, name in enumerate(names):
        ax = fig.add_subplot(len(names), 1, k + 1)
        m = ms[ms["guardrail"] == name]
        vals = m["value"].astype(float)
        ax.plot(m["time"], vals, color="tab:blue", linewidth=1)
        for verdict, c in colors.items():
            sel = m["verdict"] == verdict
            y = np.where(vals[sel].isna(), m["threshold"][sel], vals[sel])
            ax.scatter(m["time"][sel], y, s=10, color=c, label=verdict + (" (at threshold)" if verdict ==
                       "inconclusive" else ""), marker="x" if verdict == "inconclusive" else "o", zorder=3)
        ax.axhline(float(m["threshold"].iloc[0]), color="tab:red", linestyle="--", linewidth=1, label="threshold")
        _decision_lines(ax, result, label=(k == 0))
        first = m.iloc[0]
        ax.set_title(f"{name}: {first['metric']} on {first['arm']}, window "
                     f"{first['window'].total_seconds() / 60:g} min", fontsize=9)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    return fig
