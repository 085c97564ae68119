"""Guardrails (rollback triggers), their measurements, PSI and the risk budget.

Every guardrail is "higher is worse": a measurement *breaches* when ``value > threshold``.
A breach becomes a *failed* measurement once it has happened ``consecutive`` times in a row.
A window with fewer than ``min_samples`` samples is *inconclusive*, never a pass. Each
measurement keeps what it measured, on which arm, over which window and on how many samples,
so every decision built on it can be explained.

Metrics (``Guardrail.metric``)::

    error_rate            share of served requests that failed
    latency_p95/p99       served latency percentile, milliseconds
    missing_feature_rate  share of requests with at least one missing online feature
    fetch_error_rate      share of requests whose online-store read timed out
    score_psi             PSI of the arm's scores against compare_to's scores
    positive_rate_change  |positive rate / compare_to's positive rate - 1|
    segment_regression    worst per-segment regression of ``statistic`` against compare_to
    kpi_drop              drop of ``statistic`` against compare_to, on labels ARRIVED by window end
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

import numpy as np

from ..errors import DefinitionError
from ..quality import psi

__all__ = ["METRICS", "STATISTICS", "Guardrail", "Measurement", "RiskBudget", "psi"]

METRICS = ("error_rate", "latency_p95", "latency_p99", "missing_feature_rate", "fetch_error_rate",
           "score_psi", "positive_rate_change", "segment_regression", "kpi_drop")
STATISTICS = ("positive_rate", "mean_score", "fraud_caught", "false_positive_rate")
_COMPARATIVE = ("score_psi", "positive_rate_change", "segment_regression", "kpi_drop")
ARMS = ("candidate", "stable", "all")
ACTIONS = ("abort", "fallback", "alert")
VERDICTS = ("pass", "breach", "fail", "inconclusive")


def psi_reference(reference: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's interior edges and bin shares (zero shares already replaced).

    With :func:`psi_against` this is ``mlops_kit.quality.psi`` split in two, so that a
    guardrail bins its reference once and scores every window against it.
    """
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    share = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / reference.size
    return edges, np.where(share == 0, 1e-4, share)


def psi_against(prepared: tuple[np.ndarray, np.ndarray], current: np.ndarray) -> float:
    """PSI of ``current`` against a reference prepared by :func:`psi_reference`."""
    edges, ref_share = prepared
    cur_share = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / current.size
    cur_share = np.where(cur_share == 0, 1e-4, cur_share)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def _td(value: Any, name: str, owner: str) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise DefinitionError(
            f"{owner}: {name} must be a positive timedelta, got {value!r}.",
            fix=f"Use e.g. {name}=timedelta(minutes=30).",
        )
    return value


@dataclass(frozen=True, kw_only=True)
class Guardrail:
    """A rollback trigger: metric, threshold, window, consecutive breaches, limits and action.

    Parameters
    ----------
    name: unique name shown in decisions and plots.
    metric: one of :data:`METRICS`.
    threshold: a measurement breaches when its value is greater than this.
    window: how far back each measurement looks (a multiple of the analysis interval).
    consecutive: breaches in a row that make a failed measurement.
    min_samples: fewer samples than this makes the measurement inconclusive.
    arm: ``"candidate"``, ``"stable"`` or ``"all"`` (what is measured).
    compare_to: ``"stable"`` (same window, stable arm) or ``"reference"`` (the warm-up
        period before the rollout); required by comparative metrics.
    statistic: for ``segment_regression`` and ``kpi_drop``, one of :data:`STATISTICS`
        (``kpi_drop`` accepts ``fraud_caught`` and ``false_positive_rate``).
    failure_limit, inconclusive_limit: like Argo Rollouts; more failed (inconclusive)
        measurements than this abort (pause) the rollout. Defaults 0.
    action: ``"abort"`` (roll back), ``"fallback"`` (serve the fallback model) or ``"alert"``.
    """

    name: str
    metric: str
    threshold: float
    window: timedelta
    consecutive: int = 1
    min_samples: int = 100
    arm: str = "candidate"
    compare_to: str | None = None
    statistic: str | None = None
    bins: int = 10
    failure_limit: int = 0
    inconclusive_limit: int = 0
    action: str = "abort"

    def __post_init__(self) -> None:
        own = f"Guardrail {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise DefinitionError(f"Guardrail: name must be a non-empty string, got {self.name!r}.",
                                  fix="Name it, e.g. name='p95-latency'.")
        checks = [
            ("metric", self.metric in METRICS, f"one of {METRICS}"),
            ("arm", self.arm in ARMS, f"one of {ARMS}"),
            ("action", self.action in ACTIONS, f"one of {ACTIONS}"),
            ("compare_to", self.compare_to in (None, "stable", "reference"), "None, 'stable' or 'reference'"),
        ]
        for fname, ok, want in checks:
            if not ok:
                raise DefinitionError(f"{own}: {fname} must be {want}, got {getattr(self, fname)!r}.",
                                      fix=f"Set {fname} to {want}.")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not np.isfinite(self.threshold):
            raise DefinitionError(f"{own}: threshold must be a finite number, got {self.threshold!r}.",
                                  fix="Use e.g. threshold=0.02.")
        _td(self.window, "window", own)
        for fname, low in (("consecutive", 1), ("min_samples", 1), ("bins", 2),
                           ("failure_limit", 0), ("inconclusive_limit", 0)):
            v = getattr(self, fname)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise DefinitionError(f"{own}: {fname} must be an integer >= {low}, got {v!r}.",
                                      fix=f"Use {fname}={max(low, 1)} or more.")
        if self.metric in _COMPARATIVE and self.compare_to is None:
            raise DefinitionError(f"{own}: metric {self.metric!r} compares two samples but compare_to is None.",
                                  fix="Set compare_to='stable' or compare_to='reference'.")
        if self.metric in ("segment_regression", "kpi_drop"):
            allowed = STATISTICS if self.metric == "segment_regression" else STATISTICS[2:]
            if self.statistic not in allowed:
                raise DefinitionError(f"{own}: statistic must be one of {allowed}, got {self.statistic!r}.",
                                      fix=f"Set statistic={allowed[-1]!r} (for example).")
        elif self.statistic is not None:
            raise DefinitionError(f"{own}: statistic is only used by segment_regression and kpi_drop.",
                                  fix="Leave statistic=None.")
        if self.compare_to == "stable" and self.arm != "candidate":
            raise DefinitionError(f"{own}: compare_to='stable' needs arm='candidate', got {self.arm!r}.",
                                  fix="Compare the candidate with the stable arm, or use 'reference'.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (window in seconds)."""
        d = asdict(self)
        d["window"] = self.window.total_seconds()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Guardrail":
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["window"] = timedelta(seconds=d["window"])
        return cls(**d)


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One guardrail measurement at the end of an analysis interval."""

    time: datetime
    guardrail: str
    metric: str
    arm: str
    value: float | None
    threshold: float
    window: timedelta
    n: int
    min_samples: int
    verdict: str
    streak: int
    consecutive: int
    compared_to: str | None = None
    detail: str = ""

    def explain(self) -> str:
        """One sentence: metric, measured value, threshold, window, sample size, verdict."""
        mins = self.window.total_seconds() / 60
        if self.value is None:
            val = "no value"
        else:
            val = f"{self.value:.4g} {'>' if self.value > self.threshold else '<='} {self.threshold:.4g}"
        vs = f" vs {self.compared_to}" if self.compared_to else ""
        tail = f" ({self.streak}/{self.consecutive} consecutive)" if self.verdict in ("breach", "fail") else ""
        if self.verdict == "inconclusive":
            tail = f" (needs >= {self.min_samples} samples)"
        extra = f"; {self.detail}" if self.detail else ""
        return (f"{self.guardrail}: {self.metric} on {self.arm}{vs} over {mins:g} min, n={self.n}: "
                f"{val} -> {self.verdict}{tail}{extra}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO time, window in seconds)."""
        d = asdict(self)
        d["time"] = self.time.isoformat()
        d["window"] = self.window.total_seconds()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["time"] = datetime.fromisoformat(d["time"])
        d["window"] = timedelta(seconds=d["window"])
        return cls(**d)


@dataclass(frozen=True, kw_only=True)
class RiskBudget:
    """How much exposure a candidate may consume before it has proven itself, in percent-hours.

    One rule: every analysis interval in which a candidate under test (weight below 100 %)
    serves ``w`` % of the traffic consumes ``w x interval`` percent-hours (25 % for 30 min =
    12.5); a canary whose next interval would take the total past ``pct_hours`` is aborted.
    There is no separate cap on a step's weight: 50 % for 30 min costs what 25 % for an hour
    costs, because at constant traffic both expose the same number of requests.

    >>> RiskBudget(pct_hours=50).allows([15, 25, 50], hours_per_step=0.5)
    True
    >>> RiskBudget(pct_hours=20).allows([15, 25, 50], hours_per_step=0.5)
    False
    """

    pct_hours: float

    def __post_init__(self) -> None:
        v = self.pct_hours
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
            raise DefinitionError(f"RiskBudget: pct_hours must be a positive number of percent-hours, got {v!r}.",
                                  fix="Use e.g. RiskBudget(pct_hours=10) for 5 % of traffic during 2 hours.")

    def cost(self, weight_pct: float, duration: timedelta) -> float:
        """Percent-hours one interval at ``weight_pct`` for ``duration`` consumes (0 at 100 %: promoted)."""
        if isinstance(weight_pct, bool) or not isinstance(weight_pct, (int, float)) or not 0 <= weight_pct <= 100:
            raise DefinitionError(f"RiskBudget.cost: weight_pct must be in [0, 100], got {weight_pct!r}.",
                                  fix="Pass the candidate's traffic share in percent.")
        _td(duration, "duration", "RiskBudget.cost")
        return 0.0 if weight_pct >= 100 else float(weight_pct) * duration.total_seconds() / 3600

    def allows(self, steps: Any, *, hours_per_step: float) -> bool:
        """Whether a plan of ``steps`` (percent), each held ``hours_per_step``, fits the budget."""
        if isinstance(hours_per_step, bool) or not isinstance(hours_per_step, (int, float)) or hours_per_step <= 0:
            raise DefinitionError(f"RiskBudget.allows: hours_per_step must be positive, got {hours_per_step!r}.",
                                  fix="Pass the bake time in hours, e.g. 0.5.")
        step = timedelta(hours=float(hours_per_step))
        return sum(self.cost(float(s), step) for s in steps) <= self.pct_hours + 1e-9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"pct_hours": self.pct_hours}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RiskBudget":
        """Inverse of :meth:`to_dict`."""
        return cls(pct_hours=data["pct_hours"])
