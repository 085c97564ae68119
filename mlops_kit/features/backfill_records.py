"""What a backfill declares and what it leaves behind: thresholds, validation report, lineage.

Everything here round-trips through ``to_dict``/``from_dict`` (JSON with sorted keys); the
lineage record ``BackfillRecord`` is stored in ``features.sqlite`` (table ``backfills``).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import textwrap
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import pandas as pd

from ..errors import DefinitionError

__all__ = ["BackfillThresholds", "ValidationCheck", "ValidationReport", "PartitionRun",
           "BackfillRecord", "code_fingerprint", "OUTCOMES"]

#: outcome of a backfill, in the order it normally moves through them
OUTCOMES = ("running", "failed", "validated", "validation_failed", "promoted", "rolled_back")


def _num(value: float) -> float | str:
    """JSON-safe float (infinities as text)."""
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _unnum(value: Any) -> Any:
    return float(value) if value in ("inf", "-inf") else value


@dataclass(frozen=True, kw_only=True)
class BackfillThresholds:
    """How far the shadow may differ from the live version inside the backfill window.

    Parameters
    ----------
    max_row_count_change:
        Allowed relative change of the row count, ``|shadow - live| / live`` (0 = same count).
    max_null_rate_change:
        Allowed absolute change of each feature's null rate.
    max_changed_share:
        Allowed share of matched rows (same keys and event timestamp) whose value differs by
        more than the tolerance, per feature.
    max_unmatched_share:
        Allowed share of (keys, event timestamp) pairs present on one side only.
    atol, rtol:
        Numeric tolerance: values differ when ``|shadow - live| > atol + rtol * |live|``.
    feature_atol:
        Per-feature ``atol`` overrides, e.g. ``{"amount_7d": 0.01}``.

    Use ``float("inf")`` to report a measure without gating on it.
    """

    max_row_count_change: float = 0.0
    max_null_rate_change: float = 0.0
    max_changed_share: float = 0.0
    max_unmatched_share: float = 0.0
    atol: float = 1e-9
    rtol: float = 0.0
    feature_atol: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "feature_atol":
                if not isinstance(value, dict) or not all(
                        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                        and v >= 0 for k, v in value.items()):
                    raise DefinitionError(
                        f"BackfillThresholds: feature_atol must map feature names to numbers >= 0, "
                        f"got {value!r}.", fix="Use e.g. feature_atol={'amount_7d': 0.01}.")
                object.__setattr__(self, "feature_atol", {k: float(v) for k, v in value.items()})
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
                    or value < 0:
                raise DefinitionError(
                    f"BackfillThresholds: {f.name} must be a number >= 0, got {value!r}.",
                    fix=f"Use e.g. {f.name}=0.01 (float('inf') reports without gating).")
            object.__setattr__(self, f.name, float(value))

    def tolerance(self, feature: str) -> float:
        return self.feature_atol.get(feature, self.atol)

    def to_dict(self) -> dict[str, Any]:
        out = {k: (_num(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BackfillThresholds":
        return cls(**{k: (_unnum(v) if k != "feature_atol" else v) for k, v in data.items()})


@dataclass(frozen=True, kw_only=True)
class ValidationCheck:
    """One measured comparison: ``passed`` is ``observed <= threshold`` (None when not run)."""

    check: str
    feature: str | None
    observed: float | None
    threshold: float
    passed: bool | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "feature": self.feature,
                "observed": None if self.observed is None else _num(self.observed),
                "threshold": _num(self.threshold), "passed": self.passed, "detail": dict(self.detail)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ValidationCheck":
        return cls(check=data["check"], feature=data["feature"], observed=_unnum(data["observed"]),
                   threshold=_unnum(data["threshold"]), passed=data["passed"],
                   detail=dict(data.get("detail", {})))


@dataclass(frozen=True, kw_only=True)
class ValidationReport:
    """Shadow vs live inside the window: row counts, null rates, value differences, leakage."""

    view: str
    live_version: int
    shadow_version: int
    checks: tuple[ValidationCheck, ...]
    live_files: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when no check failed (a check that was not run does not fail)."""
        return all(c.passed is not False for c in self.checks)

    @property
    def failures(self) -> list[ValidationCheck]:
        return [c for c in self.checks if c.passed is False]

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "live_version": self.live_version,
                "shadow_version": self.shadow_version, "passed": self.passed,
                "checks": [c.to_dict() for c in self.checks], "live_files": list(self.live_files)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ValidationReport":
        return cls(view=data["view"], live_version=data["live_version"],
                   shadow_version=data["shadow_version"],
                   checks=tuple(ValidationCheck.from_dict(c) for c in data["checks"]),
                   live_files=tuple(data.get("live_files", ())))

    def to_frame(self) -> pd.DataFrame:
        """One row per check: check, feature, observed, threshold, passed."""
        return pd.DataFrame([{"check": c.check, "feature": c.feature, "observed": c.observed,
                              "threshold": c.threshold, "passed": c.passed} for c in self.checks],
                            columns=["check", "feature", "observed", "threshold", "passed"])

    def summary(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": len(self.checks),
                "failed": [f"{c.check}" + (f":{c.feature}" if c.feature else "") for c in self.failures]}


@dataclass(frozen=True, kw_only=True)
class PartitionRun:
    """One event-date partition of a backfill: attempts, rows written and file hash."""

    date: str
    status: str = "pending"
    attempts: int = 0
    rows: int | None = None
    sha256: str | None = None
    path: str | None = None
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": list(self.errors)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PartitionRun":
        return cls(**{**data, "errors": tuple(data.get("errors", ()))})


@dataclass(frozen=True, kw_only=True)
class BackfillRecord:
    """The lineage record of one backfill (persisted; the store returns fresh copies).

    ``outcome`` is one of ``OUTCOMES``. ``events`` lists ``{"at", "event", "detail"}``
    entries in order (started, partition retries, failures, validation, promotion, rollback).
    """

    backfill_id: str
    view: str
    base_version: int
    shadow_version: int
    start: str
    end: str
    code_fingerprint: str
    code_name: str
    inputs: dict[str, Any]
    parameters: dict[str, Any]
    partitions: tuple[PartitionRun, ...]
    outcome: str = "running"
    validation: dict[str, Any] | None = None
    error: str | None = None
    forced_reason: str | None = None
    events: tuple[dict[str, Any], ...] = ()

    @property
    def attempts(self) -> dict[str, int]:
        """Attempts per partition date."""
        return {p.date: p.attempts for p in self.partitions}

    @property
    def report(self) -> ValidationReport | None:
        return None if self.validation is None else ValidationReport.from_dict(self.validation)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["partitions"] = [p.to_dict() for p in self.partitions]
        out["events"] = [dict(e) for e in self.events]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BackfillRecord":
        return cls(**{**data, "partitions": tuple(PartitionRun.from_dict(p) for p in data["partitions"]),
                      "events": tuple(dict(e) for e in data.get("events", ()))})


def code_fingerprint(func: Callable[..., Any]) -> tuple[str, str]:
    """``(sha256 of the function's source, qualified name)``; bytecode when no source exists."""
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}"
    try:
        text = "source:" + textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        if code is None:
            code = getattr(getattr(func, "__call__", None), "__code__", None)
        text = "bytecode:" + (repr((code.co_code, code.co_consts, code.co_names)) if code else name)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest(), name
