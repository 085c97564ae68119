"""Turn the inputs a quality check accepts into one DuckDB relation, filtered by partition range.

Accepted inputs: a pandas ``DataFrame``, a list of Parquet paths (hive ``date=`` folders are
read as a column), or an existing ``duckdb.DuckDBPyRelation``. Everything downstream runs
SQL on the relation (``relation.query("t", sql)``), never a Python loop over rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .._time import ensure_utc
from ..errors import SchemaError, TimezoneError, ValidationError

__all__ = [
    "as_relation", "quote_ident", "ts_literal", "column_types", "require_columns",
    "require_utc_timestamp", "filter_range",
]


def quote_ident(name: str) -> str:
    """Quote a column name for DuckDB SQL (double quotes, embedded quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def ts_literal(value: datetime) -> str:
    """A TIMESTAMPTZ SQL literal for a validated UTC datetime."""
    return f"TIMESTAMPTZ '{ensure_utc(value).isoformat()}'"


def as_relation(data: Any, *, where: str = "as_relation") -> duckdb.DuckDBPyRelation:
    """Return ``data`` as a DuckDB relation (DataFrame, Parquet path list, or a relation)."""
    if isinstance(data, duckdb.DuckDBPyRelation):
        return data
    if isinstance(data, pd.DataFrame):
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        return con.from_df(data)
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        paths = [Path(p) for p in data]
        if not paths:
            raise ValidationError(
                f"{where}: the list of Parquet files is empty.",
                fix="Pass at least one Parquet file (e.g. store.offline_files(view)) or a DataFrame.",
            )
        bad = [str(p) for p in paths if p.suffix != ".parquet"]
        if bad:
            raise ValidationError(f"{where}: not Parquet files: {bad[:3]}.",
                                  fix="Pass .parquet files only (folders: list their *.parquet files).")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ValidationError(
                f"{where}: Parquet file(s) not found: {missing[:3]}.",
                fix="Pass existing .parquet files; list them with FeatureStore.offline_files(view).",
                missing=missing,
            )
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        return con.read_parquet([str(p) for p in paths], hive_partitioning=True, union_by_name=True)
    raise ValidationError(
        f"{where}: data must be a pandas DataFrame, a list of Parquet paths or a DuckDB "
        f"relation, got {type(data).__name__}.",
        fix="Pass e.g. store.read_offline(view, start, end) or store.offline_files(view).",
    )


def column_types(rel: duckdb.DuckDBPyRelation) -> dict[str, str]:
    """Map column name -> DuckDB type name (upper case)."""
    return {name: str(kind).upper() for name, kind in zip(rel.columns, rel.types)}


def require_columns(rel: duckdb.DuckDBPyRelation, columns: Sequence[str], *, where: str) -> None:
    """Raise ``SchemaError`` naming every column of ``columns`` missing from ``rel``."""
    present = set(rel.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise SchemaError(
            f"{where}: column(s) {missing} not found; the data has {sorted(present)}.",
            fix="Fix the column name in the check, or pass data that holds the column.",
            missing=missing,
        )


def require_utc_timestamp(rel: duckdb.DuckDBPyRelation, column: str, *, where: str) -> None:
    """Refuse a timestamp column that is missing, not a timestamp, or naive."""
    require_columns(rel, [column], where=where)
    kind = column_types(rel)[column]
    if kind.startswith("TIMESTAMP WITH TIME ZONE"):
        return
    if kind.startswith("TIMESTAMP"):
        raise TimezoneError(
            f"{where}: column {column!r} holds naive timestamps ({kind}).",
            fix=f"Localize it to UTC before checking, e.g. df[{column!r}] = "
            f"df[{column!r}].dt.tz_localize('UTC').",
            column=column,
        )
    raise SchemaError(
        f"{where}: column {column!r} must be a tz-aware timestamp, got {kind}.",
        fix=f"Convert it: df[{column!r}] = pd.to_datetime(df[{column!r}], utc=True).",
        column=column,
    )


def filter_range(
    rel: duckdb.DuckDBPyRelation, column: str, start: datetime | None, end: datetime | None
) -> duckdb.DuckDBPyRelation:
    """Rows with ``start <= column < end`` (either bound may be None)."""
    conditions = []
    if start is not None:
        conditions.append(f"{quote_ident(column)} >= {ts_literal(start)}")
    if end is not None:
        conditions.append(f"{quote_ident(column)} < {ts_literal(end)}")
    if not conditions:
        return rel
    return rel.query("t", "SELECT * FROM t WHERE " + " AND ".join(conditions))
