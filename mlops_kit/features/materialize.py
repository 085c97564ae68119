"""Materialization: offline rows -> online store, per view, over ``[start, end)``.

For each entity the latest row with ``start <= feature_ts < end`` (ties: latest created
timestamp, then last ingested) is selected inside DuckDB and upserted into the online
store, whose guard keeps a newer stored value. While no two offline rows of the view share
(keys, event timestamp) the event timestamp alone orders the rows (same winner, cheaper). The view's watermark in
``features.sqlite`` is then raised to ``end`` (it never moves back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from .definitions import FeatureView
from .online import NO_CREATED, OnlineStore
from .pit import SEQ_COLUMN, files_sql, q, ts_sql

__all__ = ["ViewMaterialization", "MaterializationReport", "materialize_view"]


@dataclass(frozen=True)
class ViewMaterialization:
    """What one view's materialization did."""

    view: str
    version: int
    start: datetime
    end: datetime
    rows_scanned: int
    rows_written: int
    entities: int
    watermark: datetime | None


@dataclass(frozen=True)
class MaterializationReport:
    """Per-view results of one ``materialize`` / ``materialize_incremental`` call."""

    views: dict[str, ViewMaterialization] = field(default_factory=dict)

    @property
    def rows_scanned(self) -> int:
        return sum(v.rows_scanned for v in self.views.values())

    @property
    def rows_written(self) -> int:
        return sum(v.rows_written for v in self.views.values())

    def to_dict(self) -> dict[str, Any]:
        return {"views": {k: asdict(v) for k, v in sorted(self.views.items())},
                "rows_scanned": self.rows_scanned, "rows_written": self.rows_written}


def materialize_view(con: duckdb.DuckDBPyConnection, online: OnlineStore, view: FeatureView,
                     key_dtypes: dict[str, str], files: Sequence[Path], start_us: int,
                     end_us: int, has_ties: bool = True) -> tuple[int, int, int]:
    """Select the per-entity winners in ``[start_us, end_us)`` and upsert them.

    Returns ``(rows_scanned, rows_written, entities)``.
    """
    if not files or start_us >= end_us:
        return 0, 0, 0
    keys = ", ".join(q(k) for k in view.join_keys)
    ts = q(view.timestamp_field)
    created = view.created_timestamp_column
    order = ts if not has_ties else \
        f"{{'t': {ts}, " + (f"'c': {q(created)}, " if created else "") + f"'s': {SEQ_COLUMN}}}"
    payload = [f"epoch_us({ts}) AS __event_ts",
               f"epoch_us({q(created)}) AS __created_ts" if created else f"{NO_CREATED} AS __created_ts"]
    for f in view.features:
        payload.append(f"epoch_us({q(f.name)}) AS {q(f.name)}" if f.dtype == "timestamp" else q(f.name))
    sql = (f"SELECT {keys}, count(*) AS __n, arg_max({{{', '.join(_struct_items(payload))}}}, {order}) AS __w "
           f"FROM read_parquet({files_sql(files)}) WHERE {ts} >= {ts_sql(start_us)} "
           f"AND {ts} < {ts_sql(end_us)} GROUP BY {keys}")
    names = ["__event_ts", "__created_ts"] + list(view.feature_names)
    flat = ", ".join([*(q(k) for k in view.join_keys), "__n", *(f"__w[{_sq(q(n))}] AS {q(n)}" for n in names)])
    data = con.sql(f"SELECT {flat} FROM ({sql}) ORDER BY {keys}").fetchnumpy()
    if len(data["__n"]) == 0:
        return 0, 0, 0
    scanned = int(data["__n"].sum())
    # masked arrays (nulls) turn masked entries into None; strings come as object arrays
    columns = [data[name].tolist() for name in [*view.join_keys, *names]]
    written = online.write_rows(view, key_dtypes, zip(*columns))
    return scanned, written, len(data["__n"])


def _struct_items(payload: list[str]) -> list[str]:
    items = []
    for expr in payload:
        body, _, alias = expr.rpartition(" AS ")
        if not body:
            body, alias = expr, expr
        items.append(f"{_sq(alias)}: {body}")
    return items


def _sq(alias: str) -> str:
    """A struct key literal for an alias (quoted identifiers become string literals)."""
    name = alias[1:-1].replace('""', '"') if alias.startswith('"') else alias
    return "'" + name.replace("'", "''") + "'"
