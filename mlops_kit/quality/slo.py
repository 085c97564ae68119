"""Service-level objectives as code: each tied to an alert and an owner ("an SLO without
escalation is a wish").

An ``SLO`` bounds one statistic of an indicator over a window:

* percentile SLOs (``statistic`` ``"p50"``, ``"p90"``, ``"p95"``, ``"p99"``): e.g. p95 feature age
  <= 1 h, p99 latency <= 200 ms. The percentile is ``numpy.percentile(values, q)`` with numpy's
  default ``method="linear"`` (Hyndman-Fan type 7). The error budget is the share of events
  allowed above the objective (5 % for p95); burn = share above / budget.
* rate SLOs (``statistic="rate"``): observations are 0/1 (or booleans) marking bad events, e.g.
  a parity mismatch or a null; observed = mean; the budget is the objective itself; burn =
  observed / objective.

A burn of 1.0 spends exactly the budget of the window; above 1.0 the SLO is breached.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .._time import ensure_utc
from ..errors import DefinitionError, ValidationError

__all__ = ["Alert", "SLO", "SLOResult", "evaluate", "SLO_KINDS", "STATISTICS", "ALERT_SEVERITIES"]

SLO_KINDS = ("freshness", "correctness", "latency", "quality", "availability")
STATISTICS = ("p50", "p90", "p95", "p99", "rate")
ALERT_SEVERITIES = ("info", "warning", "critical")
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def _bad(obj: str, field: str, value: Any, why: str, fix: str) -> DefinitionError:
    return DefinitionError(f"{obj}: {field} {why}, got {value!r}.", fix=fix, field=field, value=repr(value))


@dataclass(frozen=True, kw_only=True)
class Alert:
    """Where a breach goes: alert ``name``, ``severity`` (info/warning/critical), ``route``
    (an on-call rotation, channel or queue, e.g. ``"pagerduty:feature-platform"``)."""

    name: str
    severity: str
    route: str

    def __post_init__(self) -> None:
        where = f"Alert {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise _bad(where, "name", self.name, "must be an identifier", "Use e.g. name='FeatureFreshnessBurn'.")
        if self.severity not in ALERT_SEVERITIES:
            raise _bad(where, "severity", self.severity, f"must be one of {ALERT_SEVERITIES}",
                       "Use severity='critical' for pages, 'warning' for tickets.")
        if not isinstance(self.route, str) or not self.route.strip():
            raise _bad(where, "route", self.route, "must name where the alert goes",
                       "Use e.g. route='pagerduty:feature-platform' or 'jira:FEAT'.")

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "severity": self.severity, "route": self.route}


@dataclass(frozen=True, kw_only=True)
class SLO:
    """A declared objective; refused without an owner or an alert.

    Examples
    --------
    >>> slo = SLO(name="feature_freshness", kind="freshness", indicator="feature_age_seconds",
    ...           statistic="p95", objective=3600.0, window=timedelta(days=1), owner="feature-platform",
    ...           alert=Alert(name="FreshnessSLO", severity="critical", route="pagerduty:features"))
    >>> evaluate(slo, [60.0] * 40).verdict
    'met'
    """

    name: str
    kind: str
    indicator: str
    statistic: str
    objective: float
    window: timedelta
    owner: str | None = None
    alert: Alert | None = None
    unit: str = ""
    description: str = ""
    min_samples: int = 20

    def __post_init__(self) -> None:
        where = f"SLO {self.name!r}"
        missing = [f for f in ("owner", "alert") if getattr(self, f) in (None, "")]
        if missing:
            raise DefinitionError(
                f"{where}: missing {' and '.join(missing)}; an SLO without escalation is a wish.",
                fix="Give owner='<team>' and alert=Alert(name=..., severity=..., route=...).", missing=missing)
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise _bad(where, "name", self.name, "must be an identifier", "Use e.g. name='feature_freshness_p95'.")
        if self.kind not in SLO_KINDS:
            raise _bad(where, "kind", self.kind, f"must be one of {SLO_KINDS}", "Pick the axis the SLO protects.")
        if not isinstance(self.indicator, str) or not self.indicator.strip():
            raise _bad(where, "indicator", self.indicator, "must name what is measured",
                       "Use e.g. indicator='feature_age_seconds'.")
        if self.statistic not in STATISTICS:
            raise _bad(where, "statistic", self.statistic, f"must be one of {STATISTICS}",
                       "Use 'p95'/'p99' for latency and age, 'rate' for mismatch or null rates.")
        if isinstance(self.objective, bool) or not isinstance(self.objective, (int, float)) \
                or not math.isfinite(self.objective) or self.objective < 0:
            raise _bad(where, "objective", self.objective, "must be a finite number >= 0",
                       "Use e.g. objective=3600 (seconds) or 0.01 (a 1 % rate).")
        if self.statistic == "rate" and not 0 < self.objective < 1:
            raise _bad(where, "objective", self.objective, "must be a rate strictly between 0 and 1",
                       "Use e.g. objective=0.01 (1 % of events may be bad).")
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0):
            raise _bad(where, "window", self.window, "must be a positive timedelta", "Use e.g. window=timedelta(days=7).")
        if not isinstance(self.owner, str) or not self.owner.strip():
            raise _bad(where, "owner", self.owner, "must be a team or person", "Use e.g. owner='feature-platform'.")
        if not isinstance(self.alert, Alert):
            raise _bad(where, "alert", self.alert, "must be an Alert", "Use alert=Alert(name=..., severity=..., route=...).")
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or self.min_samples < 1:
            raise _bad(where, "min_samples", self.min_samples, "must be an integer >= 1", "Use e.g. min_samples=20.")

    @property
    def error_budget(self) -> float:
        """The share of bad events the window may hold (1 - q for percentiles, the objective for rates)."""
        return float(self.objective) if self.statistic == "rate" else 1 - int(self.statistic[1:]) / 100

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "indicator": self.indicator, "statistic": self.statistic,
                "objective": self.objective, "window_seconds": self.window.total_seconds(), "owner": self.owner,
                "alert": self.alert.to_dict(), "unit": self.unit, "description": self.description,
                "min_samples": self.min_samples}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SLO":
        if not isinstance(data, dict) or "window_seconds" not in data:
            raise DefinitionError("SLO.from_dict: expected the output of SLO.to_dict().", fix="Pass SLO.to_dict() output.")
        fields = {k: v for k, v in data.items() if k not in ("window_seconds", "alert")}
        alert = data.get("alert")
        return cls(**fields, window=timedelta(seconds=float(data["window_seconds"])),
                   alert=None if alert is None else Alert(**alert))


@dataclass(frozen=True, kw_only=True)
class SLOResult:
    """An SLO evaluated over one window."""

    slo: str
    observed: float | None
    objective: float
    verdict: str
    budget_burn: float | None
    bad_events: int
    n: int
    window_start: datetime | None
    window_end: datetime | None
    alert: str | None
    owner: str
    message: str

    @property
    def alerting(self) -> bool:
        return self.alert is not None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("window_start", "window_end"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def _values(slo: SLO, observations: Any, now: datetime | None) -> tuple[np.ndarray, datetime | None, datetime | None]:
    start = end = None
    obs = observations
    if isinstance(obs, pd.DataFrame):
        if not {"timestamp", "value"} <= set(obs.columns):
            raise ValidationError(f"evaluate({slo.name!r}): a DataFrame needs 'timestamp' and 'value' columns, "
                                  f"got {list(obs.columns)}.", fix="Rename the columns or pass a Series.")
        obs = pd.Series(obs["value"].to_numpy(), index=pd.DatetimeIndex(obs["timestamp"]))
    if isinstance(obs, pd.Series) and isinstance(obs.index, pd.DatetimeIndex):
        if obs.index.tz is None:
            raise ValidationError(f"evaluate({slo.name!r}): observation timestamps are naive.",
                                  fix="Localize them: series.tz_localize('UTC').")
        if now is None:
            raise ValidationError(f"evaluate({slo.name!r}): timestamped observations need now= (the window end).",
                                  fix="Pass now=clock() so the window is [now - window, now).")
        end = ensure_utc(now, name="evaluate(now)")
        start = end - slo.window
        ts = obs.index.tz_convert("UTC")
        obs = obs[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
    try:
        values = np.asarray(obs, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"evaluate({slo.name!r}): observations must be numeric ({exc}).",
                              fix="Pass numbers (seconds, ms, or 0/1 for rate SLOs).") from exc
    if np.isnan(values).any() or np.isinf(values).any():
        raise ValidationError(f"evaluate({slo.name!r}): observations hold NaN or inf.",
                              fix="Drop or repair missing measurements first (a missing one is an event of its own).")
    if slo.statistic == "rate" and not np.isin(values, (0.0, 1.0)).all():
        raise ValidationError(f"evaluate({slo.name!r}): a rate SLO needs 0/1 observations (1 = bad event).",
                              fix="Pass booleans, e.g. mismatch = abs(offline - online) > tol.")
    return values, start, end


def evaluate(slo: SLO, observations: Any, *, now: datetime | None = None) -> SLOResult:
    """Evaluate ``slo`` over ``observations``.

    ``observations`` is array-like (already the window) or a Series with a tz-aware
    DatetimeIndex / a DataFrame with ``timestamp`` and ``value`` columns, filtered to
    ``[now - slo.window, now)``. Fewer than ``slo.min_samples`` observations give
    ``inconclusive``. The alert fires when the SLO is breached.
    """
    if not isinstance(slo, SLO):
        raise ValidationError(f"evaluate: expected an SLO, got {type(slo).__name__}.", fix="Pass an SLO(...).")
    values, start, end = _values(slo, observations, now)
    n = int(values.size)
    if slo.statistic == "rate":
        bad = int(values.sum())
        observed = float(values.mean()) if n else None
    else:
        bad = int((values > slo.objective).sum())
        observed = float(np.percentile(values, int(slo.statistic[1:]))) if n else None
    burn = (bad / n) / slo.error_budget if n else None
    unit = f" {slo.unit}" if slo.unit else ""
    if n < slo.min_samples:
        verdict = "inconclusive"
        message = f"{slo.name}: {n} observation(s) in the window, fewer than min_samples={slo.min_samples}."
    else:
        breached = observed > slo.objective
        verdict = "breached" if breached else "met"
        message = (f"{slo.name}: {slo.statistic} {slo.indicator} = {observed:.6g}{unit} vs objective "
                   f"{slo.objective:g}{unit} -> {verdict}; error-budget burn {burn:.2f} "
                   f"({bad} of {n} events bad, budget {slo.error_budget:.2%}).")
    return SLOResult(slo=slo.name, observed=observed, objective=float(slo.objective), verdict=verdict,
                     budget_burn=burn, bad_events=bad, n=n, window_start=start, window_end=end,
                     alert=slo.alert.name if verdict == "breached" else None, owner=slo.owner, message=message)
