"""Full refresh against incremental update on the same source: cost side by side."""

from __future__ import annotations

import os
from datetime import datetime

import pandas as pd

from ..errors import ValidationError
from ._runner import full_refresh, incremental_update, read_aggregates
from ._spec import AggregateSpec

__all__ = ["compare_full_vs_incremental", "same_values"]

_COLUMNS = ["mode", "partitions_read", "files_read", "rows_scanned", "bytes_scanned",
            "output_days_written", "output_rows_written", "wall_seconds"]


def same_values(left: pd.DataFrame, right: pd.DataFrame, spec: AggregateSpec) -> bool:
    """True when two outputs hold the same rows and bit-identical feature values.

    ``created_timestamp`` is ignored: days an incremental update did not touch keep the
    processing time of the run that wrote them.
    """
    cols = [spec.entity_key, "event_timestamp", *spec.feature_names]
    a = left[cols].sort_values(cols[:2], ignore_index=True)
    b = right[cols].sort_values(cols[:2], ignore_index=True)
    return a.shape == b.shape and bool(a.equals(b))


def compare_full_vs_incremental(source: str | os.PathLike[str], spec: AggregateSpec, *,
                                incremental_dir: str | os.PathLike[str],
                                full_dir: str | os.PathLike[str], as_of: datetime,
                                threads: int | None = None) -> pd.DataFrame:
    """Bring ``incremental_dir`` up to date incrementally and rebuild ``full_dir`` fully.

    Parameters
    ----------
    source:
        The source folder, as it stands now (new and late data already written).
    spec:
        The aggregates.
    incremental_dir:
        A table built earlier from the same source and spec (it holds the watermark).
    full_dir:
        Folder for the full rebuild (a different folder).
    as_of:
        Processing time of both runs.
    threads:
        DuckDB threads for both runs.

    Returns
    -------
    pandas.DataFrame
        One row per mode (``full_refresh``, ``incremental``) with partitions, files, rows and
        bytes scanned, output days and rows written, wall seconds, the share of the full
        refresh's rows scanned, and ``values_identical`` (both outputs compared value by value).
    """
    if os.path.abspath(incremental_dir) == os.path.abspath(full_dir):
        raise ValidationError("incremental_dir and full_dir are the same folder.",
                              fix="Pass two different folders: the full rebuild must not "
                              "overwrite the incremental table.")
    inc = incremental_update(source, spec, incremental_dir, as_of=as_of, threads=threads)
    full = full_refresh(source, spec, full_dir, as_of=as_of, threads=threads)
    identical = same_values(read_aggregates(full_dir), read_aggregates(incremental_dir), spec)
    rows = []
    for report in (full, inc):
        row = {c: getattr(report, c) for c in _COLUMNS[1:]}
        row["mode"] = "full_refresh" if report is full else report.mode
        rows.append(row)
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    frame["rows_scanned_share"] = frame["rows_scanned"] / max(full.rows_scanned, 1)
    frame["values_identical"] = identical
    frame.attrs["values_identical"] = identical
    return frame
