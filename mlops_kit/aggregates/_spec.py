"""Rolling aggregate declarations: what to compute, over which window, per which entity.

The output grain is one row per (entity, day). The row for day ``d`` describes the state
**at the end of that day**: its ``event_timestamp`` is the next midnight (UTC) and each
aggregate covers the half-open window ``[day_end - window, day_end)``. A transaction at
exactly midnight therefore counts toward the day it starts (its own partition), never
toward the row stamped with that same midnight, so a point-in-time join of a transaction
at ``T`` with ``feature_ts <= T`` never sees the transaction itself. Windows are whole
days (``timedelta(hours=24)``, ``timedelta(days=7)``, ...) so that every window starts on
a partition boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .._io import canonical_json, sha256_bytes
from ..errors import DefinitionError

__all__ = ["FUNCTIONS", "RESERVED_COLUMNS", "RollingAggregate", "AggregateSpec"]

#: Supported aggregate functions. ``count`` counts non-null values of the column,
#: ``count_distinct`` distinct non-null values; ``sum``/``mean``/``min``/``max`` need a
#: numeric column.
FUNCTIONS = ("count", "sum", "mean", "min", "max", "count_distinct")
NUMERIC_FUNCTIONS = frozenset({"sum", "mean", "min", "max"})
#: Columns every output table carries besides the entity key and the aggregates.
RESERVED_COLUMNS = ("event_timestamp", "created_timestamp")
_DAY = timedelta(days=1)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_ident(owner: str, field_name: str, value: object) -> None:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise DefinitionError(
            f"{owner}: {field_name} must be an identifier (letters, digits, underscore; "
            f"not starting with a digit), got {value!r}.",
            fix=f"Use a name like 'user_id' or 'amount' for {field_name}.",
            field=field_name, value=value,
        )


@dataclass(frozen=True, kw_only=True)
class RollingAggregate:
    """One rolling aggregate feature, e.g. a user's 7-day transaction count.

    Parameters
    ----------
    name:
        Output column name (unique within its spec).
    column:
        Source column the function reads.
    function:
        One of ``count``, ``sum``, ``mean``, ``min``, ``max``, ``count_distinct``.
    window:
        Look-back window, a positive whole number of days (``timedelta(hours=24)`` is fine).
    entity_key:
        Column identifying the entity the aggregate is computed per (e.g. ``user_id``).
    timestamp_field:
        Event-time column deciding which window a row falls in.

    Examples
    --------
    >>> agg = RollingAggregate(name="amount_sum_7d", column="amount", function="sum",
    ...                        window=timedelta(days=7), entity_key="user_id")
    >>> agg.window_days
    7
    """

    name: str
    column: str
    function: str
    window: timedelta
    entity_key: str
    timestamp_field: str = "event_timestamp"

    def __post_init__(self) -> None:
        owner = f"RollingAggregate {self.name!r}"
        _check_ident("RollingAggregate", "name", self.name)
        for field_name in ("column", "entity_key", "timestamp_field"):
            _check_ident(owner, field_name, getattr(self, field_name))
        if self.name in RESERVED_COLUMNS or self.name == self.entity_key:
            raise DefinitionError(
                f"{owner}: name collides with an output column ({self.name!r}).",
                fix="Rename the aggregate, e.g. 'amount_sum_7d'.", field="name", value=self.name,
            )
        if self.function not in FUNCTIONS:
            raise DefinitionError(
                f"{owner}: function must be one of {', '.join(FUNCTIONS)}, got {self.function!r}.",
                fix="Pick a supported function, e.g. function='sum'.",
                field="function", value=self.function,
            )
        if not isinstance(self.window, timedelta):
            raise DefinitionError(
                f"{owner}: window must be a datetime.timedelta, got "
                f"{type(self.window).__name__} {self.window!r}.",
                fix="Use e.g. window=timedelta(days=7).", field="window", value=self.window,
            )
        if self.window <= timedelta(0):
            raise DefinitionError(
                f"{owner}: window must be a positive timedelta, got {self.window}.",
                fix="Use e.g. window=timedelta(hours=24) or timedelta(days=30).",
                field="window", value=str(self.window),
            )
        if self.window % _DAY:
            raise DefinitionError(
                f"{owner}: window must be a whole number of days (output grain is one row "
                f"per entity and day), got {self.window}.",
                fix="Round it to whole days, e.g. timedelta(days=1) or timedelta(days=7).",
                field="window", value=str(self.window),
            )

    @property
    def window_days(self) -> int:
        """The window length in days."""
        return self.window // _DAY

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (the window in whole days)."""
        return {"name": self.name, "column": self.column, "function": self.function,
                "window_days": self.window_days, "entity_key": self.entity_key,
                "timestamp_field": self.timestamp_field}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RollingAggregate:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or "window_days" not in data:
            raise DefinitionError(
                f"RollingAggregate.from_dict: expected a dict with 'window_days', got {data!r}.",
                fix="Pass the output of RollingAggregate.to_dict().",
            )
        fields = dict(data)
        days = fields.pop("window_days")
        if not isinstance(days, int) or isinstance(days, bool):
            raise DefinitionError(
                f"RollingAggregate.from_dict: window_days must be an integer, got {days!r}.",
                fix="Pass the output of RollingAggregate.to_dict().",
            )
        try:
            return cls(window=timedelta(days=days), **fields)
        except TypeError as exc:
            raise DefinitionError(
                f"RollingAggregate.from_dict: unexpected fields in {sorted(data)}.",
                fix="Pass the output of RollingAggregate.to_dict().",
            ) from exc


@dataclass(frozen=True, kw_only=True)
class AggregateSpec:
    """A feature set of rolling aggregates sharing one entity key and event-time column.

    Parameters
    ----------
    name:
        Name of the feature set (and of the output table).
    aggregates:
        The :class:`RollingAggregate` declarations (a list is accepted and stored as a tuple).
    ingested_field:
        Processing-time column of the source (when the pipeline saw a row); the watermark
        of incremental updates is kept on it.

    Examples
    --------
    >>> spec = AggregateSpec(name="user_txn", aggregates=[
    ...     RollingAggregate(name="amount_sum_24h", column="amount", function="sum",
    ...                      window=timedelta(hours=24), entity_key="user_id"),
    ...     RollingAggregate(name="txn_count_7d", column="transaction_id", function="count",
    ...                      window=timedelta(days=7), entity_key="user_id")])
    >>> spec.max_window_days, spec.entity_key
    (7, 'user_id')
    """

    name: str
    aggregates: tuple[RollingAggregate, ...]
    ingested_field: str = "ingested_at"
    _fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_ident("AggregateSpec", "name", self.name)
        owner = f"AggregateSpec {self.name!r}"
        _check_ident(owner, "ingested_field", self.ingested_field)
        aggs = self.aggregates
        if isinstance(aggs, RollingAggregate) or not isinstance(aggs, (list, tuple)):
            raise DefinitionError(
                f"{owner}: aggregates must be a list of RollingAggregate, got "
                f"{type(aggs).__name__}.",
                fix="Pass aggregates=[RollingAggregate(...), ...].", field="aggregates",
            )
        aggs = tuple(aggs)
        if not aggs:
            raise DefinitionError(f"{owner}: aggregates is empty.",
                                  fix="Declare at least one RollingAggregate.", field="aggregates")
        bad = [a for a in aggs if not isinstance(a, RollingAggregate)]
        if bad:
            raise DefinitionError(
                f"{owner}: aggregates must hold RollingAggregate objects, got {bad[0]!r}.",
                fix="Wrap each definition in RollingAggregate(...).", field="aggregates",
            )
        names = [a.name for a in aggs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DefinitionError(f"{owner}: duplicate aggregate names {dupes}.",
                                  fix="Give every aggregate a unique name.", field="aggregates")
        for attr in ("entity_key", "timestamp_field"):
            values = sorted({getattr(a, attr) for a in aggs})
            if len(values) > 1:
                raise DefinitionError(
                    f"{owner}: all aggregates must share one {attr}, got {values}.",
                    fix=f"Split them into one AggregateSpec per {attr}.", field=attr,
                )
        if self.ingested_field == aggs[0].timestamp_field:
            raise DefinitionError(
                f"{owner}: ingested_field and timestamp_field are both {self.ingested_field!r}; "
                "event time and processing time must be separate columns.",
                fix="Set ingested_field to the column holding when each row arrived.",
                field="ingested_field",
            )
        object.__setattr__(self, "aggregates", aggs)
        digest = sha256_bytes(canonical_json(self.to_dict()).encode("utf-8"))
        object.__setattr__(self, "_fingerprint", digest)

    @property
    def entity_key(self) -> str:
        return self.aggregates[0].entity_key

    @property
    def timestamp_field(self) -> str:
        return self.aggregates[0].timestamp_field

    @property
    def max_window_days(self) -> int:
        """The longest window: it decides how far back an update must read."""
        return max(a.window_days for a in self.aggregates)

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the declaration (order of aggregates matters)."""
        return self._fingerprint

    @property
    def feature_names(self) -> list[str]:
        return [a.name for a in self.aggregates]

    def source_columns(self) -> list[str]:
        """Every source column the spec reads, in a stable order."""
        cols = [self.entity_key, self.timestamp_field, self.ingested_field]
        cols += [a.column for a in self.aggregates]
        return list(dict.fromkeys(cols))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form; :meth:`from_dict` rebuilds an equal spec."""
        return {"name": self.name, "ingested_field": self.ingested_field,
                "aggregates": [a.to_dict() for a in self.aggregates]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateSpec:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or not isinstance(data.get("aggregates"), list):
            raise DefinitionError(
                "AggregateSpec.from_dict: expected a dict with an 'aggregates' list, "
                f"got {data!r}.",
                fix="Pass the output of AggregateSpec.to_dict().",
            )
        return cls(name=data.get("name"),
                   ingested_field=data.get("ingested_field", "ingested_at"),
                   aggregates=[RollingAggregate.from_dict(a) for a in data["aggregates"]])
