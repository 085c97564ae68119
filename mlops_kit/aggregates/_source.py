"""Source tables partitioned by event date: writing them and taking their inventory.

A source is a folder of ``date=YYYY-MM-DD`` sub-folders, each holding one or more Parquet
files whose rows have their event timestamp on that (UTC) date. Names starting with ``.``
or ``_`` are ignored. The inventory reads only Parquet footers (row counts, sizes and the
processing-time statistics), never the rows themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import atomic_path
from .._time import UTC, ensure_utc_series
from ..errors import NotFoundError, SchemaError, TimezoneError, ValidationError
from ._spec import NUMERIC_FUNCTIONS, AggregateSpec

__all__ = ["PartitionInfo", "write_partitioned", "scan_partitions", "check_source_schema"]

_PREFIX = "date="


@dataclass(frozen=True)
class PartitionInfo:
    """What the footers of one event-date partition say (no rows read)."""

    day: date
    files: tuple[tuple[str, int], ...]  # (file name, size in bytes), sorted by name
    rows: int
    max_ingested_at: datetime | None  # None when a file carries no statistics
    paths: tuple[Path, ...]
    schemas: tuple[pa.Schema, ...]

    def signature(self) -> dict:
        """The JSON-able fingerprint an incremental update compares against its state."""
        return {"files": [list(f) for f in self.files], "rows": self.rows,
                "max_ingested_at": None if self.max_ingested_at is None
                else self.max_ingested_at.isoformat()}


def write_partitioned(df: pd.DataFrame, root: str | os.PathLike[str], *,
                      timestamp_field: str = "event_timestamp",
                      file_name: str | None = None) -> list[Path]:
    """Write ``df`` under ``root`` as one Parquet file per event date (``date=YYYY-MM-DD``).

    Parameters
    ----------
    df:
        Rows to write; ``timestamp_field`` must hold tz-aware timestamps.
    root:
        Source folder (created if missing).
    timestamp_field:
        Event-time column that decides each row's partition (its UTC date).
    file_name:
        Name of the file written in each partition folder. ``None`` picks the next free
        ``part-NNNN.parquet``, so calling again appends new files (e.g. late rows) beside the
        existing ones. An existing name is refused.

    Returns
    -------
    list of Path
        The files written, in date order. Each is written atomically.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"write_partitioned: df must be a pandas DataFrame, got "
                              f"{type(df).__name__}.", fix="Pass a DataFrame.")
    if timestamp_field not in df.columns:
        raise SchemaError(
            f"write_partitioned: column {timestamp_field!r} not found; columns are "
            f"{list(df.columns)}.",
            fix="Pass timestamp_field= the event-time column.", column=timestamp_field,
        )
    if file_name is not None and (not file_name.endswith(".parquet") or "/" in file_name
                                  or file_name.startswith((".", "_"))):
        raise ValidationError(f"write_partitioned: file_name {file_name!r} is not a plain "
                              "'*.parquet' name.", fix="Use e.g. file_name='part-0001.parquet'.")
    ts = ensure_utc_series(df[timestamp_field], name=timestamp_field)
    if ts.isna().any():
        raise SchemaError(f"write_partitioned: column {timestamp_field!r} holds nulls.",
                          fix="Drop or repair rows without an event time first.")
    frame = df.copy()
    frame[timestamp_field] = ts
    days = ts.dt.floor("D").dt.date.to_numpy()
    root = Path(root)
    targets: list[tuple[Path, pd.DataFrame]] = []
    for day in sorted(set(days)):
        folder = root / f"{_PREFIX}{day.isoformat()}"
        name = file_name or _next_part(folder)
        if (folder / name).exists():
            raise ValidationError(f"write_partitioned: {folder / name} already exists.",
                                  fix="Pass another file_name, or file_name=None to append.")
        targets.append((folder / name, frame.loc[days == day]))
    written = []
    for target, part in targets:
        with atomic_path(target) as tmp:
            pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp)
        written.append(target)
    return written


def _next_part(folder: Path) -> str:
    existing = {p.name for p in folder.glob("part-*.parquet")} if folder.exists() else set()
    n = 0
    while f"part-{n:04d}.parquet" in existing:
        n += 1
    return f"part-{n:04d}.parquet"


def scan_partitions(root: str | os.PathLike[str], *,
                    ingested_field: str) -> dict[date, PartitionInfo]:
    """Inventory of a source folder from Parquet footers only (no rows are read)."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"source folder {str(root)!r} does not exist.",
                            fix="Write the table first, e.g. with write_partitioned(df, root).")
    out: dict[date, PartitionInfo] = {}
    for folder in sorted(root.iterdir()):
        if folder.name.startswith((".", "_")):
            continue
        if not folder.is_dir() or not folder.name.startswith(_PREFIX):
            raise SchemaError(
                f"source {str(root)!r}: unexpected entry {folder.name!r}; expected only "
                "'date=YYYY-MM-DD' folders.",
                fix="Move other files out of the source folder (or prefix them with '_').",
            )
        try:
            day = date.fromisoformat(folder.name[len(_PREFIX):])
        except ValueError as exc:
            raise SchemaError(f"source {str(root)!r}: folder {folder.name!r} is not a valid date.",
                              fix="Name partition folders 'date=YYYY-MM-DD'.") from exc
        paths = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
        files, schemas, rows, max_ing, have_stats = [], [], 0, None, True
        for path in paths:
            meta = pq.ParquetFile(path).metadata
            schema = meta.schema.to_arrow_schema()
            files.append((path.name, path.stat().st_size))
            schemas.append(schema)
            rows += meta.num_rows
            stat_max = _column_max(meta, schema, ingested_field)
            if stat_max is False:
                have_stats = False
            elif stat_max is not None:
                max_ing = stat_max if max_ing is None else max(max_ing, stat_max)
        out[day] = PartitionInfo(day=day, files=tuple(files), rows=rows,
                                 max_ingested_at=max_ing if have_stats else None,
                                 paths=tuple(paths), schemas=tuple(schemas))
    return out


def _column_max(meta: pq.FileMetaData, schema: pa.Schema, column: str) -> datetime | None | bool:
    """Max of ``column`` from row-group statistics; None if no rows; False if unknown."""
    if meta.num_rows == 0:
        return None
    idx = schema.get_field_index(column)
    if idx < 0:
        return False
    best = None
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if group.num_rows == 0:
            continue
        stats = group.column(idx).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.max, datetime):
            return False
        value = stats.max if stats.max.tzinfo else stats.max.replace(tzinfo=UTC)
        best = value if best is None else max(best, value)
    return best


def check_source_schema(spec: AggregateSpec, partitions: dict[date, PartitionInfo]) -> None:
    """Refuse a source whose files lack a column, hold naive timestamps or non-numeric values."""
    needed = spec.source_columns()
    numeric = {a.column for a in spec.aggregates if a.function in NUMERIC_FUNCTIONS}
    for info in partitions.values():
        for path, schema in zip(info.paths, info.schemas):
            missing = [c for c in needed if schema.get_field_index(c) < 0]
            if missing:
                raise SchemaError(
                    f"AggregateSpec {spec.name!r}: source file {str(path)!r} has no column(s) "
                    f"{missing}; it has {schema.names}.",
                    fix="Fix the column names in the RollingAggregate declarations or the source.",
                    missing=missing, file=str(path),
                )
            for col in (spec.timestamp_field, spec.ingested_field):
                typ = schema.field(col).type
                if not pa.types.is_timestamp(typ):
                    raise SchemaError(
                        f"source file {str(path)!r}: column {col!r} must be a timestamp, "
                        f"got {typ}.",
                        fix=f"Convert it: df[{col!r}] = pd.to_datetime(df[{col!r}], utc=True).",
                        column=col,
                    )
                if typ.tz is None:
                    raise TimezoneError(
                        f"source file {str(path)!r}: column {col!r} holds naive timestamps.",
                        fix=f"Localize before writing: df[{col!r}] = "
                        f"df[{col!r}].dt.tz_localize('UTC').",
                        column=col,
                    )
            for col in numeric:
                typ = schema.field(col).type
                if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)
                        or pa.types.is_decimal(typ)):
                    raise SchemaError(
                        f"AggregateSpec {spec.name!r}: column {col!r} is {typ}, but "
                        "sum/mean/min/max need a numeric column.",
                        fix="Use count or count_distinct for non-numeric columns.", column=col,
                    )


def day_number(day: date) -> int:
    """Days since 1970-01-01 (the integer day key used inside the SQL)."""
    return (day - date(1970, 1, 1)).days


def day_from_number(n: int | np.integer) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + int(n))
