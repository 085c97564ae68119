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
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
    names = ["__event_ts", "__created_ts"] + list(view.feature_names)
    if _VIRTUAL & {*view.join_keys, *names, view.timestamp_field, view.created_timestamp_column}:
        data = _winners_one_pass(con, view, files, start_us, end_us, has_ties)  # names shadow DuckDB's
    else:
        data = _winners_by_position(con, view, files, start_us, end_us, has_ties)
    if len(data["__n"]) == 0:
        return 0, 0, 0
    scanned = int(data["__n"].sum())
    written = online.write_rows(view, key_dtypes, zip(*(data[n] for n in [*view.join_keys, *names])))
    return scanned, written, len(data["__n"])


_VIRTUAL = {"file_index", "file_row_number"}  # DuckDB's virtual columns of read_parquet


def _pick(view: FeatureView, files: Sequence[Path], start_us: int, end_us: int, has_ties: bool,
          payload: list[str]) -> str:
    """The per-entity winner query: ``keys, __n (rows in window), __w (the winner's payload struct)``."""
    keys = ", ".join(q(k) for k in view.join_keys)
    ts = q(view.timestamp_field)
    created = view.created_timestamp_column
    order = ts if not has_ties else \
        f"{{'t': {ts}, " + (f"'c': {q(created)}, " if created else "") + f"'s': {SEQ_COLUMN}}}"
    return (f"SELECT {keys}, count(*) AS __n, arg_max({{{', '.join(_struct_items(payload))}}}, {order}) AS __w "
            f"FROM read_parquet({files_sql(files)}) WHERE {ts} >= {ts_sql(start_us)} "
            f"AND {ts} < {ts_sql(end_us)} GROUP BY {keys}")


def _stamps(view: FeatureView) -> list[str]:
    created = view.created_timestamp_column
    return [f"epoch_us({q(view.timestamp_field)}) AS __event_ts",
            f"epoch_us({q(created)}) AS __created_ts" if created else f"{NO_CREATED} AS __created_ts"]


def _winners_by_position(con: duckdb.DuckDBPyConnection, view: FeatureView, files: Sequence[Path],
                         start_us: int, end_us: int, has_ties: bool) -> dict[str, list]:
    """Winners found on the key and ordering columns alone; their features then read by position.

    The aggregate carries only (file, row number) per entity instead of every feature: the
    feature columns are decoded once, by pyarrow (column-parallel), and only the row groups
    holding a winner are read.
    """
    keys = ", ".join(q(k) for k in view.join_keys)
    payload = [*_stamps(view), "file_index AS __file", "file_row_number AS __row"]
    flat = ", ".join([keys, "__n", *(f"__w[{_sq(n)}] AS {n}" for n in
                                      ("__event_ts", "__created_ts", "__file", "__row"))])
    sql = _pick(view, files, start_us, end_us, has_ties, payload)
    data = con.sql(f"SELECT {flat} FROM ({sql}) ORDER BY {keys}").fetchnumpy()
    out: dict[str, Any] = {n: data[n].tolist() for n in [*view.join_keys, "__event_ts", "__created_ts"]}
    out["__n"] = data["__n"]
    features = list(view.feature_names)
    if not features or len(data["__n"]) == 0:
        return out
    file_of, row_of = np.asarray(data["__file"]), np.asarray(data["__row"])
    parts, where = [], []
    for index in np.unique(file_of).tolist():
        at = np.flatnonzero(file_of == index)
        parts.append(_take_rows(files[index], features, row_of[at]))
        where.append(at)
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
    if len(parts) > 1:  # back to the key order of the aggregate
        table = table.take(pa.array(np.argsort(np.concatenate(where), kind="stable")))
    dtypes = {f.name: f.dtype for f in view.features}
    for name in features:
        out[name] = _python_values(table.column(name), dtypes[name])
    return out


def _take_rows(path: Path, columns: list[str], rows: np.ndarray) -> pa.Table:
    """``columns`` of the given file rows (0-based over the whole file), in the order of ``rows``."""
    pf = pq.ParquetFile(path)
    sizes = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    group = np.searchsorted(starts, rows, side="right") - 1
    needed = np.unique(group)
    shift = np.zeros(len(sizes), dtype=np.int64)  # a needed group's first row inside the read table
    shift[needed] = np.concatenate([[0], np.cumsum(sizes[needed])[:-1]])
    table = pf.read_row_groups(needed.tolist(), columns=columns, use_threads=True)
    return table.take(pa.array(rows - starts[group] + shift[group]))


def _python_values(column: pa.ChunkedArray, dtype: str) -> list:
    """Raw storage form (see ``online.base``): timestamps as epoch microseconds, nulls as None."""
    if dtype == "timestamp":
        column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    if column.null_count == 0 and dtype != "string":
        return column.to_numpy().tolist()
    return column.to_pylist()


def _winners_one_pass(con: duckdb.DuckDBPyConnection, view: FeatureView, files: Sequence[Path],
                      start_us: int, end_us: int, has_ties: bool) -> dict[str, Any]:
    """Winners with every feature carried through the aggregate (views naming a DuckDB virtual column)."""
    keys = ", ".join(q(k) for k in view.join_keys)
    payload = _stamps(view)
    for f in view.features:
        payload.append(f"epoch_us({q(f.name)}) AS {q(f.name)}" if f.dtype == "timestamp" else q(f.name))
    names = ["__event_ts", "__created_ts"] + list(view.feature_names)
    flat = ", ".join([*(q(k) for k in view.join_keys), "__n", *(f"__w[{_sq(q(n))}] AS {q(n)}" for n in names)])
    sql = _pick(view, files, start_us, end_us, has_ties, payload)
    data = con.sql(f"SELECT {flat} FROM ({sql}) ORDER BY {keys}").fetchnumpy()
    # masked arrays (nulls) turn masked entries into None; strings come as object arrays
    out: dict[str, Any] = {name: data[name].tolist() for name in [*view.join_keys, *names]}
    out["__n"] = data["__n"]
    return out


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
