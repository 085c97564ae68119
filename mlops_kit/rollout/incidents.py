"""Incident reports from a simulation, corrective actions as executable checks, postmortems.

Definitions (all in simulated time):

- *time to detect*: fault start -> first alert (a failed guardrail measurement) at or after it;
- *time to recover*: fault start -> first mitigation (abort, revert, rollback, fallback_on,
  restore) at or after detection;
- *exposure*: requests whose served answer the fault touched (``requests.affected``);
  ``bad_arm_requests`` counts requests the named arm served while the fault was active.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

import pandas as pd

from ..errors import ValidationError
from .control import CheckResult
from .faults import Fault
from .guardrails import Guardrail
from .result import RolloutResult

__all__ = ["MITIGATIONS", "IncidentReport", "CorrectiveAction", "incident_report", "guardrail_covers",
           "postmortem_markdown"]

MITIGATIONS = ("abort", "revert", "rollback", "fallback_on", "restore")


@dataclass(frozen=True, kw_only=True)
class IncidentReport:
    """Detection, recovery and impact of one fault in one simulation."""

    title: str
    fault: Mapping[str, Any]
    fault_start: datetime
    fault_end: datetime | None
    detected_at: datetime | None
    detection: str
    recovered_at: datetime | None
    recovery: str
    exposure: int
    bad_arm_requests: int
    requests_during_fault: int
    timeline: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def time_to_detect(self) -> timedelta | None:
        """Fault start -> first alert (None: never detected)."""
        return None if self.detected_at is None else self.detected_at - self.fault_start

    @property
    def time_to_recover(self) -> timedelta | None:
        """Fault start -> first mitigation (None: never recovered)."""
        return None if self.recovered_at is None else self.recovered_at - self.fault_start

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        iso = lambda t: None if t is None else t.isoformat()  # noqa: E731
        secs = lambda d: None if d is None else d.total_seconds()  # noqa: E731
        return {"title": self.title, "fault": dict(self.fault), "fault_start": iso(self.fault_start),
                "fault_end": iso(self.fault_end), "detected_at": iso(self.detected_at), "detection": self.detection,
                "recovered_at": iso(self.recovered_at), "recovery": self.recovery, "exposure": self.exposure,
                "bad_arm_requests": self.bad_arm_requests, "requests_during_fault": self.requests_during_fault,
                "time_to_detect_s": secs(self.time_to_detect), "time_to_recover_s": secs(self.time_to_recover),
                "timeline": [dict(e) for e in self.timeline]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IncidentReport":
        """Inverse of :meth:`to_dict`."""
        d = {k: v for k, v in data.items() if not k.endswith("_s")}
        for k in ("fault_start", "fault_end", "detected_at", "recovered_at"):
            d[k] = None if d[k] is None else datetime.fromisoformat(d[k])
        d["timeline"] = tuple(d["timeline"])
        return cls(**d)


def incident_report(result: RolloutResult, fault: Fault, *, title: str | None = None,
                    bad_arm: str = "candidate") -> IncidentReport:
    """Measure detection, recovery and exposure of ``fault`` in ``result``."""
    if not isinstance(result, RolloutResult):
        raise ValidationError(f"incident_report: result must be a RolloutResult, got {type(result).__name__}.",
                              fix="Pass the value returned by RolloutSimulator.run().")
    if not isinstance(fault, Fault):
        raise ValidationError(f"incident_report: fault must be a Fault, got {type(fault).__name__}.",
                              fix="Pass the fault object given to the simulator.")
    if bad_arm not in ("candidate", "stable", "fallback"):
        raise ValidationError(f"incident_report: bad_arm must be candidate, stable or fallback, got {bad_arm!r}.",
                              fix="Use bad_arm='candidate'.")
    if result.requests.empty:
        raise ValidationError("incident_report: the result has no request table.",
                              fix="Use the result of run(), not one rebuilt with from_dict().")
    req = result.requests
    start = fault.start or req["event_timestamp"].iloc[0].to_pydatetime()
    ev = result.events
    alerts = ev[(ev["kind"] == "alert") & (ev["time"] >= start)]
    detected = alerts.iloc[0] if len(alerts) else None
    since = detected["time"] if detected is not None else start
    mit = ev[ev["kind"].isin(MITIGATIONS) & (ev["time"] >= since)]
    recovered = mit.iloc[0] if len(mit) else None
    in_fault = req["event_timestamp"] >= pd.Timestamp(start)
    if fault.end is not None:
        in_fault &= req["event_timestamp"] < pd.Timestamp(fault.end)
    timeline = [{"time": e.time.isoformat(), "kind": e.kind, "actor": e.actor, "detail": e.detail}
                for e in ev.itertuples() if e.time >= start - timedelta(hours=1)]
    timeline.insert(0, {"time": start.isoformat(), "kind": "fault_start", "actor": "-", "detail": fault.label})
    if fault.end is not None:
        timeline.append({"time": fault.end.isoformat(), "kind": "fault_end", "actor": "-", "detail": fault.label})
    timeline.sort(key=lambda e: e["time"])
    return IncidentReport(
        title=title or f"{fault.label} during {result.status} rollout", fault=fault.to_dict(),
        fault_start=start, fault_end=fault.end,
        detected_at=None if detected is None else detected["time"],
        detection="" if detected is None else detected["detail"],
        recovered_at=None if recovered is None else recovered["time"],
        recovery="" if recovered is None else f"{recovered['kind']}: {recovered['detail']}",
        exposure=int(req["affected"].sum()), bad_arm_requests=int(((req["arm"] == bad_arm) & in_fault).sum()),
        requests_during_fault=int(in_fault.sum()), timeline=tuple(timeline))


@dataclass(frozen=True, kw_only=True)
class CorrectiveAction:
    """A corrective action written as a testable check.

    ``check`` is a zero-argument callable returning a bool, a :class:`CheckResult` or a list
    of them; ``spec`` states in words exactly what the check verifies.
    """

    id: str
    action: str
    owner: str
    spec: str
    check: Callable[[], Any]

    def __post_init__(self) -> None:
        for name in ("id", "action", "owner", "spec"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValidationError(f"CorrectiveAction: {name} must be a non-empty string, got "
                                      f"{getattr(self, name)!r}.", fix=f"Write the {name}.")
        if not callable(self.check):
            raise ValidationError(f"CorrectiveAction {self.id!r}: check must be callable.",
                                  fix="Pass a function that returns True/False or CheckResults.")

    def run(self) -> CheckResult:
        """Execute the check and return one CheckResult."""
        out = self.check()
        if isinstance(out, CheckResult):
            return out
        if isinstance(out, (list, tuple)) and all(isinstance(c, CheckResult) for c in out):
            failed = [c.name for c in out if not c.passed]
            return CheckResult(name=self.id, passed=not failed, observed=f"{len(out) - len(failed)}/{len(out)} passed",
                               expected=f"{len(out)}/{len(out)} passed", detail=f"failing: {failed}" if failed else "")
        if isinstance(out, bool):
            return CheckResult(name=self.id, passed=out, observed=out, expected=True)
        raise ValidationError(f"CorrectiveAction {self.id!r}: check returned {type(out).__name__}.",
                              fix="Return a bool, a CheckResult or a list of CheckResults.")


def guardrail_covers(guardrails: Sequence[Guardrail], *, metric: str, max_threshold: float,
                     max_window: timedelta, action: str | None = None) -> CheckResult:
    """Check that some guardrail watches ``metric`` at least this tightly (threshold and window)."""
    ok = [g for g in guardrails if g.metric == metric and g.threshold <= max_threshold
          and g.window <= max_window and (action is None or g.action == action)]
    return CheckResult(name=f"guardrail on {metric}", passed=bool(ok), observed=[g.name for g in ok],
                       expected=f"{metric} with threshold <= {max_threshold} and window <= {max_window}"
                                + (f", action {action}" if action else ""))


def postmortem_markdown(report: IncidentReport, *, summary: str, root_cause: str,
                        contributing_factors: Sequence[str], corrective_actions: Sequence[CorrectiveAction],
                        run_checks: bool = True) -> str:
    """Render a blameless postmortem; corrective actions are listed with their check (and result)."""
    if not isinstance(report, IncidentReport):
        raise ValidationError("postmortem_markdown: report must be an IncidentReport.", fix="Use incident_report().")
    for name, v in (("summary", summary), ("root_cause", root_cause)):
        if not isinstance(v, str) or not v.strip():
            raise ValidationError(f"postmortem_markdown: {name} must be a non-empty string.", fix=f"Write the {name}.")
    if not contributing_factors or not all(isinstance(f, str) and f.strip() for f in contributing_factors):
        raise ValidationError("postmortem_markdown: list at least one contributing factor (strings).",
                              fix="Name how the system allowed the failure.")
    if not corrective_actions or not all(isinstance(a, CorrectiveAction) for a in corrective_actions):
        raise ValidationError("postmortem_markdown: corrective_actions must be CorrectiveAction objects (>= 1).",
                              fix="Write each action as a testable check.")
    fmt = lambda d: "not reached" if d is None else f"{d.total_seconds() / 60:.0f} min"  # noqa: E731
    lines = [f"# Postmortem: {report.title}", "", "Blameless review: how the system allowed the failure.", "",
             "## Summary", "", summary, "", "## Impact", "",
             f"- Fault: {report.fault.get('type')} from {report.fault_start.isoformat()}"
             + (f" to {report.fault_end.isoformat()}" if report.fault_end else " (open-ended)"),
             f"- Requests during the fault: {report.requests_during_fault}",
             f"- Exposure (requests whose answer the fault touched): {report.exposure}",
             f"- Requests served by the bad arm during the fault: {report.bad_arm_requests}", "",
             "## Detection", "", f"- Time to detect: {fmt(report.time_to_detect)}",
             f"- First alert: {report.detection or 'none'}", f"- Time to recover: {fmt(report.time_to_recover)}",
             f"- Recovery: {report.recovery or 'none'}", "", "## Timeline", "", "| time (UTC) | event | by | detail |",
             "|---|---|---|---|"]
    for e in report.timeline:
        lines.append(f"| {e['time']} | {e['kind']} | {e['actor']} | {str(e['detail']).replace('|', '/')} |")
    lines += ["", "## Root cause", "", root_cause, "", "## Contributing factors", ""]
    lines += [f"- {f}" for f in contributing_factors]
    lines += ["", "## Corrective actions (each a testable check)", "",
              "| id | action | owner | check | status |", "|---|---|---|---|---|"]
    for a in corrective_actions:
        status = "not run"
        if run_checks:
            r = a.run()
            status = "PASS" if r.passed else f"FAIL ({r.detail or r.observed})"
        lines.append(f"| {a.id} | {a.action} | {a.owner} | {a.spec} | {status} |")
    return "\n".join(lines) + "\n"
