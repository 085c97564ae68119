"""Time helpers shared by every sub-package: UTC validation and explicit clocks.

Logic in the kit never calls the wall clock. Functions that need "now" take a clock:
any zero-argument callable returning a tz-aware UTC ``datetime``. ``FixedClock`` and
``SimulatedClock`` are the deterministic ones used by tests and notebooks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pandas as pd

from .errors import TimezoneError, ValidationError

__all__ = [
    "Clock", "FixedClock", "SimulatedClock", "system_clock", "ensure_utc", "ensure_utc_series", "UTC",
]

UTC = timezone.utc
Clock = Callable[[], datetime]


def ensure_utc(value: object, *, name: str = "timestamp") -> datetime:
    """Return ``value`` as a tz-aware UTC ``datetime``; refuse naive input.

    >>> ensure_utc(datetime(2024, 1, 1, tzinfo=UTC)).isoformat()
    '2024-01-01T00:00:00+00:00'
    """
    if isinstance(value, str):
        try:
            value = pd.Timestamp(value)
        except ValueError as exc:
            raise ValidationError(
                f"{name}: could not parse {value!r} as a timestamp.",
                fix="Pass an ISO-8601 string with an offset, e.g. '2024-01-01T00:00:00+00:00'.",
            ) from exc
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{name} must be a datetime, got {type(value).__name__} {value!r}.",
            fix="Pass datetime(..., tzinfo=timezone.utc) or a tz-aware pandas Timestamp.",
        )
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise TimezoneError(
            f"{name} is naive (no timezone): {value!r}.",
            fix="Localize it first, e.g. value.replace(tzinfo=timezone.utc) or "
            "pd.Timestamp(value).tz_localize('UTC').",
        )
    return value.astimezone(UTC)


def ensure_utc_series(series: pd.Series, *, name: str) -> pd.Series:
    """Return a datetime column as ``datetime64[us, UTC]``; refuse naive or non-datetime input."""
    dtype = series.dtype
    if not isinstance(dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(dtype):
            raise TimezoneError(
                f"column {name!r} holds naive timestamps.",
                fix=f"Localize it first: df[{name!r}] = df[{name!r}].dt.tz_localize('UTC').",
                column=name,
            )
        raise ValidationError(
            f"column {name!r} must hold tz-aware timestamps, got dtype {dtype}.",
            fix=f"Convert it: df[{name!r}] = pd.to_datetime(df[{name!r}], utc=True).",
            column=name,
        )
    return series.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


class FixedClock:
    """A clock that always answers the same instant (advance it by hand)."""

    def __init__(self, at: datetime) -> None:
        self._now = ensure_utc(at, name="FixedClock(at)")

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        if delta < timedelta(0):
            raise ValidationError(
                f"FixedClock.advance: delta must be >= 0, got {delta}.",
                fix="Clocks only move forward; pass a non-negative timedelta.",
            )
        self._now = self._now + delta
        return self._now

    def set(self, at: datetime) -> datetime:
        """Jump to ``at`` (not earlier than the current time)."""
        at = ensure_utc(at, name="FixedClock.set(at)")
        if at < self._now:
            raise ValidationError(
                f"FixedClock.set: {at.isoformat()} is before the current {self._now.isoformat()}.",
                fix="Clocks only move forward.",
            )
        self._now = at
        return self._now


class SimulatedClock(FixedClock):
    """A clock that ticks by ``step`` on every read (monotonic, deterministic)."""

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        super().__init__(start)
        self._step = step

    def __call__(self) -> datetime:
        now = self._now
        self._now = self._now + self._step
        return now


def system_clock() -> datetime:
    """The wall clock: only for defaults at the edge (CLI, interactive use), never in logic."""
    return datetime.now(UTC)
