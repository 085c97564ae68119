"""``QualitySuite``: a named set of checks run over a table and a partition range in DuckDB."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._time import ensure_utc
from ..errors import DefinitionError, ValidationError
from ._evaluate import Context, evaluate_check
from ._source import as_relation, filter_range, require_utc_timestamp
from .checks import QualityCheck, check_from_dict
from .report import QualityReport

__all__ = ["QualitySuite"]


@dataclass(frozen=True, kw_only=True)
class QualitySuite:
    """Checks for one table (usually a feature view), run together.

    Parameters
    ----------
    checks:
        The checks; their ids must be unique.
    view:
        The name of the table/feature view checked (used to look up consumers and in messages).
    timestamp_column:
        The event-time column: partitions are its UTC days and the range filter applies to it.
        ``None`` for tables without time (then freshness and volume checks are refused).

    Examples
    --------
    >>> import pandas as pd
    >>> from mlops_kit.quality import NullRateCheck
    >>> suite = QualitySuite(view="txn", timestamp_column=None, checks=[NullRateCheck(
    ...     id="amount_nulls", severity="block", owner="payments-data", column="amount",
    ...     max_rate=0.1, remediation="Re-run the ingestion job.")])
    >>> suite.run(pd.DataFrame({"amount": [1.0, None, 3.0]})).results[0].verdict
    'fail'
    """

    checks: tuple[QualityCheck, ...]
    view: str | None = None
    timestamp_column: str | None = "event_timestamp"

    def __post_init__(self) -> None:
        checks = tuple(self.checks) if isinstance(self.checks, (list, tuple)) else None
        if not checks or not all(isinstance(c, QualityCheck) for c in checks):
            raise DefinitionError(
                f"QualitySuite {self.view!r}: checks must be a non-empty list of checks, got {self.checks!r}.",
                fix="Pass e.g. checks=[NullRateCheck(...), RangeCheck(...)].",
            )
        ids = [c.id for c in checks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise DefinitionError(f"QualitySuite {self.view!r}: duplicate check id(s) {dupes}.",
                                  fix="Give every check its own id.")
        for name in ("view", "timestamp_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise DefinitionError(f"QualitySuite: {name} must be a non-empty string or None, got {value!r}.",
                                      fix=f"Pass e.g. {name}='event_timestamp'.")
        object.__setattr__(self, "checks", checks)

    def run(
        self,
        data: Any,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        now: datetime | None = None,
        clock: Callable[[], datetime] | None = None,
        catalog: Any = None,
        consumers: Sequence[str] = (),
    ) -> QualityReport:
        """Run every check over the rows of ``data`` with ``start <= timestamp < end``.

        Parameters
        ----------
        data:
            A pandas DataFrame, a list of Parquet paths (e.g. ``store.offline_files(view)``) or
            a DuckDB relation.
        start, end:
            The partition range (tz-aware UTC; either may be None for an open bound).
        now, clock:
            The current time for freshness checks (``now`` wins; ``clock()`` otherwise).
        catalog:
            Any object with ``blast_radius(view) -> list[str]`` (e.g. ``Governance``): the
            consumers it returns are added to every result's blast radius.
        consumers:
            Extra consumers to add to every result.
        """
        start = None if start is None else ensure_utc(start, name="QualitySuite.run(start)")
        end = None if end is None else ensure_utc(end, name="QualitySuite.run(end)")
        if start is not None and end is not None and end <= start:
            raise ValidationError(f"QualitySuite.run: end {end.isoformat()} is not after start {start.isoformat()}.",
                                  fix="Pass a non-empty range start < end.")
        if now is None and clock is not None:
            if not callable(clock):
                raise ValidationError("QualitySuite.run: clock must be callable.",
                                      fix="Pass e.g. clock=FixedClock(datetime(..., tzinfo=UTC)).")
            now = clock()
        now = None if now is None else ensure_utc(now, name="QualitySuite.run(now)")
        if isinstance(consumers, str) or not all(isinstance(c, str) for c in consumers):
            raise ValidationError(f"QualitySuite.run: consumers must be a list of names, got {consumers!r}.",
                                  fix="Pass e.g. consumers=['fraud_model'].")
        found = list(consumers)
        if catalog is not None:
            if not callable(getattr(catalog, "blast_radius", None)):
                raise ValidationError("QualitySuite.run: catalog has no blast_radius(view) method.",
                                      fix="Pass a Governance object or leave catalog=None.")
            if self.view is None:
                raise ValidationError("QualitySuite.run: a catalog lookup needs the suite's view name.",
                                      fix="Create the suite with view='<feature view name>'.")
            found += list(catalog.blast_radius(self.view))
        if isinstance(data, (list, tuple)) and not data:  # e.g. a view with no offline partitions
            ctx = Context(rel=None, full=None, timestamp_column=self.timestamp_column, start=start, end=end,
                          now=now, consumers=tuple(dict.fromkeys(found)))
            return QualityReport(view=self.view, start=start, end=end,
                                 results=tuple(evaluate_check(check, ctx) for check in self.checks))
        full = as_relation(data, where=f"QualitySuite {self.view!r}")
        rel = full
        if self.timestamp_column is not None:
            require_utc_timestamp(full, self.timestamp_column, where=f"QualitySuite {self.view!r}")
            rel = filter_range(full, self.timestamp_column, start, end)
        elif start is not None or end is not None:
            raise ValidationError("QualitySuite.run: a partition range needs a timestamp column.",
                                  fix="Create the suite with timestamp_column=..., or drop start/end.")
        ctx = Context(rel=rel, full=full, timestamp_column=self.timestamp_column, start=start, end=end,
                      now=now, consumers=tuple(dict.fromkeys(found)))
        results = tuple(evaluate_check(check, ctx) for check in self.checks)
        return QualityReport(view=self.view, start=start, end=end, results=results)

    def run_offline(self, store: Any, *, version: int | None = None, **kwargs: Any) -> QualityReport:
        """Run over the offline Parquet files of ``self.view`` in ``store`` (a ``FeatureStore``).

        ``kwargs`` are those of ``run`` (``start``, ``end``, ``now``, ``clock``, ``catalog``,
        ``consumers``). A view without offline files gives inconclusive results.
        """
        if self.view is None:
            raise ValidationError("QualitySuite.run_offline: the suite has no view name.",
                                  fix="Create the suite with view='<feature view name>'.")
        if not callable(getattr(store, "offline_files", None)):
            raise ValidationError(f"QualitySuite.run_offline: {type(store).__name__} has no offline_files().",
                                  fix="Pass a FeatureStore (e.g. Workspace(root).features).")
        return self.run(list(store.offline_files(self.view, version=version)), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "timestamp_column": self.timestamp_column,
                "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QualitySuite":
        if not isinstance(data, dict) or "checks" not in data:
            raise DefinitionError("QualitySuite.from_dict: expected a dict with 'checks'.",
                                  fix="Pass the output of QualitySuite.to_dict().")
        return cls(view=data.get("view"), timestamp_column=data.get("timestamp_column"),
                   checks=tuple(check_from_dict(c) for c in data["checks"]))
