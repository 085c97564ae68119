"""Measuring guardrails over the request log (vectorized; no loop over requests).

The simulator keeps one preallocated array per column for every request of the traffic, in
time order; a window is a contiguous row range, so selecting it is a slice, never a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from .guardrails import Guardrail, Measurement, psi_against, psi_reference

__all__ = ["Window", "GuardrailMonitor"]

STABLE, CANDIDATE, FALLBACK = 0, 1, 2


class _Selection:
    """Rows of the log for one arm; columns are sliced (and masked) only when first read."""

    def __init__(self, log: dict[str, np.ndarray], lo: int, hi: int, mask: np.ndarray | None,
                 rename: dict[str, str] | None = None) -> None:
        self._log, self._lo, self._hi, self._mask = log, lo, hi, mask
        self._rename = rename or {}
        self._cols: dict[str, np.ndarray] = {}
        self.n = int(hi - lo if mask is None else mask.sum())

    def __getitem__(self, name: str) -> np.ndarray:
        col = self._cols.get(name)
        if col is None:
            col = self._log[self._rename.get(name, name)][self._lo:self._hi]
            if self._mask is not None:
                col = col[self._mask]
            self._cols[name] = col
        return col


_SHADOW = {"score": "sh_score", "decision": "sh_decision", "latency": "sh_latency"}


@dataclass
class Window:
    """Rows [lo, hi) of the log measured at ``t_end_ns``; ``ref`` is the warm-up row range.

    ``cache`` persists across intervals (the reference period never changes once served).
    """

    log: dict[str, np.ndarray]
    lo: int
    hi: int
    t_end_ns: int
    shadow: bool
    segment_names: list[str]
    ref: tuple[int, int] | None = None
    cache: dict = field(default_factory=dict)

    def select(self, arm: str, rows: tuple[int, int] | None = None) -> _Selection:
        lo, hi = rows if rows is not None else (self.lo, self.hi)
        cacheable = rows is not None and rows == self.ref and self.hi >= rows[1]
        if cacheable and ("ref", arm) in self.cache:
            return self.cache[("ref", arm)]
        log = self.log
        if arm == "all":
            sel = _Selection(log, lo, hi, None)
        elif arm == "stable":
            mask = log["arm"][lo:hi] == STABLE
            if self.shadow and rows is None:
                mask &= ~np.isnan(log["sh_score"][lo:hi])
            sel = _Selection(log, lo, hi, mask)
        elif self.shadow:
            sel = _Selection(log, lo, hi, ~np.isnan(log["sh_score"][lo:hi]), _SHADOW)
        else:
            sel = _Selection(log, lo, hi, log["arm"][lo:hi] == CANDIDATE)
        if cacheable:
            self.cache[("ref", arm)] = sel
        return sel


def _stat_by_segment(S: _Selection, stat: str, t_end_ns: int, nseg: int, pooled: bool = False):
    """Per-segment (value, n) arrays of a statistic (one pooled group if ``pooled``)."""
    seg = np.zeros(S.n, dtype=np.int64) if pooled else S["seg"]
    if stat in ("positive_rate", "mean_score"):
        ok = ~np.isnan(S["score"])
        w = S["decision"][ok].astype(float) if stat == "positive_rate" else S["score"][ok]
        n = np.bincount(seg[ok], minlength=nseg)
        tot = np.bincount(seg[ok], weights=w, minlength=nseg)
    else:
        arrived = (S["label_t"] <= t_end_ns) & ~np.isnan(S["score"])
        want = 1 if stat == "fraud_caught" else 0
        sel = arrived & (S["label"] == want)
        n = np.bincount(seg[sel], minlength=nseg)
        tot = np.bincount(seg[sel], weights=S["decision"][sel].astype(float), minlength=nseg)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tot / n, n


def _regression(stat: str, cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
    if stat == "fraud_caught":
        return ref - cur
    if stat == "false_positive_rate":
        return cur - ref
    return np.abs(cur - ref)


def measure_value(g: Guardrail, w: Window) -> tuple[float | None, int, bool, str]:
    """Return (value, sample size, enough samples?, detail) of one guardrail on one window."""
    cur = w.select(g.arm)
    if g.metric in ("error_rate", "missing_feature_rate", "fetch_error_rate",
                    "latency_p95", "latency_p99"):
        n = cur.n
        if n == 0:
            return None, 0, False, ""
        if g.metric.startswith("latency"):
            q = 95 if g.metric.endswith("95") else 99
            return float(np.percentile(cur["latency"], q)), n, n >= g.min_samples, ""
        col = {"error_rate": "error", "missing_feature_rate": "missing",
               "fetch_error_rate": "fetch_error"}[g.metric]
        return float(cur[col].mean()), n, n >= g.min_samples, ""
    if g.compare_to == "reference":
        if w.ref is None:
            return None, 0, False, "no reference period"
        ref = w.select("stable", rows=w.ref)
    else:
        ref = w.select("stable")
    if g.metric in ("score_psi", "positive_rate_change"):
        cs, rs = cur["score"][~np.isnan(cur["score"])], ref["score"][~np.isnan(ref["score"])]
        n = int(min(len(cs), len(rs)))
        if n == 0:
            return None, n, False, f"current n={len(cs)}, reference n={len(rs)}"
        detail = f"current n={len(cs)}, reference n={len(rs)}"
        if g.metric == "score_psi":
            key = ("psi", g.bins, g.compare_to == "reference" and w.hi >= (w.ref or (0, 0))[1])
            prepared = w.cache.get(key) if key[2] else None
            if prepared is None:
                prepared = psi_reference(rs, g.bins)
                if key[2]:
                    w.cache[key] = prepared
            return psi_against(prepared, cs), n, n >= g.min_samples, detail
        cd = cur["decision"][~np.isnan(cur["score"])].mean()
        rd = ref["decision"][~np.isnan(ref["score"])].mean()
        if rd == 0:
            return None, n, False, "reference positive rate is 0"
        return float(abs(cd / rd - 1)), n, n >= g.min_samples, f"{detail}; rate {cd:.4f} vs {rd:.4f}"
    stat = g.statistic
    nseg = max(len(w.segment_names), 1)
    if g.metric == "kpi_drop":
        cv, cn = _stat_by_segment(cur, stat, w.t_end_ns, 1, pooled=True)
        rv, rn = _stat_by_segment(ref, stat, w.t_end_ns, 1, pooled=True)
        n = int(min(cn[0], rn[0]))
        if n == 0:
            return None, n, False, f"labels arrived: current {int(cn[0])}, reference {int(rn[0])}"
        value = float(_regression(stat, cv, rv)[0])
        return value, n, n >= g.min_samples, f"{stat} {cv[0]:.4f} vs {rv[0]:.4f} (labels arrived by window end)"
    cv, cn = _stat_by_segment(cur, stat, w.t_end_ns, nseg)
    rv, rn = _stat_by_segment(ref, stat, w.t_end_ns, nseg)
    seen = (cn + rn) > 0
    enough = seen & (cn >= g.min_samples) & (rn >= g.min_samples)
    if not enough.any():
        return None, 0, False, f"{int(seen.sum())} segment(s) with traffic, none with >= {g.min_samples} samples in both arms"
    reg = np.where(enough, _regression(stat, cv, rv), -np.inf)
    worst = int(np.argmax(reg))
    value = float(reg[worst])
    name = w.segment_names[worst] if w.segment_names else str(worst)
    short = [w.segment_names[i] for i in np.flatnonzero(seen & ~enough)] if w.segment_names else []
    detail = f"worst segment {name!r}: {stat} {cv[worst]:.4f} vs {rv[worst]:.4f}"
    if short:
        detail += f"; too few samples in {short}"
    all_enough = bool(not (seen & ~enough).any())
    # A failing segment is a failure even if others lack samples; a pass needs every segment.
    decisive = value > g.threshold or all_enough
    return value, int(cn[worst]), decisive, detail


@dataclass
class _State:
    streak: int = 0
    fails: int = 0
    inconclusives: int = 0
    passes: int = 0


@dataclass
class GuardrailMonitor:
    """Turns values into verdicts and keeps streaks and Argo-style counters per guardrail."""

    guardrails: tuple[Guardrail, ...]
    states: dict[str, _State] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.states = {g.name: _State() for g in self.guardrails}

    def measure(self, g: Guardrail, w: Window, at: datetime) -> Measurement:
        value, n, enough, detail = measure_value(g, w)
        st = self.states[g.name]
        if value is None or not enough:
            verdict = "inconclusive"
            st.inconclusives += 1
            st.passes = 0
        elif value > g.threshold:
            st.streak += 1
            st.passes = 0
            verdict = "fail" if st.streak >= g.consecutive else "breach"
            st.fails += verdict == "fail"
        else:
            st.streak = 0
            st.passes += 1
            verdict = "pass"
        return Measurement(time=at, guardrail=g.name, metric=g.metric, arm=g.arm, value=value,
                           threshold=float(g.threshold), window=g.window, n=n, min_samples=g.min_samples,
                           verdict=verdict, streak=st.streak, consecutive=g.consecutive,
                           compared_to=g.compare_to, detail=detail)

    def reset(self) -> None:
        """Forget every streak and counter (at the start of a rollout)."""
        self.states = {g.name: _State() for g in self.guardrails}

    def reset_inconclusive(self) -> None:
        """Forget inconclusive counts (after a human resumed a paused rollout)."""
        for st in self.states.values():
            st.inconclusives = 0
