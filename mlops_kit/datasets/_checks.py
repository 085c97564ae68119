"""Validation of ``Scenario`` fields (each check names the field, the value and the fix).

Checks run in ``Scenario.__post_init__``; a check that normalises a value (UTC datetimes,
floats, sorted outage windows) writes it back on the frozen instance.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from .._time import ensure_utc
from ..errors import DefinitionError, TimezoneError


def fail(name: str, value: Any, problem: str, fix: str) -> DefinitionError:
    """The error for field ``name``: what was wrong with ``value`` and how to fix it."""
    return DefinitionError(
        f"Scenario {name!r}: {problem}, got {value!r}.", fix=fix, field=name, value=value
    )


def _defaults(s: Any) -> dict[str, Any]:
    return {f.name: f.default for f in fields(s)}


def check_start(s: Any) -> None:
    try:
        start = ensure_utc(s.start, name="Scenario 'start'")
    except TimezoneError as exc:
        raise TimezoneError(
            f"Scenario 'start' is naive (no timezone), got {s.start!r}.",
            fix="Pass a tz-aware UTC datetime, e.g. datetime(2024, 1, 1, tzinfo=timezone.utc).",
            field="start", value=s.start,
        ) from exc
    except Exception as exc:
        raise fail("start", s.start, "must be a tz-aware datetime",
                   "Pass datetime(2024, 1, 1, tzinfo=timezone.utc).") from exc
    object.__setattr__(s, "start", start)


def check_counts(s: Any) -> None:
    defaults = _defaults(s)
    for name in ("days", "n_users", "n_merchants", "n_transactions"):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail(name, value, "must be a positive integer",
                       f"Pass {name}=<int >= 1>, e.g. the default {defaults[name]}.")


def check_share(s: Any, name: str, *, low: float, high: float) -> None:
    defaults = _defaults(s)
    value = getattr(s, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not low <= value <= high:
        raise fail(name, value, f"must be a number in [{low}, {high}]",
                   f"Pass a share such as {name}={defaults[name] or 0.05}.")
    object.__setattr__(s, name, float(value))


def check_positive(s: Any, name: str, low: float, high: float, *, allow_zero: bool = False) -> None:
    defaults = _defaults(s)
    value = getattr(s, name)
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (low <= value <= high if allow_zero else low <= value <= high and value > 0)
    if not ok:
        raise fail(name, value, f"must be a number in [{low}, {high}]",
                   f"Pass e.g. {name}={defaults[name]}.")
    object.__setattr__(s, name, float(value))


def check_late_delay(s: Any) -> None:
    value = s.late_delay_hours
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise fail("late_delay_hours", value, "must be a (low, high) pair of hours",
                   "Pass e.g. late_delay_hours=(1.0, 72.0).") from exc
    if not (0 < low <= high <= 24 * 365):
        raise fail("late_delay_hours", value, "needs 0 < low <= high <= 8760 hours",
                   "Pass e.g. late_delay_hours=(1.0, 72.0).")
    object.__setattr__(s, "late_delay_hours", (low, high))


def check_drift(s: Any, name: str) -> None:
    value = getattr(s, name)
    if value is None:
        return
    try:
        when = ensure_utc(value, name=f"Scenario {name!r}")
    except TimezoneError as exc:
        raise TimezoneError(
            f"Scenario {name!r} is naive (no timezone), got {value!r}.",
            fix="Pass a tz-aware UTC datetime.", field=name, value=value) from exc
    except Exception as exc:
        raise fail(name, value, "must be a tz-aware datetime or None",
                   f"Pass e.g. {name}=start + timedelta(days=40).") from exc
    if not s.start < when < s.end:
        raise fail(name, value, f"must fall inside the world ({s.start.isoformat()} .. "
                   f"{s.end.isoformat()})", "Pick an instant strictly between start and end.")
    object.__setattr__(s, name, when)


def check_schema_change(s: Any, changes: tuple[str, ...], change_fields: tuple[str, ...]) -> None:
    if s.schema_change is not None and s.schema_change not in changes:
        raise fail("schema_change", s.schema_change, f"must be None or one of {changes}",
                   "Pass schema_change='rename' or 'retype' (or None to keep the schema).")
    if s.schema_change_field not in change_fields:
        raise fail("schema_change_field", s.schema_change_field,
                   f"must be one of {change_fields}", "Pass e.g. schema_change_field='amount'.")


def check_outages(s: Any) -> None:
    windows = []
    try:
        items = list(s.outages)
    except TypeError as exc:
        raise fail("outages", s.outages, "must be a sequence of (start, end) pairs",
                   "Pass e.g. outages=((t0, t0 + timedelta(hours=6)),).") from exc
    for i, window in enumerate(items):
        try:
            lo, hi = window
            lo = ensure_utc(lo, name=f"Scenario 'outages[{i}]' start")
            hi = ensure_utc(hi, name=f"Scenario 'outages[{i}]' end")
        except TimezoneError:
            raise
        except Exception as exc:
            raise fail(f"outages[{i}]", window, "must be a (start, end) pair of tz-aware datetimes",
                       "Pass e.g. (t0, t0 + timedelta(hours=6)).") from exc
        if not lo < hi:
            raise fail(f"outages[{i}]", window, "is inverted or empty (start must be before end)",
                       "Swap the two instants so that start < end.")
        windows.append((lo, hi))
    windows.sort()
    for (a_lo, a_hi), (b_lo, b_hi) in zip(windows, windows[1:]):
        if b_lo < a_hi:
            raise fail("outages", s.outages, "holds overlapping windows",
                       "Merge overlapping outage windows into one.")
    object.__setattr__(s, "outages", tuple(windows))
