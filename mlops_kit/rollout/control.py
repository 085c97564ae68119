"""Control-plane records: feature flags, release-state snapshots, checks and timeline events.

Rollback in ML is three things at once: the registry alias, the traffic routing and the
flags (thresholds, post-processing, which feature version is read). ``ReleaseState``
captures all three; ``RolloutSimulator.restore(state)`` puts all three back in one call and
``verify_state`` turns "is the system back to known-good?" into executable checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

import numpy as np

from ..errors import ValidationError

__all__ = ["DEFAULT_FLAGS", "validate_flags", "ReleaseState", "CheckResult", "Event"]

DEFAULT_FLAGS: dict[str, Any] = {"threshold": 0.5, "score_offset": 0.0, "feature_version": 1}


def validate_flags(flags: Mapping[str, Any], *, owner: str = "flags") -> dict[str, Any]:
    """Check flag names and values; known flags are type-checked, others must be JSON values.

    Known flags: ``threshold`` (decision threshold in [0, 1]), ``score_offset`` (post-processing
    shift added to the score before the threshold, in [-1, 1]), ``feature_version`` (which
    feature source the simulator reads).
    """
    if not isinstance(flags, Mapping):
        raise ValidationError(f"{owner} must be a mapping name -> value, got {type(flags).__name__}.",
                              fix="Pass e.g. {'threshold': 0.5}.")
    out: dict[str, Any] = {}
    for name, value in flags.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"{owner}: flag names must be non-empty strings, got {name!r}.",
                                  fix="Name flags like 'threshold'.")
        if name in ("threshold", "score_offset"):
            lo = 0.0 if name == "threshold" else -1.0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= 1:
                raise ValidationError(f"{owner}: flag {name!r} must be a number in [{lo:g}, 1], got {value!r}.",
                                      fix=f"Use e.g. {name}={DEFAULT_FLAGS[name]}.")
            value = float(value)
        try:
            json.dumps(value)
        except TypeError as exc:
            raise ValidationError(f"{owner}: flag {name!r} has a non-JSON value {value!r}.",
                                  fix="Use numbers, strings, booleans or lists of them.") from exc
        out[name] = value
    return out


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """An executed check: what was expected, what was observed, and whether it held."""

    name: str
    passed: bool
    observed: Any
    expected: Any
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "passed": bool(self.passed), "observed": self.observed,
                "expected": self.expected, "detail": self.detail}


@dataclass(frozen=True, kw_only=True)
class ReleaseState:
    """Everything a rollback must put back: serving alias, served versions, routing, flags."""

    serving_version: str
    stable_version: str
    candidate_weight: float
    flags: Mapping[str, Any]
    candidate_flags: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("serving_version", "stable_version"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValidationError(f"ReleaseState: {name} must be a non-empty string, got "
                                      f"{getattr(self, name)!r}.", fix="Take states with snapshot().")
        w = self.candidate_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 100:
            raise ValidationError(f"ReleaseState: candidate_weight must be in [0, 100], got {w!r}.",
                                  fix="Take states with snapshot().")
        object.__setattr__(self, "flags", validate_flags(self.flags, owner="ReleaseState.flags"))
        object.__setattr__(self, "candidate_flags",
                           validate_flags(self.candidate_flags, owner="ReleaseState.candidate_flags"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"serving_version": self.serving_version, "stable_version": self.stable_version,
                "candidate_weight": float(self.candidate_weight), "flags": dict(self.flags),
                "candidate_flags": dict(self.candidate_flags)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ReleaseState":
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(data))

    def compare(self, current: "ReleaseState") -> list[CheckResult]:
        """One check per part of the release state: is ``current`` equal to this state?"""
        parts = [("serving alias", current.serving_version, self.serving_version),
                 ("stable arm version", current.stable_version, self.stable_version),
                 ("routing: candidate weight", current.candidate_weight, self.candidate_weight)]
        for name in sorted(set(self.flags) | set(current.flags)):
            parts.append((f"flag {name}", current.flags.get(name), self.flags.get(name)))
        out = []
        for name, obs, exp in parts:
            ok = bool(np.isclose(obs, exp)) if isinstance(obs, float) and isinstance(exp, float) else obs == exp
            out.append(CheckResult(name=name, passed=bool(ok), observed=obs, expected=exp,
                                   detail="" if ok else f"{name} is {obs!r}, known-good is {exp!r}"))
        return out


@dataclass(frozen=True, kw_only=True)
class Event:
    """One timeline entry, at simulated time ``time``; ``seq`` orders events at the same time."""

    time: datetime
    seq: int
    kind: str
    actor: str
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"time": self.time.isoformat(), "seq": self.seq, "kind": self.kind, "actor": self.actor,
                "detail": self.detail, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Event":
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["time"] = datetime.fromisoformat(d["time"])
        return cls(**d)
