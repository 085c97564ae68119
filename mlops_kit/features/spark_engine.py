"""Spark as the offline engine: the same point-in-time join as ``pit.run_pit_join``, in Spark.

Select it with ``offline_engine = "spark"`` (a local ``local[2]`` session), ``"spark://host:port"``
(attach to a standalone cluster) in ``feature_store.toml``, or ``FeatureStore(root,
offline_engine=...)`` with either string or a ``pyspark.sql.SparkSession`` object. Install with
``pip install -e ".[spark]"``; Spark needs Java 17 or newer (``apt-get install
openjdk-17-jre-headless``). The join reads the store's committed Parquet files (already pruned
to the entity time range), so every executor must see the workspace path (one machine, or a
shared file system). A session the kit starts runs its Python tasks with this interpreter
(``PYSPARK_PYTHON`` defaults to ``sys.executable``), so executors need the same environment.
Retrieval objects, Spark entity frames and materialization build on this module:
``retrieval``, ``spark_retrieval``, ``spark_materialize``; failures are translated in
``spark_faults``.

Semantics are exactly those of ``mlops_kit.features.pit``; how they are computed here: per view,
entity rows and feature rows of a key are put in one window ordered by ``(ts, side, created,
seq)`` with feature rows (side 0) before entity rows (side 1) at the same timestamp, and
``last(struct(...), ignorenulls)`` over that window gives each entity row the greatest order key
not after its time: the winner without the TTL and created filters. The TTL is then a check on
the winner's timestamp (in integer microseconds). With ``filter_by_created_timestamp`` the
entity rows whose winner was created after their time are re-resolved by a range join on the
key restricted to ``created <= T`` (and the TTL) and ``row_number`` over the order key.
The result comes back through Arrow and is cast to the exact column types of the DuckDB path.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import OfflineEngineError
from .config import SPARK_LOCAL_MASTER, EngineConfig
from .pit import SEQ_COLUMN, PitResult, ViewRequest
from .spark_faults import check_readable, spark_failures

__all__ = ["SPARK_CONF", "spark_session", "java_major_version", "check_java", "run_spark_pit_join",
           "stop_spark_sessions", "spark_feature_frame", "feature_columns", "late_counts", "result_tz",
           "spark_type"]

SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}
_SPARK_TYPES = {"int64": "bigint", "float64": "double", "string": "string", "bool": "boolean",
                "timestamp": "timestamp"}
_SESSIONS: dict[str, Any] = {}
_PYSPARK_FIX = 'Install the Spark extra: pip install -e ".[spark]" (or choose offline_engine = "duckdb").'
_JAVA_FIX = "Install Java 17 or newer: apt-get install openjdk-17-jre-headless (or set JAVA_HOME)."


def _pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise OfflineEngineError("offline_engine is Spark, but pyspark is not installed.", fix=_PYSPARK_FIX,
                                 reason="pyspark-missing") from None
    return pyspark.sql


def java_major_version(text: str) -> int | None:
    """The major version in ``java -version`` output (``"1.8.0_392"`` is 8), or None."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def _java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def check_java(minimum: int = 17) -> int:
    """Run ``java -version``; return the major version or raise ``OfflineEngineError``."""
    java = _java_binary()
    if java is None:
        raise OfflineEngineError("offline_engine is Spark, but no java executable was found (PATH, JAVA_HOME).",
                                 fix=_JAVA_FIX, reason="java-missing")
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OfflineEngineError(f"offline_engine is Spark, but {java} -version failed ({exc}).",
                                 fix=_JAVA_FIX, reason="java-missing") from None
    major = java_major_version(done.stderr + done.stdout)
    if major is None or major < minimum:
        raise OfflineEngineError(
            f"offline_engine is Spark, which needs Java {minimum}+, but {java} is "
            f"{'of unknown version' if major is None else f'Java {major}'}.",
            fix=_JAVA_FIX, reason="java-too-old", found=major)
    return major


def _check_master(host: str, port: int, timeout: float = 3.0) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise OfflineEngineError(
            f"offline_engine = 'spark://{host}:{port}': the Spark master is unreachable ({exc}).",
            fix="Start the master (spark-class org.apache.spark.deploy.master.Master --host HOST "
                "--port PORT) or fix the host:port in feature_store.toml.",
            reason="master-unreachable", master=f"spark://{host}:{port}") from None


def spark_session(engine: EngineConfig | str | Any = "spark") -> Any:
    """The ``SparkSession`` for an engine setting (started once per process, then reused).

    ``"spark"`` starts ``local[2]``; ``"spark://host:port"`` attaches to that standalone master;
    a ``SparkSession`` object (or an ``EngineConfig`` holding one) is returned as it is.
    Spark allows one master per process: asking for another raises ``OfflineEngineError``.
    """
    if not isinstance(engine, EngineConfig):
        from .config import parse_offline_engine

        engine = parse_offline_engine(engine, "spark_session(engine)")
    if engine.session is not None:
        return engine.session
    if engine.kind != "spark" or engine.master is None:
        raise OfflineEngineError(f"spark_session: {engine!r} is not a Spark engine.",
                                 fix='Pass "spark", "spark://host:port" or a SparkSession.', reason="not-spark")
    master = engine.master
    cached = _SESSIONS.get(master)
    if cached is not None and cached.sparkContext._jsc is not None:  # a stopped context drops _jsc
        return cached
    sql = _pyspark()
    check_java()
    if engine.host is not None and engine.port is not None:
        _check_master(engine.host, engine.port)
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master == master:
            _SESSIONS[master] = active
            return active
        raise OfflineEngineError(
            f"offline_engine asks for Spark master {master!r}, but this process already runs a Spark "
            f"session on {active.sparkContext.master!r} (Spark allows one per process).",
            fix="Pass that SparkSession as offline_engine, or stop it first (spark.stop()).",
            reason="session-conflict", master=master)
    builder = sql.SparkSession.builder.master(master).appName("mlops-kit-offline")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    # Python tasks (RetrievalJob.to_parquet) run this interpreter (its pyarrow) unless told otherwise
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    _SESSIONS[master] = session
    return session


def stop_spark_sessions() -> None:
    """Stop every session started by ``spark_session`` (sessions passed in are left alone)."""
    for master in list(_SESSIONS):
        _SESSIONS.pop(master).stop()


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _source(spark: Any, req: ViewRequest) -> Any:
    """Keys, ``__ts``, ``__cr``, ``__seq`` and ``__f{j}`` of one view's (pruned) files."""
    from pyspark.sql import functions as F

    v = req.view
    dtypes = {f.name: f.dtype for f in v.schema}
    if not req.files:
        cols = [f"{_quote(k)} {_SPARK_TYPES[req.key_types[k]]}" for k in v.join_keys]
        cols += ["__ts timestamp", "__cr timestamp", "__seq bigint"]
        cols += [f"__f{j} {_SPARK_TYPES[dtypes[f]]}" for j, f in enumerate(req.features)]
        return spark.createDataFrame([], ", ".join(cols))
    frame = spark.read.option("recursiveFileLookup", "true").parquet(*[str(p) for p in req.files])
    created = v.created_timestamp_column
    cols = [F.col(_quote(k)) for k in v.join_keys]
    cols.append(F.col(_quote(v.timestamp_field)).alias("__ts"))
    cols.append(F.col(_quote(created)).alias("__cr") if created else F.lit(None).cast("timestamp").alias("__cr"))
    cols.append(F.col(SEQ_COLUMN).alias("__seq"))
    cols += [F.col(_quote(f)).alias(f"__f{j}") for j, f in enumerate(req.features)]
    return frame.select(*cols)


def _view_columns(entity: Any, src: Any, i: int, req: ViewRequest, filter_created: bool) -> Any:
    """``__row_id``, ``__v{i}_{j}`` and ``__late{i}`` for every entity row of one view."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    v = req.view
    keys = list(v.join_keys)
    n = len(req.features)
    packed = F.struct(F.col("__ts").alias("ts"), F.col("__cr").alias("cr"),
                      *[F.col(f"__f{j}").alias(f"f{j}") for j in range(n)])
    feature_side = src.select(*keys, "__ts", F.lit(0).alias("__side"), "__cr", "__seq",
                              F.lit(None).cast("bigint").alias("__row_id"), packed.alias("__w"))
    entity_side = entity.select(*keys, F.col("event_timestamp").alias("__ts"), F.lit(1).alias("__side"),
                                F.lit(None).cast("timestamp").alias("__cr"),
                                F.lit(None).cast("bigint").alias("__seq"), "__row_id",
                                F.lit(None).cast(packed_type(feature_side)).alias("__w"))
    order = Window.partitionBy(*keys).orderBy("__ts", "__side", "__cr", "__seq") \
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    won = feature_side.unionByName(entity_side) \
        .withColumn("__win", F.last("__w", ignorenulls=True).over(order)) \
        .where(F.col("__side") == 1) \
        .select(*keys, "__row_id", F.col("__ts").alias("__t"), "__win")
    t_us = F.unix_micros(F.col("__t"))
    if v.ttl_active:
        ttl_us = int(v.ttl // v.ttl.resolution)  # type: ignore[union-attr]
        ok = F.unix_micros(F.col("__win.ts")) >= t_us - F.lit(ttl_us)
    else:
        ttl_us = None
        ok = F.col("__win.ts").isNotNull()
    late = F.col("__win.cr") > F.col("__t")
    if not (filter_created and v.created_timestamp_column):
        out = [F.when(ok, F.col(f"__win.f{j}")).alias(f"__v{i}_{j}") for j in range(n)]
        return won.select("__row_id", *out, F.coalesce(ok & late, F.lit(False)).alias(f"__late{i}"))
    # created filter: re-resolve the (usually few) rows whose window winner is late
    need = won.where(late).select(*[F.col(k).alias(f"__e_{k}") for k in keys],
                                  F.col("__row_id").alias("__fb_row"), F.col("__t").alias("__fb_t"))
    on = [need[f"__e_{k}"] == src[k] for k in keys]
    on += [src["__ts"] <= need["__fb_t"], src["__cr"] <= need["__fb_t"]]
    if ttl_us is not None:
        on.append(F.unix_micros(src["__ts"]) >= F.unix_micros(need["__fb_t"]) - F.lit(ttl_us))
    rank = Window.partitionBy("__fb_row").orderBy(F.col("__ts").desc(), F.col("__cr").desc(),
                                                  F.col("__seq").desc())
    fallback = need.join(src, on, "inner").withColumn("__rank", F.row_number().over(rank)) \
        .where(F.col("__rank") == 1) \
        .select("__fb_row", *[F.col(f"__f{j}").alias(f"__fb{j}") for j in range(n)])
    joined = won.join(fallback, won["__row_id"] == fallback["__fb_row"], "left")
    out = [F.when(late, F.col(f"__fb{j}")).when(ok, F.col(f"__win.f{j}")).alias(f"__v{i}_{j}")
           for j in range(n)]
    return joined.select("__row_id", *out, F.lit(False).alias(f"__late{i}"))


def packed_type(frame: Any) -> Any:
    """The Spark type of a frame's ``__w`` column (so entity rows can carry a typed null)."""
    return frame.schema["__w"].dataType


def _arrow_type(dtype: str, tz: str) -> pa.DataType:
    return {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_(),
            "timestamp": pa.timestamp("us", tz=tz)}[dtype]


def _empty_result(requests: Sequence[ViewRequest], tz: str) -> PitResult:
    fields = []
    for r in requests:
        dtypes = {f.name: f.dtype for f in r.view.schema}
        fields += [pa.field(name, _arrow_type(dtypes[f], tz)) for f, name in zip(r.features, r.out_names)]
    return PitResult(table=pa.schema(fields).empty_table(), late_rows=0,
                     late_by_view={r.view.name: 0 for r in requests})


def result_tz(store: Any) -> str:
    """The zone name DuckDB's Arrow output carries for TIMESTAMPTZ (so both engines give one dtype)."""
    return store.duckdb.sql("SELECT NULL::TIMESTAMPTZ AS t").to_arrow_table().schema.field("t").type.tz


def feature_columns(requests: Sequence[ViewRequest], tz: str) -> list[tuple[str, str, pa.DataType]]:
    """``(column of spark_feature_frame, output name, Arrow type)`` of every requested feature."""
    out = []
    for i, r in enumerate(requests):
        dtypes = {f.name: f.dtype for f in r.view.schema}
        out += [(f"__v{i}_{j}", name, _arrow_type(dtypes[feat], tz))
                for j, (feat, name) in enumerate(zip(r.features, r.out_names))]
    return out


def spark_feature_frame(spark: Any, join_side: Any, requests: Sequence[ViewRequest],
                        filter_created: bool) -> Any:
    """The lazy join: ``__row_id``, ``__v{i}_{j}`` and ``__late{i}`` per row of ``join_side``.

    ``join_side`` holds the join keys (in the offline key types), ``event_timestamp`` (a Spark
    timestamp) and a unique bigint ``__row_id``.
    """
    result = join_side.select("__row_id")
    for i, req in enumerate(requests):
        part = _view_columns(join_side, _source(spark, req), i, req, filter_created)
        result = result.join(part, "__row_id", "left")
    return result


def spark_type(dtype: str) -> str:
    """The Spark SQL type of a kit dtype (``"int64"`` is ``bigint``)."""
    return _SPARK_TYPES[dtype]


def run_spark_pit_join(store: Any, entity: pa.Table, requests: Sequence[ViewRequest],
                       filter_created: bool) -> PitResult:
    """``run_pit_join`` on the store's Spark engine: same rows, values, types and late counts."""
    tz = result_tz(store)
    if entity.num_rows == 0:
        return _empty_result(requests, tz)
    files = [f for r in requests for f in r.files]
    check_readable(files, "get_historical_features")
    spark = spark_session(store.config.offline)
    folder = Path(tempfile.mkdtemp(prefix="spark-entity-", dir=store.workspace.tmp_dir))
    try:
        ts = entity.column("event_timestamp").cast(pa.timestamp("us", tz="UTC"))
        pq.write_table(entity.set_column(entity.schema.get_field_index("event_timestamp"),
                                         "event_timestamp", ts), folder / "entity.parquet")
        with spark_failures("get_historical_features", files):
            frame = spark.read.parquet(str(folder / "entity.parquet"))
            table = spark_feature_frame(spark, frame, requests, filter_created).toArrow()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    late_by_view, late_rows = late_counts(table, requests)
    columns = [table.column(src).cast(typ) for src, _, typ in feature_columns(requests, tz)]
    names = [name for _, name, _ in feature_columns(requests, tz)]
    row_id = table.column("__row_id").to_numpy()
    position = np.empty(len(row_id), dtype=np.int64)
    position[row_id] = np.arange(len(row_id), dtype=np.int64)
    out = pa.table(columns, names=names).take(pa.array(position))
    return PitResult(table=out, late_rows=late_rows, late_by_view=late_by_view)


def late_counts(table: pa.Table, requests: Sequence[ViewRequest]) -> tuple[dict[str, int], int]:
    """Per-view late counts and the number of rows late in any view, from the ``__late{i}`` columns."""
    late_by_view: dict[str, int] = {}
    late_any = None
    for i, r in enumerate(requests):
        col = pc.fill_null(table.column(f"__late{i}"), False)
        late_by_view[r.view.name] = int(pc.sum(col).as_py() or 0)
        late_any = col if late_any is None else pc.or_(late_any, col)
    return late_by_view, int(pc.sum(late_any).as_py() or 0) if late_any is not None else 0
