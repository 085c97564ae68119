"""Quality check declarations: frozen, keyword-only, validated at construction.

Every check carries an ``id``, a ``severity`` (``"block"`` stops a pipeline at the gate,
``"warn"`` only reports), an ``owner``, a ``remediation`` text (what to do when it fails) and
its blast radius (``consumers``: the models and feature services that read the data; the
suite adds the consumers registered in the catalog). The check types:

============================  ==============================================================
``NullRateCheck``             share of nulls in a column, overall or worst segment
``RangeCheck``                share of non-null values outside ``[min_value, max_value]``
``UniqueKeyCheck``            duplicate key rows within each partition (UTC day)
``AllowedValuesCheck``        share of non-null values outside an allowed set
``SqlInvariantCheck``         share of rows where a DuckDB boolean expression is not true
``FreshnessCheck``            age of the newest row (or of the stalest entity) at ``now``
``VolumeCheck``               row-count change of each partition against the previous one
============================  ==============================================================
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from ..errors import DefinitionError

__all__ = [
    "QualityCheck",
    "NullRateCheck",
    "RangeCheck",
    "UniqueKeyCheck",
    "AllowedValuesCheck",
    "SqlInvariantCheck",
    "FreshnessCheck",
    "VolumeCheck",
    "SEVERITIES",
    "check_from_dict",
]

SEVERITIES = ("block", "warn")
_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def _fail(obj: Any, field_name: str, value: Any, fix: str, why: str) -> DefinitionError:
    ident = getattr(obj, "id", "?")
    return DefinitionError(
        f"{type(obj).__name__} {ident!r}: {field_name} {why}, got {value!r}.",
        fix=fix, object=type(obj).__name__, field=field_name, value=repr(value),
    )


def _rate(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _fail(obj, name, value, f"Use a share between 0 and 1, e.g. {name}=0.01.",
                    "must be a number between 0 and 1")


def _names(obj: Any, name: str, *, allow_empty: bool) -> None:
    value = getattr(obj, name)
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) and v for v in value) \
            or (not allow_empty and not value):
        example = "('fraud_model',)" if name == "consumers" else "('user_id',)"
        raise _fail(obj, name, value, f"Pass a tuple of names, e.g. {name}={example}.",
                    "must be a tuple of non-empty names")
    object.__setattr__(obj, name, tuple(value))


def _column(obj: Any) -> None:
    if not isinstance(obj.column, str) or not obj.column:
        raise _fail(obj, "column", obj.column, "Pass the column name, e.g. column='amount'.",
                    "must be a non-empty column name")


@dataclass(frozen=True, kw_only=True)
class QualityCheck:
    """Fields shared by every check (use a concrete subclass)."""

    kind: ClassVar[str] = ""
    id: str
    severity: str
    owner: str
    remediation: str
    consumers: tuple[str, ...] = ()
    min_rows: int = 1

    def __post_init__(self) -> None:
        if type(self) is QualityCheck:
            raise DefinitionError("QualityCheck is abstract.",
                                  fix="Use NullRateCheck, RangeCheck, ... (see mlops_kit.quality).")
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise _fail(self, "id", self.id, "Use letters, digits and _.:- e.g. id='amount_range'.",
                        "must be a non-empty identifier")
        if self.severity not in SEVERITIES:
            raise _fail(self, "severity", self.severity,
                        "Use severity='block' (stops the gate) or severity='warn' (reports only).",
                        f"must be one of {SEVERITIES}")
        for name in ("owner", "remediation"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise _fail(self, name, value,
                            f"Every check needs an {name}: say who is paged / what to do.",
                            "must be a non-empty string")
        _names(self, "consumers", allow_empty=True)
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise _fail(self, "min_rows", self.min_rows, "Use a positive integer, e.g. min_rows=30.",
                        "must be an integer >= 1")
        self._validate()

    def _validate(self) -> None:  # overridden by each check type
        return None

    @property
    def threshold(self) -> Any:
        """The limit the observed value is compared with (shown in results)."""
        raise DefinitionError(f"{type(self).__name__} has no threshold.", fix="Use a concrete check.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a ``type`` tag; ``check_from_dict`` reverses it."""
        out: dict[str, Any] = {"type": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, timedelta):
                value = value.total_seconds()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class NullRateCheck(QualityCheck):
    """Null share of ``column`` <= ``max_rate``, overall or in every segment of ``segment_by``.

    Segments with fewer than ``min_rows`` rows are not judged (listed in the details).
    """

    kind: ClassVar[str] = "null_rate"
    column: str
    max_rate: float
    segment_by: tuple[str, ...] = ()

    def _validate(self) -> None:
        _column(self)
        _rate(self, "max_rate")
        _names(self, "segment_by", allow_empty=True)

    @property
    def threshold(self) -> float:
        return float(self.max_rate)


@dataclass(frozen=True, kw_only=True)
class RangeCheck(QualityCheck):
    """Share of non-null values outside ``[min_value, max_value]`` <= ``max_violation_rate``."""

    kind: ClassVar[str] = "range"
    column: str
    min_value: float | None = None
    max_value: float | None = None
    max_violation_rate: float = 0.0

    def _validate(self) -> None:
        _column(self)
        for name in ("min_value", "max_value"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or math.isnan(value)):
                raise _fail(self, name, value, "Pass a number or None.", "must be a number")
        if self.min_value is None and self.max_value is None:
            raise _fail(self, "min_value/max_value", None, "Give at least one bound.",
                        "cannot both be None")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise _fail(self, "min_value", self.min_value, "Swap the bounds.",
                        f"must be <= max_value={self.max_value}")
        _rate(self, "max_violation_rate")

    @property
    def threshold(self) -> float:
        return float(self.max_violation_rate)


@dataclass(frozen=True, kw_only=True)
class UniqueKeyCheck(QualityCheck):
    """At most ``max_duplicates`` duplicate key rows within each partition (UTC day)."""

    kind: ClassVar[str] = "unique_key"
    columns: tuple[str, ...]
    max_duplicates: int = 0

    def _validate(self) -> None:
        _names(self, "columns", allow_empty=False)
        if isinstance(self.max_duplicates, bool) or not isinstance(self.max_duplicates, int) \
                or self.max_duplicates < 0:
            raise _fail(self, "max_duplicates", self.max_duplicates, "Use an integer >= 0.",
                        "must be a non-negative integer")

    @property
    def threshold(self) -> int:
        return self.max_duplicates


@dataclass(frozen=True, kw_only=True)
class AllowedValuesCheck(QualityCheck):
    """Share of non-null values of ``column`` outside ``allowed`` <= ``max_violation_rate``."""

    kind: ClassVar[str] = "allowed_values"
    column: str
    allowed: tuple[Any, ...]
    max_violation_rate: float = 0.0

    def _validate(self) -> None:
        _column(self)
        if isinstance(self.allowed, (str, bytes)) or not isinstance(self.allowed, (tuple, list, set, frozenset)) \
                or not self.allowed:
            raise _fail(self, "allowed", self.allowed, "Pass a non-empty tuple, e.g. allowed=('a', 'b').",
                        "must be a non-empty collection of values")
        values = tuple(sorted(self.allowed, key=repr)) if isinstance(self.allowed, (set, frozenset)) \
            else tuple(self.allowed)
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise _fail(self, "allowed", self.allowed, "Use strings or numbers.",
                        "must hold only strings or numbers")
        object.__setattr__(self, "allowed", values)
        _rate(self, "max_violation_rate")

    @property
    def threshold(self) -> float:
        return float(self.max_violation_rate)


@dataclass(frozen=True, kw_only=True)
class SqlInvariantCheck(QualityCheck):
    """Share of rows where ``expression`` is false (or null) <= ``max_violation_rate``.

    ``expression`` is a DuckDB boolean expression over the columns, e.g.
    ``"amount >= 0 AND currency IS NOT NULL"``; a null result counts as a violation.
    """

    kind: ClassVar[str] = "sql_invariant"
    expression: str
    max_violation_rate: float = 0.0

    def _validate(self) -> None:
        if not isinstance(self.expression, str) or not self.expression.strip() or ";" in self.expression:
            raise _fail(self, "expression", self.expression,
                        "Pass one boolean expression without ';', e.g. \"amount >= 0\".",
                        "must be a single non-empty SQL boolean expression")
        _rate(self, "max_violation_rate")

    @property
    def threshold(self) -> float:
        return float(self.max_violation_rate)


@dataclass(frozen=True, kw_only=True)
class FreshnessCheck(QualityCheck):
    """Feature age at ``now`` <= ``max_age``.

    Without ``entity_columns`` the age is ``now - max(timestamp)`` (the newest row). With
    them, each entity's age is ``now - its latest timestamp`` and the observed value is the
    ``quantile`` of those ages (1.0: the stalest entity; 0.95: p95, linear interpolation).
    """

    kind: ClassVar[str] = "freshness"
    max_age: timedelta
    entity_columns: tuple[str, ...] = ()
    quantile: float = 1.0

    def _validate(self) -> None:
        if not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0):
            raise _fail(self, "max_age", self.max_age, "Use e.g. max_age=timedelta(hours=6).",
                        "must be a positive timedelta")
        _names(self, "entity_columns", allow_empty=True)
        _rate(self, "quantile")

    @property
    def threshold(self) -> float:
        return self.max_age.total_seconds()


@dataclass(frozen=True, kw_only=True)
class VolumeCheck(QualityCheck):
    """Each partition's row count within ``max_change`` (relative) of the previous partition.

    Partitions are UTC days; a day with no rows counts as 0 rows (a -100 % change). The
    partition before the suite's ``start`` is the baseline of the first one.
    """

    kind: ClassVar[str] = "volume"
    max_change: float = 0.5

    def _validate(self) -> None:
        if isinstance(self.max_change, bool) or not isinstance(self.max_change, (int, float)) \
                or not self.max_change > 0 or math.isinf(self.max_change):
            raise _fail(self, "max_change", self.max_change, "Use e.g. max_change=0.5 (+-50 %).",
                        "must be a positive finite number")

    @property
    def threshold(self) -> float:
        return float(self.max_change)


_TYPES: dict[str, type[QualityCheck]] = {
    cls.kind: cls for cls in (NullRateCheck, RangeCheck, UniqueKeyCheck, AllowedValuesCheck,
                              SqlInvariantCheck, FreshnessCheck, VolumeCheck)
}


def check_from_dict(data: dict[str, Any]) -> QualityCheck:
    """Rebuild a check from ``QualityCheck.to_dict()`` output."""
    if not isinstance(data, dict) or data.get("type") not in _TYPES:
        raise DefinitionError(
            f"check_from_dict: unknown or missing 'type' in {data!r}.",
            fix=f"Use one of {sorted(_TYPES)} (the output of QualityCheck.to_dict()).",
        )
    cls = _TYPES[data["type"]]
    kwargs = {k: v for k, v in data.items() if k != "type"}
    if "max_age" in kwargs and not isinstance(kwargs["max_age"], timedelta):
        kwargs["max_age"] = timedelta(seconds=float(kwargs["max_age"]))
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise DefinitionError(f"check_from_dict: unknown field(s) {unknown} for {cls.__name__}.",
                              fix=f"Use only {sorted(names)}.")
    for key, value in kwargs.items():
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    return cls(**kwargs)

