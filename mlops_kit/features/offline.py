"""Offline storage: Parquet under ``offline/<view>/v<version>/date=YYYY-MM-DD/``.

An ingest first reserves its ingest id in ``features.sqlite`` (one transaction), so
concurrent writers never share an id or a file name (``part-<id>-<digest>.parquet``, the
digest taken over the id and the bytes this writer wrote, so names are unique per writer
and reproducible run to run). It then writes one new file per touched event-date
partition, fsynced under ``workspace.tmp_dir``, publishes each into its partition with a
link that refuses to replace an existing file, and commits the manifest rows, their
digests and the end of its reservation in one SQLite transaction. Readers list files from
the manifest only, so an interrupted ingest is never visible. The error path removes only
files this writer published and no committed manifest row references; a writer killed
outright leaves its reservation behind, which marks its files as abandoned
(``mlops-kit doctor --repair`` quarantines them).

Each row also gets a hidden ``__seq`` column (``ingest_id << 32 | row``): it grows with
ingest order and breaks exact ties of (event, created) timestamps in favour of the row
ingested last, so that every read is deterministic.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._io import sha256_file
from ..errors import ConcurrentWriteError
from .definitions import FeatureView
from .metadata import MetadataDB
from .pit import SEQ_COLUMN, files_sql, q

__all__ = ["IngestResult", "write_ingest", "partition_dir"]

_US_PER_DAY = 86_400 * 1_000_000
# rows per Parquet row group of the offline files: DuckDB scans one row group per thread, so a
# 1M-row partition written as one group was read on one core (materialize 1M rows: 105 ms with
# one group, 67 ms with 256k-row groups); files below this size are one group, as before
ROW_GROUP_ROWS = 1 << 18


def partition_dir(root: Path, view: FeatureView, day: str) -> Path:
    return root / view.name / f"v{view.version}" / f"date={day}"


class IngestResult(dict):
    """``{"view", "version", "rows", "files", "partitions"}`` for one committed ingest."""


def _fsync_write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _tie_detector(con: duckdb.DuckDBPyConnection, offline_root: Path, view: FeatureView,
                  table: pa.Table, partitions: set[str]) -> Callable[[list[str]], bool]:
    """A check: do the new rows share (keys, event ts) with each other or committed rows?"""
    cols = list(view.join_keys) + [view.timestamp_field]
    keys = ", ".join(q(c) for c in cols)
    on = " AND ".join(f"n.{q(c)} = o.{q(c)}" for c in cols)

    def detect(committed: list[str]) -> bool:
        con.register("__new_rows", table.select(cols))
        try:
            if con.sql(f"SELECT 1 FROM __new_rows GROUP BY {keys} HAVING count(*) > 1 LIMIT 1").fetchall():
                return True
            same = [offline_root / p for p in committed if Path(p).parent.name in partitions]
            if not same:
                return False
            return con.sql(f"SELECT 1 FROM __new_rows n JOIN read_parquet({files_sql(same)}) o "
                           f"ON {on} LIMIT 1").fetchall() != []
        finally:
            con.unregister("__new_rows")

    return detect


def _digest_suffix(ingest_id: int, view: FeatureView, parts: list[tuple[str, str]]) -> str:
    text = f"{ingest_id}:{view.name}:{view.version}:" + ",".join(f"{d}={h}" for d, h in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _publish(tmp_file: Path, target: Path) -> None:
    """Move ``tmp_file`` to ``target``, never replacing a file that is already there."""
    try:
        os.link(tmp_file, target)
    except FileExistsError:
        raise ConcurrentWriteError(
            f"ingest: {str(target)!r} already exists; another writer used the same file name.",
            fix="Retry the ingest; if it repeats, run `mlops-kit doctor` on the workspace.",
            path=str(target)) from None
    os.unlink(tmp_file)


def write_ingest(con: duckdb.DuckDBPyConnection, meta: MetadataDB, offline_root: Path,
                 tmp_root: Path, view: FeatureView, table: pa.Table, key_dtypes: dict[str, str],
                 before_publish: Callable[[int], None] | None = None,
                 started_us: int = 0) -> IngestResult:
    """Write a validated table atomically; ``before_publish(i)`` runs before the i-th rename.

    ``before_publish`` exists so that tests can inject a failure between partitions; it is
    called once more with ``i == number of files`` after the last rename, just before the
    commit. ``started_us`` is recorded on the reservation (the store's clock).
    """
    if table.num_rows == 0:
        return IngestResult(view=view.name, version=view.version, rows=0, files=0, partitions=[])
    ts_col = table.column(view.timestamp_field)
    ts_us = pc.cast(ts_col, pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    days = np.floor_divide(ts_us, _US_PER_DAY)
    order = np.argsort(days, kind="stable")
    sorted_days = days[order]
    bounds = np.flatnonzero(np.diff(sorted_days)) + 1 if len(sorted_days) else np.array([], dtype=int)
    groups = np.split(order, bounds) if len(order) else []
    ingest_id, token = meta.reserve_ingest(view.name, view.version, started_us)
    seq = pa.array(np.arange(table.num_rows, dtype=np.int64) + (ingest_id << 32))
    table = table.append_column(SEQ_COLUMN, seq)
    staged: list[tuple[Path, Path, int, int, int]] = []
    published: list[Path] = []
    created_dirs: list[Path] = []
    digests: list[tuple[str, int, str]] = []
    committed = False
    staging: Path | None = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f"ingest-{token}-{view.name}-", dir=tmp_root))
        written = []
        for idx in groups:
            day_us = int(days[idx[0]]) * _US_PER_DAY
            day = np.datetime64(day_us, "us").astype("datetime64[D]").astype(str)
            part = table.take(pa.array(idx)) if len(groups) > 1 else table
            tmp_file = staging / f"{day}.parquet"
            _fsync_write(part, tmp_file)
            written.append((day, tmp_file, tmp_file.stat().st_size, sha256_file(tmp_file), idx))
        # the name's suffix is a digest of what this writer wrote: unique to it, yet the same
        # in every run of the same data (evidence that lists file names stays reproducible)
        suffix = _digest_suffix(ingest_id, view, [(day, digest) for day, _, _, digest, _ in written])
        for day, tmp_file, size, digest, idx in written:
            target = partition_dir(offline_root, view, day) / f"part-{ingest_id:08d}-{suffix}.parquet"
            digests.append((str(target.relative_to(offline_root)), size, digest))
            part_ts = ts_us[idx]
            staged.append((tmp_file, target, len(idx), int(part_ts.min()), int(part_ts.max())))
        for i, (tmp_file, target, _, _, _) in enumerate(staged):
            if before_publish is not None:
                before_publish(i)
            for parent in reversed(target.parents):
                if not parent.exists() and offline_root in parent.parents:
                    try:
                        parent.mkdir()
                        created_dirs.append(parent)
                    except FileExistsError:  # another writer created it just now
                        pass
            _publish(tmp_file, target)
            published.append(target)
        if before_publish is not None:
            before_publish(len(staged))
        files = [(str(t.relative_to(offline_root)), n, lo, hi) for _, t, n, lo, hi in staged]
        partitions = {t.parent.name for _, t, *_ in staged}
        meta.commit_files(view.name, view.version, files, ingest_id, key_dtypes,
                          _tie_detector(con, offline_root, view, table, partitions),
                          token=token, digests=digests)
        committed = True
    except BaseException:
        if not committed:
            _undo(meta, offline_root, published, created_dirs, token)
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return IngestResult(view=view.name, version=view.version, rows=table.num_rows,
                        files=len(staged), partitions=sorted({str(t.parent.name) for _, t, *_ in staged}))


def _undo(meta: MetadataDB, offline_root: Path, published: list[Path], created_dirs: list[Path],
          token: str) -> None:
    """Remove what this writer published and nobody committed, then its reservation.

    Best effort: when the database cannot be reached the files and the reservation stay,
    and ``mlops-kit doctor --repair`` quarantines them later; nothing committed is touched.
    """
    try:
        keep = meta.referenced(str(p.relative_to(offline_root)) for p in published)
    except Exception:
        return
    for path in published:
        if str(path.relative_to(offline_root)) not in keep:
            path.unlink(missing_ok=True)
    for folder in reversed(created_dirs):
        try:
            folder.rmdir()
        except OSError:
            continue
    try:
        meta.release_reservation(token)
    except Exception:
        return
