"""Materialization on the Spark engine: the same winners as ``materialize.materialize_view``.

Same rule as the DuckDB path (the reference): per entity key, the latest row with
``start <= ts < end``, ties broken by the latest created timestamp, then the row ingested
last (``max_by`` over the order key ``(ts, created, __seq)``), written through the online
store's guarded upsert; ``FeatureStore`` then raises the watermark to ``end``. Reruns are
idempotent because the guard keeps an equal or newer stored row.

How rows reach the online store: the Spark job computes the winners (one row per entity,
``__n`` = rows scanned for it) and its executors write them, partition by partition, as
Parquet under ``workspace.tmp_dir``; only when the whole job has succeeded does the driver
read those part files back in batches (``iter_batches``, ``BATCH_ROWS`` rows at a time) and
call ``online.write_rows`` for each batch. Why the driver and not ``foreachPartition``:
a SQLite online store is a file on the driver's machine (executors on other hosts cannot
open it, and SQLite allows one writer), and writing only after the job finished means a
failed job (a lost worker past its retries, an unreadable or corrupt file) writes nothing
online and leaves the watermark where it was; ``toLocalIterator`` would have streamed
partitions into the store while later ones could still fail. The driver's share is one row
per entity (the winners), never the scanned offline rows. Local (``local[2]``) and cluster
runs do the same; on a cluster ``workspace.tmp_dir`` must, like the offline files, be on
storage the executors and the driver share.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .definitions import FeatureView
from .online import NO_CREATED
from .pit import SEQ_COLUMN
from .spark_engine import spark_session
from .spark_faults import check_readable, spark_failures

__all__ = ["materialize_view_spark", "BATCH_ROWS"]

BATCH_ROWS = 10_000


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def window_files(store: Any, view: FeatureView, start_us: int, end_us: int) -> list[Path]:
    """Committed files that can hold a row with ``start_us <= ts < end_us`` (by their recorded range)."""
    root = store.workspace.offline_dir
    return [root / p for p, _, first, last in store.meta.committed_files(view.name, view.version)
            if first < end_us and last >= start_us]


def _winners(spark: Any, view: FeatureView, files: list[Path], start_us: int, end_us: int) -> Any:
    """One row per entity key: keys, ``__n``, ``__event_ts``, ``__created_ts`` and the features."""
    from pyspark.sql import functions as F

    frame = spark.read.option("recursiveFileLookup", "true").parquet(*[str(p) for p in files])
    ts = F.col(_quote(view.timestamp_field))
    created = view.created_timestamp_column
    inside = frame.where((F.unix_micros(ts) >= F.lit(start_us)) & (F.unix_micros(ts) < F.lit(end_us)))
    payload = [F.unix_micros(ts).alias("__event_ts"),
               (F.unix_micros(F.col(_quote(created))) if created else F.lit(NO_CREATED).cast("bigint"))
               .alias("__created_ts")]
    for f in view.features:
        col = F.col(_quote(f.name))
        payload.append((F.unix_micros(col) if f.dtype == "timestamp" else col).alias(f"__f_{f.name}"))
    order = [ts.alias("t")] + ([F.col(_quote(created)).alias("c")] if created else []) \
        + [F.col(SEQ_COLUMN).alias("s")]
    keys = [F.col(_quote(k)) for k in view.join_keys]
    won = inside.groupBy(*keys).agg(F.count(F.lit(1)).alias("__n"),
                                    F.max_by(F.struct(*payload), F.struct(*order)).alias("__w"))
    flat = [F.col("__w.__event_ts").alias("__event_ts"), F.col("__w.__created_ts").alias("__created_ts")]
    flat += [F.col(f"__w.{_quote('__f_' + f.name)}").alias(f"__f{j}") for j, f in enumerate(view.features)]
    return won.select(*keys, "__n", *flat)


def materialize_view_spark(store: Any, view: FeatureView, key_dtypes: dict[str, str], start_us: int,
                           end_us: int) -> tuple[int, int, int]:
    """Compute the winners in ``[start_us, end_us)`` on Spark, then upsert them from the driver.

    Returns ``(rows_scanned, rows_written, entities)`` like ``materialize_view``. Raises
    ``OfflineEngineError`` (nothing written online) when a file cannot be read or the job fails.
    """
    files = window_files(store, view, start_us, end_us)
    if not files or start_us >= end_us:
        return 0, 0, 0
    what = f"materialize {view.name!r} v{view.version}"
    check_readable(files, what)
    spark = spark_session(store.config.offline)
    folder = Path(tempfile.mkdtemp(prefix="spark-materialize-", dir=store.workspace.tmp_dir))
    try:
        with spark_failures(what, files):
            _winners(spark, view, files, start_us, end_us).write.parquet(str(folder / "winners"))
        names = [*view.join_keys, "__event_ts", "__created_ts", *(f"__f{j}" for j in range(len(view.features)))]
        scanned = written = entities = 0
        for part in sorted((folder / "winners").glob("part-*.parquet")):  # one file per Spark partition
            for batch in pq.ParquetFile(part).iter_batches(batch_size=BATCH_ROWS, columns=[*names, "__n"]):
                scanned += sum(batch.column("__n").to_pylist())
                entities += batch.num_rows
                columns = [batch.column(name).to_pylist() for name in names]
                written += store.online.write_rows(view, key_dtypes, zip(*columns))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return scanned, written, entities
