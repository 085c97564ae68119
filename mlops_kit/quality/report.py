"""Quality results: one record per check, a report per run, and the blocking gate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from .._time import ensure_utc
from ..errors import QualityGateError, ValidationError

__all__ = ["CheckResult", "QualityReport", "gate", "VERDICTS"]

VERDICTS = ("pass", "fail", "inconclusive")


def _clean(value: Any) -> Any:
    """JSON-safe scalar: numpy scalars unwrapped, NaN/inf become None."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """The outcome of one check: what was seen, against what limit, and what to do.

    ``observed`` and ``threshold`` are in the check's unit (a share, a count, seconds);
    ``sample_size`` is the number of rows (or entities, partitions) the verdict rests on.
    """

    check_id: str
    check_type: str
    severity: str
    verdict: str
    observed: float | None
    threshold: Any
    sample_size: int
    message: str
    owner: str
    remediation: str
    consumers: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValidationError(f"CheckResult {self.check_id!r}: verdict {self.verdict!r} is not one "
                                  f"of {VERDICTS}.", fix="Use 'pass', 'fail' or 'inconclusive'.")
        object.__setattr__(self, "consumers", tuple(self.consumers))
        object.__setattr__(self, "observed", _clean(self.observed))

    @property
    def blocking(self) -> bool:
        """True when this result stops a gate (a failed ``block`` check)."""
        return self.severity == "block" and self.verdict == "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id, "check_type": self.check_type, "severity": self.severity,
            "verdict": self.verdict, "observed": self.observed, "threshold": _clean(self.threshold),
            "sample_size": int(self.sample_size), "message": self.message, "owner": self.owner,
            "remediation": self.remediation, "consumers": list(self.consumers),
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckResult":
        return cls(**{**data, "consumers": tuple(data.get("consumers", ()))})


@dataclass(frozen=True, kw_only=True)
class QualityReport:
    """All results of one suite run over ``view`` and the partition range ``[start, end)``."""

    view: str | None
    start: datetime | None
    end: datetime | None
    results: tuple[CheckResult, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(self.results))

    @property
    def blocking_failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.blocking)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.severity == "warn" and r.verdict == "fail")

    @property
    def inconclusive(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.verdict == "inconclusive")

    @property
    def passed(self) -> bool:
        """No blocking failure (warnings and inconclusive results do not count here)."""
        return not self.blocking_failures

    def summary(self) -> str:
        """One line, e.g. ``'7 checks: 5 pass, 1 fail (1 blocking), 1 inconclusive'``."""
        counts = {v: sum(r.verdict == v for r in self.results) for v in VERDICTS}
        return (f"{len(self.results)} checks: {counts['pass']} pass, {counts['fail']} fail "
                f"({len(self.blocking_failures)} blocking), {counts['inconclusive']} inconclusive")

    def to_frame(self) -> pd.DataFrame:
        """One row per result (details left out; see ``to_dict``)."""
        rows = [{k: v for k, v in r.to_dict().items() if k != "details"} for r in self.results]
        columns = ["check_id", "check_type", "severity", "verdict", "observed", "threshold",
                   "sample_size", "message", "owner", "remediation", "consumers"]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "passed": self.passed,
            "summary": self.summary(),
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QualityReport":
        def ts(value: Any) -> datetime | None:
            return None if value is None else ensure_utc(value, name="QualityReport time")

        return cls(view=data.get("view"), start=ts(data.get("start")), end=ts(data.get("end")),
                   results=tuple(CheckResult.from_dict(r) for r in data["results"]))


def gate(report: QualityReport, *, allow_inconclusive: bool = False) -> QualityReport:
    """Raise ``QualityGateError`` listing every blocking problem at once; else return ``report``.

    Blocking problems are failed ``block`` checks and, unless ``allow_inconclusive``, ``block``
    checks that could not reach a verdict (empty or too little data fails closed). ``warn``
    failures never block. ``error.details['failures']`` holds the result dicts.
    """
    if not isinstance(report, QualityReport):
        raise ValidationError(f"gate: expected a QualityReport, got {type(report).__name__}.",
                              fix="Pass the report returned by QualitySuite.run(...).")
    problems = list(report.blocking_failures)
    if not allow_inconclusive:
        problems += [r for r in report.inconclusive if r.severity == "block"]
    if not problems:
        return report
    lines = [f"- {r.check_id} [{r.verdict}] {r.message} (owner {r.owner}; fix: {r.remediation}; "
             f"blast radius: {', '.join(r.consumers) or 'no registered consumers'})" for r in problems]
    raise QualityGateError(
        f"quality gate for {report.view or 'data'}: {len(problems)} blocking check(s) did not "
        "pass:\n" + "\n".join(lines),
        fix="Apply each remediation above and re-run the suite; only 'warn' checks may fail.",
        failures=[r.to_dict() for r in problems],
    )
