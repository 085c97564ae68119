"""The Spark side of ``RetrievalJob``: Spark entity frames, ``to_spark`` and distributed ``to_parquet``.

A Spark ``entity_df`` is checked from its schema alone (missing ``event_timestamp`` or join
key, wrong key type, naive ``timestamp_ntz`` or non-timestamp ``event_timestamp``: the same
errors as for pandas), then one small aggregate job reads its time range (for file pruning)
and refuses null timestamps. Row order: the kit stages the entity rows once as Parquet
under ``workspace.tmp_dir`` (executors write it, nothing is collected) with a ``__row_id``
from ``monotonically_increasing_id``, i.e. in the frame's own order (partition by
partition, as ``entity_df.collect()`` returns it). Results follow that order: a Spark
frame gives exactly the result of its pandas equivalent ``entity_df.toArrow().to_pandas()``
(entity columns typed as that conversion types them). Staging fixes the ids, so a retried
task or a lost worker cannot renumber rows. (For an entity frame whose own order is not
deterministic, e.g. right after ``repartition``, "its order" is the one of the staging run.)

``write_parquet`` sorts by ``__row_id`` (a range partitioning) and lets each task write its
own ``part-NNNNN.parquet`` with pyarrow, cast to the pandas result's Arrow schema with
pandas metadata, so ``pd.read_parquet(folder)`` reads back the ``to_df()`` frame, dtypes
included. Tasks return only their row and late counts. The folder is staged next to
``path`` and renamed into place when every task succeeded: a failed job leaves no output.
On a cluster, ``path`` and the workspace must be on storage every worker sees.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SchemaError, TimezoneError, ValidationError
from .pit import ViewRequest
from .spark_engine import feature_columns, spark_feature_frame, spark_type
from .spark_faults import check_readable, spark_failures

__all__ = ["is_spark_frame", "check_spark_entity", "spark_time_bounds", "stage_entity", "SparkResult",
           "publish_folder"]

_INT_TYPES = ("LongType", "IntegerType", "ShortType", "ByteType")


def is_spark_frame(obj: object) -> bool:
    """True for a ``pyspark.sql.DataFrame`` (without importing pyspark when it is not loaded)."""
    if "pyspark.sql" not in sys.modules:
        return False
    from pyspark.sql import DataFrame

    return isinstance(obj, DataFrame)


def check_spark_entity(frame: Any, keys: Sequence[str], key_dtypes: Callable[[str], str | None]) -> dict[str, str]:
    """Validate a Spark entity frame's schema like ``prepare_entity_df``; return the key dtypes."""
    fields = {f.name: f.dataType for f in frame.schema.fields}
    needed = list(keys) + ["event_timestamp"]
    missing = [c for c in needed if c not in fields]
    if missing:
        raise SchemaError(f"get_historical_features: entity_df is missing columns {missing}.",
                          fix=f"Provide the join keys and 'event_timestamp': {needed}.", missing=missing)
    kinds: dict[str, str] = {}
    for key in keys:
        kind = type(fields[key]).__name__
        found = "int64" if kind in _INT_TYPES else "string" if kind == "StringType" else None
        expected = key_dtypes(key)
        if found is None or (expected is not None and found != expected):
            raise SchemaError(
                f"get_historical_features: entity_df column {key!r} has dtype "
                f"{fields[key].simpleString()}, but the offline rows hold "
                f"{expected or 'int64 or string'} keys.",
                fix=f"Cast it: entity_df = entity_df.withColumn({key!r}, "
                    f"F.col({key!r}).cast('{spark_type(expected or 'int64')}')).", column=key)
        kinds[key] = found
    ts = type(fields["event_timestamp"]).__name__
    if ts == "TimestampNTZType":
        raise TimezoneError("get_historical_features: entity_df column 'event_timestamp' holds naive "
                            "timestamps (timestamp_ntz).",
                            fix="Cast it: F.col('event_timestamp').cast('timestamp') (read as UTC).",
                            column="event_timestamp")
    if ts != "TimestampType":
        raise ValidationError(
            f"column 'event_timestamp' must hold tz-aware timestamps, got dtype "
            f"{fields['event_timestamp'].simpleString()}.",
            fix="Convert it: F.to_timestamp('event_timestamp') (a Spark timestamp).", column="event_timestamp")
    return kinds


def spark_time_bounds(frame: Any) -> tuple[int | None, int | None, int]:
    """``(min_us, max_us, rows)`` of ``event_timestamp`` (one aggregate job); nulls are refused."""
    from pyspark.sql import functions as F

    with spark_failures("get_historical_features(entity_df)"):
        row = frame.agg(F.min(F.unix_micros("event_timestamp")).alias("lo"),
                        F.max(F.unix_micros("event_timestamp")).alias("hi"),
                        F.count(F.lit(1)).alias("n"),
                        F.count("event_timestamp").alias("valid")).collect()[0]
    if row["valid"] != row["n"]:
        raise SchemaError("get_historical_features: entity_df['event_timestamp'] has null values.",
                          fix="Every entity row needs an as-of time; drop or fill those rows.")
    return row["lo"], row["hi"], int(row["n"])


def stage_entity(spark: Any, entity_df: Any, folder: Path) -> Any:
    """The entity rows plus ``__row_id`` as Parquet under ``folder``, read back as a Spark frame."""
    target = folder / "entity"
    if is_spark_frame(entity_df):
        from pyspark.sql import functions as F

        with spark_failures("get_historical_features(entity_df)"):
            entity_df.withColumn("__row_id", F.monotonically_increasing_id()).write.parquet(str(target))
    else:
        table = pa.Table.from_pandas(entity_df.reset_index(drop=True), preserve_index=False)
        table = table.append_column("__row_id", pa.array(range(len(entity_df)), type=pa.int64()))
        target.mkdir()
        pq.write_table(table.replace_schema_metadata(None), target / "part-00000.parquet",
                       coerce_timestamps="us", allow_truncated_timestamps=False)
    return spark.read.parquet(str(target))


class SparkResult:
    """The lazy result of one retrieval on Spark: the staged entity rows joined to their features."""

    def __init__(self, spark: Any, staged: Any, key_kinds: dict[str, str], requests: Sequence[ViewRequest],
                 filter_created: bool, tz: str) -> None:
        from pyspark.sql import functions as F

        self.requests = requests
        self.files = [f for r in requests for f in r.files]
        check_readable(self.files, "get_historical_features")
        self.entity_columns = [c for c in staged.columns if c != "__row_id"]
        self.features = feature_columns(requests, tz)
        join_side = staged.select(*[F.col(k).cast(spark_type(kind)).alias(k) for k, kind in key_kinds.items()],
                                  "event_timestamp", "__row_id")
        feats = spark_feature_frame(spark, join_side, requests, filter_created)
        self.frame = staged.join(feats, "__row_id", "left")
        self.staged = staged

    def to_spark(self) -> Any:
        """Entity columns then feature columns, sorted by the entity order."""
        from pyspark.sql import functions as F

        cols = [F.col(f"`{c}`") for c in self.entity_columns]
        cols += [F.col(src).alias(name) for src, name, _ in self.features]
        return self.frame.orderBy("__row_id").select(*cols)

    def to_arrow(self) -> pa.Table:
        """Everything collected to the driver, in entity order (``to_df`` of a Spark entity frame)."""
        with spark_failures("get_historical_features", self.files):
            return self.frame.orderBy("__row_id").toArrow()

    def empty_entity(self) -> pd.DataFrame:
        """The entity columns' pandas dtypes, from a zero-row Arrow result."""
        with spark_failures("get_historical_features", self.files):
            return self.staged.select(*[f"`{c}`" for c in self.entity_columns]).limit(0).toArrow().to_pandas()

    def write_parquet(self, folder: Path, target: pa.Schema) -> list[int]:
        """Each task writes its part of the sorted result; returns [rows, late rows, late per view...]."""
        n = len(self.requests)
        src = [*(f"`{c}`" for c in self.entity_columns), *(s for s, _, _ in self.features)]
        lates = [f"__late{i}" for i in range(n)]
        schema = "rows long, late long" + "".join(f", late{i} long" for i in range(n))
        sorted_frame = self.frame.orderBy("__row_id").select(*src, *lates)
        with spark_failures("to_parquet", self.files):
            counts = sorted_frame.mapInArrow(_part_writer(str(folder), target, len(src), n), schema).collect()
        return [sum(int(r[i]) for r in counts) for i in range(2 + n)]


def _part_writer(folder: str, target: pa.Schema, width: int, n_late: int) -> Callable:
    """The per-task writer run on the executors by ``mapInArrow`` (pyarrow, no driver round-trip)."""

    def write(batches):  # runs on an executor
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        ctx = TaskContext.get()
        part = ctx.partitionId()
        tmp = os.path.join(folder, f".part-{part:05d}.{ctx.taskAttemptId()}.tmp")
        rows, late, per_view = 0, 0, [0] * n_late
        with pq.ParquetWriter(tmp, target) as writer:
            for batch in batches:
                cols = [batch.column(i) for i in range(width)]
                writer.write_table(pa.table(cols, names=target.names).cast(target))
                flags = [pc.fill_null(batch.column(width + i), False) for i in range(n_late)]
                for i, flag in enumerate(flags):
                    per_view[i] += int(pc.sum(flag).as_py() or 0)
                if flags:
                    any_late = flags[0]
                    for flag in flags[1:]:
                        any_late = pc.or_(any_late, flag)
                    late += int(pc.sum(any_late).as_py() or 0)
                rows += batch.num_rows
        os.replace(tmp, os.path.join(folder, f"part-{part:05d}.parquet"))
        yield pa.RecordBatch.from_pydict({"rows": [rows], "late": [late],
                                          **{f"late{i}": [v] for i, v in enumerate(per_view)}})

    return write


def publish_folder(path: Path, fill: Callable[[Path], None]) -> Path:
    """Run ``fill(staging)`` in a sibling folder and rename it to ``path`` only if it succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.staging-", dir=path.parent))
    try:
        fill(staging)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
