"""One backfill partition: check the compute output, order it, write it deterministically.

A partition's file has a fixed name (``part-backfill.parquet`` in the shadow version's
``date=`` folder), its rows are sorted by every column and numbered in that order (the
hidden ``__seq`` column), and the Parquet writer settings are fixed: the same rows always
give the same bytes, and a re-run replaces the file instead of adding one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._io import sha256_file
from ..errors import MlopsKitError, SchemaError, ValidationError
from .definitions import FeatureView
from .offline import ROW_GROUP_ROWS
from .pit import SEQ_COLUMN
from .validation import to_arrow_rows

__all__ = ["PARTITION_FILE", "InjectedFailure", "check_output", "write_partition", "has_duplicates"]

PARTITION_FILE = "part-backfill.parquet"


class InjectedFailure(RuntimeError):
    """A transient failure injected on purpose (``inject_failures=``), to exercise retries."""


def _columns(view: FeatureView) -> list[str]:
    cols = list(view.join_keys) + [view.timestamp_field]
    cols += [view.created_timestamp_column] if view.created_timestamp_column else []
    return cols + list(view.feature_names)


def check_output(view: FeatureView, out: object, start: datetime, end: datetime,
                 pinned_keys: dict[str, str]) -> tuple[pa.Table, dict[str, str]]:
    """Validate one partition's compute output; return it typed, sorted and numbered."""
    where = f"backfill of {view.name!r}, partition [{start.isoformat()}, {end.isoformat()})"
    if not isinstance(out, pd.DataFrame):
        raise ValidationError(f"{where}: compute returned {type(out).__name__}, not a pandas DataFrame.",
                              fix="Return a DataFrame with the view's columns from compute(start, end).")
    expected = _columns(view)
    extra = [str(c) for c in out.columns if c not in expected]
    if extra:
        raise SchemaError(f"{where}: compute returned columns {extra} that the view does not have.",
                          fix=f"Return exactly the view's columns: {expected}.", extra=extra)
    try:
        table, key_dtypes = to_arrow_rows(view, out, pinned_keys)
    except MlopsKitError as exc:
        raise type(exc)(f"{where}: compute output is invalid: {exc.message}", fix=exc.fix,
                        **exc.details) from None
    ts = pc.cast(table.column(view.timestamp_field), pa.int64()).to_numpy(zero_copy_only=False)
    lo, hi = int(pd.Timestamp(start).value // 1000), int(pd.Timestamp(end).value // 1000)
    outside = int(((ts < lo) | (ts >= hi)).sum())
    if outside:
        bad = ts[(ts < lo) | (ts >= hi)][0]
        raise ValidationError(
            f"{where}: compute returned {outside} row(s) with {view.timestamp_field!r} outside the "
            f"partition, e.g. {np.datetime64(int(bad), 'us')}Z.",
            fix="Return only rows with partition_start <= timestamp < partition_end.", rows=outside)
    table = table.select(expected).sort_by([(c, "ascending") for c in expected])
    table = table.append_column(SEQ_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    return table.combine_chunks(), key_dtypes


def has_duplicates(table: pa.Table, view: FeatureView) -> bool:
    """Do two rows share (join keys, event timestamp)? (then reads break ties by created, order)."""
    keys = list(view.join_keys) + [view.timestamp_field]
    return table.group_by(keys).aggregate([]).num_rows != table.num_rows


def write_partition(table: pa.Table, target: Path, tmp_root: Path,
                    pause: Callable[[str], None] | None = None, step: str = "") -> str:
    """Write ``table`` to ``target`` atomically (temp file, fsync, rename); returns its sha256."""
    fd, name = tempfile.mkstemp(prefix="backfill-", suffix=".parquet", dir=tmp_root)
    os.close(fd)
    tmp = Path(name)
    try:
        pq.write_table(table, tmp, compression="zstd", compression_level=3, row_group_size=ROW_GROUP_ROWS,
                       use_dictionary=True, write_statistics=True, version="2.6",
                       data_page_size=1 << 20, store_schema=True)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        digest = sha256_file(tmp)
        if pause is not None:
            pause(step)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return digest
