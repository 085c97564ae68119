"""Injectable faults (composable, each active in [start, end)) and the latency model.

Each fault acts at one stage of request processing, on whole arrays of one interval:

- ``traffic``: labels (concept drift);
- ``features``: the assembled feature matrix (covariate drift, online-store outage, schema change);
- ``scores``: model scores after routing (a candidate that regresses on one segment);
- ``latency``: served latency (latency spike).

A fault marks the requests it touched in ``batch.affected``; the incident report counts the
touched requests that were actually served (exposure).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar, Mapping

import numpy as np
import pandas as pd

from .._time import ensure_utc
from ..errors import DefinitionError

__all__ = ["Fault", "CovariateDrift", "ConceptDrift", "OnlineStoreOutage", "LatencySpike",
           "SegmentRegression", "SchemaChange", "LatencyModel", "fault_from_dict"]


def _share(owner: str, value: Any, name: str = "share") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise DefinitionError(f"{owner}: {name} must be in (0, 1], got {value!r}.", fix=f"Use e.g. {name}=0.5.")


def _name(owner: str, value: Any, field_name: str) -> None:
    if not isinstance(value, str) or not value:
        raise DefinitionError(f"{owner}: {field_name} must be a non-empty string, got {value!r}.",
                              fix=f"Name the {field_name}.")


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Base of every fault: active for event times in [start, end) (None = open-ended)."""

    start: datetime | None = None
    end: datetime | None = None
    stage: ClassVar[str] = ""

    def __post_init__(self) -> None:
        own = type(self).__name__
        for name in ("start", "end"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, ensure_utc(v, name=f"{own}.{name}"))
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise DefinitionError(f"{own}: end {self.end} is not after start {self.start}.",
                                  fix="Give an end later than the start, or end=None.")

    @property
    def label(self) -> str:
        """Short human-readable description."""
        return type(self).__name__

    def active(self, t_ns: np.ndarray) -> np.ndarray:
        """Boolean mask of the event times at which this fault is active."""
        m = np.ones(len(t_ns), dtype=bool)
        if self.start is not None:
            m &= t_ns >= pd.Timestamp(self.start).value
        if self.end is not None:
            m &= t_ns < pd.Timestamp(self.end).value
        return m

    def apply(self, batch: Any, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Modify ``batch`` in place on the rows in ``mask``; mark what was touched."""
        raise DefinitionError(f"{type(self).__name__} is abstract.", fix="Use a concrete fault class.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with the class name under ``type``."""
        d = asdict(self)
        for k in ("start", "end"):
            d[k] = None if d[k] is None else d[k].isoformat()
        d["type"] = type(self).__name__
        return d


def _seg_mask(batch: Any, segment: str | None) -> np.ndarray:
    if segment is None:
        return np.ones(batch.n, dtype=bool)
    if segment not in batch.segment_names:
        return np.zeros(batch.n, dtype=bool)
    return batch.seg == batch.segment_names.index(segment)


@dataclass(frozen=True, kw_only=True)
class CovariateDrift(Fault):
    """Shift and scale one input feature: ``x -> x * scale + shift`` (optionally one segment)."""

    feature: str
    shift: float = 0.0
    scale: float = 1.0
    segment: str | None = None
    stage: ClassVar[str] = "features"

    def __post_init__(self) -> None:
        super().__post_init__()
        _name("CovariateDrift", self.feature, "feature")

    def apply(self, batch: Any, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Apply the fault to the rows in ``mask`` and mark the touched requests."""
        m = mask & _seg_mask(batch, self.segment)
        col = batch.X[self.feature]
        col[m] = col[m] * self.scale + self.shift
        batch.affected_features |= m


@dataclass(frozen=True, kw_only=True)
class ConceptDrift(Fault):
    """A new fraud pattern the model cannot see: a share of legitimate requests become fraud."""

    share: float = 0.05
    segment: str | None = None
    stage: ClassVar[str] = "traffic"

    def __post_init__(self) -> None:
        super().__post_init__()
        _share("ConceptDrift", self.share)

    def apply(self, batch: Any, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Apply the fault to the rows in ``mask`` and mark the touched requests."""
        m = mask & _seg_mask(batch, self.segment) & (batch.label == 0) & (rng.random(batch.n) < self.share)
        batch.label[m] = 1
        batch.affected_other |= m


@dataclass(frozen=True, kw_only=True)
class OnlineStoreOutage(Fault):
    """The online store fails for a share of requests: keys read as missing, or reads time out."""

    share: float = 1.0
    mode: str = "missing"
    stage: ClassVar[str] = "features"

    def __post_init__(self) -> None:
        super().__post_init__()
        _share("OnlineStoreOutage", self.share)
        if self.mode not in ("missing", "timeout"):
            raise DefinitionError(f"OnlineStoreOutage: mode must be 'missing' or 'timeout', got {self.mode!r}.",
                                  fix="Use mode='timeout' for slow reads, 'missing' for lost keys.")

    def apply(self, batch: Any, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Apply the fault to the rows in ``mask`` and mark the touched requests."""
        m = mask & (rng.random(batch.n) < self.share)
        for name in batch.fetched:
            batch.X[name][m] = np.nan
        if self.mode == "timeout":
            batch.fetch_error |= m
        batch.affected_features |= m


@dataclass(frozen=True, kw_only=True)
class SchemaChange(Fault):
    """One feature changes upstream: ``renamed`` (reads as null) or ``rescaled`` (unit change)."""

    feature: str
    kind: str = "renamed"
    factor: float = 100.0
    stage: ClassVar[str] = "features"

    def __post_init__(self) -> None:
        super().__post_init__()
        _name("SchemaChange", self.feature, "feature")
        if self.kind not in ("renamed", "rescaled"):
            raise DefinitionError(f"SchemaChange: kind must be 'renamed' or 'rescaled', got {self.kind!r}.",
                                  fix="Use kind='renamed' (nulls) or kind='rescaled' (silent unit change).")

    def apply(self, batch: Any, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Apply the fault to the rows in ``mask`` and mark the touched requests."""
        col = batch.X[self.feature]
        col[mask] = np.nan if self.kind == "renamed" else col[mask] * self.factor
        batch.affected_features |= mask


@dataclass(frozen=True, kw_only=True)
class SegmentRegression(Fault):
    """The candidate's scores go wrong on one segment only (inverted, or pinned to ``value``)."""

    segment: str
    mode: str = "invert"
    value: float = 0.0
    arm: str = "candidate"
    stage: ClassVar[str] = "scores"

    def __post_init__(self) -> None:
        super().__post_init__()
        _name("SegmentRegression", self.segment, "segment")
        if self.mode not in ("invert", "constant"):
            raise DefinitionError(f"SegmentRegression: mode must be 'invert' or 'constant', got {self.mode!r}.",
                                  fix="Use mode='invert' (1 - score) or mode='constant' with value=.")
        if self.arm not in ("candidate", "stable"):
            raise DefinitionError(f"SegmentRegression: arm must be 'candidate' or 'stable', got {self.arm!r}.",
                                  fix="Use arm='candidate'.")

    def apply(self, batch: Any, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Apply the fault to the rows in ``mask`` and mark the touched requests."""
        m = mask & _seg_mask(batch, self.segment)
        s = batch.scores[self.arm]
        s[m] = 1.0 - s[m] if self.mode == "invert" else self.value
        batch.affected_other |= m & (batch.arm == (1 if self.arm == "candidate" else 0))


@dataclass(frozen=True, kw_only=True)
class LatencySpike(Fault):
    """Extra milliseconds on a share of requests (optionally only one served arm)."""

    extra_ms: float = 200.0
    share: float = 1.0
    arm: str | None = None
    stage: ClassVar[str] = "latency"

    def __post_init__(self) -> None:
        super().__post_init__()
        _share("LatencySpike", self.share)
        if isinstance(self.extra_ms, bool) or not isinstance(self.extra_ms, (int, float)) or self.extra_ms <= 0:
            raise DefinitionError(f"LatencySpike: extra_ms must be > 0, got {self.extra_ms!r}.",
                                  fix="Use e.g. extra_ms=300.")
        if self.arm not in (None, "stable", "candidate", "fallback"):
            raise DefinitionError(f"LatencySpike: arm must be None, 'stable', 'candidate' or 'fallback', "
                                  f"got {self.arm!r}.", fix="Use arm=None for every arm.")

    def apply(self, batch: Any, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Apply the fault to the rows in ``mask`` and mark the touched requests."""
        m = mask & (rng.random(batch.n) < self.share)
        if self.arm is not None:
            m &= batch.arm == ("stable", "candidate", "fallback").index(self.arm)
        batch.latency[m] += self.extra_ms
        batch.affected_other |= m


@dataclass(frozen=True, kw_only=True)
class LatencyModel:
    """Served latency = base x lognormal noise + online fetch (+ candidate extra, + spikes).

    A timed-out fetch costs ``timeout_ms`` instead of the fetch time and fails the request
    (unless the fallback model serves it without features).
    """

    base_ms: float = 15.0
    sigma: float = 0.25
    fetch_ms: float = 4.0
    fetch_sigma: float = 0.3
    timeout_ms: float = 250.0
    candidate_extra_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("base_ms", "sigma", "fetch_ms", "fetch_sigma", "timeout_ms", "candidate_extra_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise DefinitionError(f"LatencyModel: {name} must be a number >= 0, got {v!r}.",
                                      fix=f"Use e.g. {name}=10.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


_FAULTS = {c.__name__: c for c in (CovariateDrift, ConceptDrift, OnlineStoreOutage, LatencySpike,
                                    SegmentRegression, SchemaChange)}


def fault_from_dict(data: Mapping[str, Any]) -> Fault:
    """Rebuild a fault from its ``to_dict()`` form."""
    d = dict(data)
    cls = _FAULTS.get(d.pop("type", None))
    if cls is None:
        raise DefinitionError(f"fault_from_dict: unknown type {data.get('type')!r}.", fix=f"Use one of {sorted(_FAULTS)}.")
    for k in ("start", "end"):
        if d.get(k) is not None:
            d[k] = datetime.fromisoformat(d[k])
    return cls(**d)
