"""What a simulation produced: tables of intervals, measurements, events and requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import ValidationError
from .control import Event, ReleaseState
from .guardrails import Measurement

__all__ = ["RolloutResult"]

_ARMS = np.array(["stable", "candidate", "fallback"], dtype=object)


@dataclass(frozen=True, kw_only=True)
class RolloutResult:
    """The record of one simulation.

    Attributes
    ----------
    status : final rollout status (pending, progressing, paused, aborted, completed, rolled_back).
    intervals : one row per analysis interval (traffic split, counts, shadow agreement ...).
    measurements : every guardrail measurement (value, threshold, window, n, verdict, detail).
    events : the timeline (start, promote, alert, pause, abort, rollback, fallback_on ...).
    requests : one row per served request (empty when rebuilt from a dict).
    state : the release state at the end.
    """

    status: str
    risk_consumed: float
    intervals: pd.DataFrame
    measurements: pd.DataFrame
    events: pd.DataFrame
    requests: pd.DataFrame
    state: ReleaseState
    event_objects: tuple[Event, ...] = field(default=())
    measurement_objects: tuple[Measurement, ...] = field(default=())

    @classmethod
    def build(cls, sim: Any, upto: int) -> "RolloutResult":
        """Assemble the result of ``sim`` for its first ``upto`` requests."""
        log = sim._log
        sl = slice(0, upto)
        versions = np.array(sim.versions, dtype=object)
        requests = pd.DataFrame({
            "key": sim.keys[sl],
            "event_timestamp": pd.to_datetime(log["t"][sl], utc=True),
            "segment": np.asarray(sim.segment_names, dtype=object)[log["seg"][sl]] if upto else [],
            "arm": _ARMS[log["arm"][sl]], "version": versions[log["version"][sl]],
            "score": log["score"][sl], "decision": log["decision"][sl], "latency_ms": log["latency"][sl],
            "error": log["error"][sl], "missing_feature": log["missing"][sl],
            "fetch_error": log["fetch_error"][sl], "shadow_score": log["sh_score"][sl],
            "shadow_decision": log["sh_decision"][sl], "shadow_latency_ms": log["sh_latency"][sl],
            "label": log["label"][sl],
            "label_timestamp": pd.to_datetime(np.where(log["label_t"][sl] == np.iinfo(np.int64).max,
                                                       np.datetime64("NaT", "ns"),
                                                       log["label_t"][sl].astype("datetime64[ns]")), utc=True),
            "affected": log["affected"][sl],
        })
        return cls(status=sim.state.status, risk_consumed=float(sim.state.risk_consumed),
                   intervals=pd.DataFrame(sim._intervals), measurements=_measurement_frame(sim._measurements),
                   events=_event_frame(sim._events), requests=requests, state=sim.snapshot(),
                   event_objects=tuple(sim._events), measurement_objects=tuple(sim._measurements))

    def decisions(self) -> list[str]:
        """Each control decision on the timeline as one explained sentence."""
        keep = self.events[~self.events["kind"].isin(["alert"])]
        return [f"{r.time.isoformat()} {r.kind} by {r.actor}: {r.detail}" for r in keep.itertuples()]

    def shadow_summary(self) -> dict[str, float]:
        """Agreement rate, score deltas and p95 latency (served vs shadow) of the shadowed requests."""
        sh = self.requests[~self.requests["shadow_score"].isna()]
        if sh.empty:
            nan = float("nan")
            return {"n": 0, "agreement": nan, "mean_abs_score_delta": nan, "p95_abs_score_delta": nan,
                    "served_latency_p95_ms": nan, "shadow_latency_p95_ms": nan}
        delta = (sh["shadow_score"] - sh["score"]).abs()
        return {"n": int(len(sh)), "agreement": float((sh["decision"] == sh["shadow_decision"]).mean()),
                "mean_abs_score_delta": float(delta.mean()), "p95_abs_score_delta": float(delta.quantile(0.95)),
                "served_latency_p95_ms": float(sh["latency_ms"].quantile(0.95)),
                "shadow_latency_p95_ms": float(sh["shadow_latency_ms"].quantile(0.95))}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of everything but the request table."""
        iv = self.intervals.copy()
        for c in ("start", "end"):
            if c in iv:
                iv[c] = iv[c].map(lambda t: t.isoformat())
        records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                   for r in iv.to_dict(orient="records")]
        return {"status": self.status, "risk_consumed": self.risk_consumed, "intervals": records,
                "measurements": [m.to_dict() for m in self.measurement_objects],
                "events": [e.to_dict() for e in self.event_objects], "state": self.state.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RolloutResult":
        """Inverse of :meth:`to_dict` (the request table comes back empty)."""
        if not isinstance(data, Mapping) or "events" not in data:
            raise ValidationError("RolloutResult.from_dict: not a RolloutResult dict.",
                                  fix="Pass the output of RolloutResult.to_dict().")
        events = tuple(Event.from_dict(e) for e in data["events"])
        ms = tuple(Measurement.from_dict(m) for m in data["measurements"])
        iv = pd.DataFrame(data["intervals"])
        for c in ("start", "end"):
            if c in iv:
                iv[c] = iv[c].map(lambda s: pd.Timestamp(s).to_pydatetime())
        return cls(status=data["status"], risk_consumed=data["risk_consumed"], intervals=iv,
                   measurements=_measurement_frame(list(ms)), events=_event_frame(list(events)),
                   requests=pd.DataFrame(), state=ReleaseState.from_dict(data["state"]),
                   event_objects=events, measurement_objects=ms)


def _measurement_frame(ms: list[Measurement]) -> pd.DataFrame:
    cols = ["time", "guardrail", "metric", "arm", "value", "threshold", "window", "n", "min_samples",
            "verdict", "streak", "consecutive", "compared_to", "detail"]
    return pd.DataFrame([{c: getattr(m, c) for c in cols} for m in ms], columns=cols)


def _event_frame(events: list[Event]) -> pd.DataFrame:
    cols = ["time", "seq", "kind", "actor", "detail"]
    return pd.DataFrame([{c: getattr(e, c) for c in cols} for e in events], columns=cols)
