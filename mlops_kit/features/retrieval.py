"""``RetrievalJob``: a validated point-in-time request, run on demand into pandas, Parquet or Spark.

``store.historical_retrieval(entity_df, features, ...)`` checks everything (references,
column clashes, the entity frame's columns and dtypes, read access) and returns a job; nothing
runs until one of::

    job.to_df()              # pandas, as get_historical_features returns it (entity order)
    job.to_parquet(path)     # a folder of part-NNNNN.parquet; pd.read_parquet(path) == job.to_df()
    job.to_spark()           # a Spark DataFrame (Spark engine only), sorted in entity order

``get_historical_features`` is ``historical_retrieval(...).to_df()``. ``entity_df`` is a pandas
DataFrame or, on the Spark engine, a Spark DataFrame (``mlops_kit.features.spark_retrieval``
says what row order means for it). On Spark, ``to_parquet`` is written by the executors
(nothing is collected to the driver) and ``to_spark`` stays lazy; its staged entity rows live
under ``workspace.tmp_dir`` until ``store.close()``. On DuckDB the join runs in memory (the
entity frame is already there) and ``to_parquet`` writes one part file; ``to_spark`` raises
``ValidationError``: there is no Spark session to hand the result to. A ``LateDataWarning`` is
raised by ``to_df`` and ``to_parquet`` (``to_spark`` does not run the job, so it cannot count).
Every output is published atomically: a failed run leaves no folder at ``path``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import LateDataWarning, ValidationError
from .pit import PitResult, ViewRequest, run_pit_join
from .serving import plan_online
from .validation import parse_refs, prepare_entity_df

__all__ = ["RetrievalJob", "plan_retrieval", "PANDAS_TYPES"]

PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def _key_kind(arrow_type: pa.DataType) -> str:
    return "string" if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) else "int64"


def plan_retrieval(store: Any, entity_df: Any, features: Sequence[str], full_feature_names: bool,
                   filter_created: bool, principal: str | None, purpose: str | None) -> "RetrievalJob":
    """Validate a request completely (no join runs) and return its ``RetrievalJob``."""
    from .spark_retrieval import check_spark_entity, is_spark_frame, spark_time_bounds

    refs = parse_refs(features, store.get_feature_view)
    plan = plan_online(refs, full_feature_names)
    names = [n for _, _, out in plan.views for n in out]
    spark_entity = is_spark_frame(entity_df)
    if spark_entity and store.config.offline.kind != "spark":
        raise ValidationError("get_historical_features: entity_df is a Spark DataFrame, but the offline "
                              "engine is DuckDB.",
                              fix="Use FeatureStore(root, offline_engine=spark) or pass entity_df.toPandas().")
    if isinstance(entity_df, pd.DataFrame) or spark_entity:
        taken = sorted(set(names) & set(map(str, entity_df.columns)))
        if taken:
            raise ValidationError(f"get_historical_features: entity_df already has columns {taken}.",
                                  fix="Rename them, or pass full_feature_names=True.", clash=taken)
    key_types: dict[str, str] = {}
    for view, _, _ in plan.views:
        key_types.update(store._key_dtypes(view))
    if spark_entity:
        kinds = check_spark_entity(entity_df, plan.join_keys, key_types.get)
        lo, hi, rows = spark_time_bounds(entity_df)
        entity = None
    else:
        entity = prepare_entity_df(entity_df, plan.join_keys, key_types.get)
        kinds = {k: _key_kind(entity.schema.field(k).type) for k in plan.join_keys}
        bounds = pc.min_max(pc.cast(entity.column("event_timestamp"), pa.int64())).as_py()
        lo, hi, rows = bounds["min"], bounds["max"], entity.num_rows
    requests = []
    for view, feats, out in plan.views:
        types = {k: key_types.get(k) or kinds[k] for k in view.join_keys}
        requests.append(ViewRequest(view=view, features=feats, out_names=out, files=store._files_for(view, lo, hi),
                                    key_types=types, has_ties=store.meta.has_ties(view.name, view.version)))
    store.governance.check_read([v for v, _, _ in plan.views], principal=principal, purpose=purpose,
                                channel="offline")
    return RetrievalJob(store, entity_df, entity, kinds, tuple(requests), filter_created, rows)


class RetrievalJob:
    """A planned point-in-time retrieval (see the module docstring); build it with
    ``store.historical_retrieval(...)``."""

    def __init__(self, store: Any, entity_df: Any, entity: pa.Table | None, key_kinds: dict[str, str],
                 requests: tuple[ViewRequest, ...], filter_created: bool, rows: int) -> None:
        self._store = store
        self._entity_df = entity_df
        self._entity = entity
        self._kinds = key_kinds
        self.requests = requests
        self.filter_created = filter_created
        self.rows = rows

    @property
    def engine(self) -> str:
        """``"duckdb"`` or ``"spark"``: where the join runs."""
        return self._store.config.offline.kind

    def __repr__(self) -> str:
        views = ", ".join(f"{r.view.name}@v{r.view.version}" for r in self.requests)
        return f"RetrievalJob({self.rows} entity rows, views=[{views}], engine={self.engine})"

    # -- outputs ---------------------------------------------------------------------------------
    def to_df(self) -> pd.DataFrame:
        """The result as pandas: every entity column and row in entity order, then the features."""
        return self._to_df(stacklevel=3)

    def _to_df(self, stacklevel: int) -> pd.DataFrame:
        if self._entity is None:  # a Spark entity frame: collect the joined result in entity order
            from .spark_engine import late_counts

            with self._spark_run() as result:
                table = result.to_arrow()
            by_view, late = late_counts(table, self.requests)
            self._warn(late, by_view, stacklevel + 1)
            entity = table.select(result.entity_columns).to_pandas()
            feats = pa.table([table.column(s).cast(t) for s, _, t in result.features],
                             names=[n for _, n, _ in result.features])
            return pd.concat([entity, feats.to_pandas(types_mapper=PANDAS_TYPES.get)], axis=1)
        pit = self._run_pit()
        self._warn(pit.late_rows, pit.late_by_view, stacklevel + 1)
        feats_df = pit.table.to_pandas(types_mapper=PANDAS_TYPES.get)
        return pd.concat([self._entity_df.reset_index(drop=True), feats_df], axis=1)

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the result as a folder of Parquet part files at ``path`` (which must not exist).

        ``pd.read_parquet(path)`` gives back ``to_df()`` exactly, dtypes included. Returns ``path``.
        """
        from .spark_retrieval import publish_folder

        if not isinstance(path, (str, os.PathLike)):
            raise ValidationError(f"to_parquet: path must be a folder path, got {path!r}.",
                                  fix="Pass e.g. job.to_parquet('out/training_set').")
        out = Path(path)
        if out.exists():
            raise ValidationError(f"to_parquet: {str(out)!r} already exists.",
                                  fix="Remove it first or choose a new folder; results are never merged.")
        if self.engine != "spark":
            pit = self._run_pit()
            self._warn(pit.late_rows, pit.late_by_view, 3)
            entity = pa.Table.from_pandas(self._entity_df.reset_index(drop=True), preserve_index=False)
            target = self._target_schema(self._entity_df.iloc[:0].reset_index(drop=True), pit.table.schema)
            table = pa.table([*entity.columns, *pit.table.columns], names=target.names).cast(target)

            def fill_local(folder: Path) -> None:
                import pyarrow.parquet as pq

                pq.write_table(table, folder / "part-00000.parquet")
            return publish_folder(out, fill_local)
        with self._spark_run() as result:
            empty = result.empty_entity() if self._entity is None else self._entity_df.iloc[:0].reset_index(drop=True)
            target = self._target_schema(empty, pa.schema([pa.field(n, t) for _, n, t in result.features]))

            def fill_spark(folder: Path) -> None:
                import pyarrow.parquet as pq

                counts = result.write_parquet(folder, target)
                if not any(folder.glob("part-*.parquet")):
                    pq.write_table(target.empty_table(), folder / "part-00000.parquet")
                self._warn(counts[1], {r.view.name: c for r, c in zip(self.requests, counts[2:])}, 5)
            return publish_folder(out, fill_spark)

    def to_spark(self) -> Any:
        """The result as a lazy Spark DataFrame (Spark engine only), sorted in entity order."""
        if self.engine != "spark":
            raise ValidationError("to_spark: the offline engine is DuckDB, so there is no Spark result.",
                                  fix="Use FeatureStore(root, offline_engine='spark'), or job.to_df() / "
                                      "job.to_parquet(path).")
        return self._spark_result()[0].to_spark()  # its staged rows stay until store.close()

    # -- plumbing --------------------------------------------------------------------------------
    def _run_pit(self) -> PitResult:
        store = self._store
        if self.engine == "spark":
            from .spark_engine import run_spark_pit_join

            return run_spark_pit_join(store, self._entity, self.requests, self.filter_created)
        return run_pit_join(store.duckdb, self._entity, self.requests, self.filter_created)

    def _spark_result(self) -> tuple[Any, Path]:
        from .spark_engine import result_tz, spark_session
        from .spark_retrieval import SparkResult, stage_entity

        store = self._store
        spark = spark_session(store.config.offline)
        folder = Path(tempfile.mkdtemp(prefix="spark-retrieval-", dir=store.workspace.tmp_dir))
        store._staged_dirs.append(folder)  # removed by store.close(): a lazy frame still reads it
        staged = stage_entity(spark, self._entity_df, folder)
        result = SparkResult(spark, staged, self._kinds, self.requests, self.filter_created, result_tz(store))
        return result, folder

    @contextmanager
    def _spark_run(self) -> Iterator[Any]:
        result, folder = self._spark_result()
        try:
            yield result
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self._store._staged_dirs.remove(folder)

    @staticmethod
    def _target_schema(empty_entity: pd.DataFrame, features: pa.Schema) -> pa.Schema:
        """The Arrow schema (with pandas metadata) whose ``to_pandas`` is the ``to_df`` frame."""
        feats = features.empty_table().to_pandas(types_mapper=PANDAS_TYPES.get)
        return pa.Schema.from_pandas(pd.concat([empty_entity, feats], axis=1), preserve_index=False)

    def _warn(self, late_rows: int, by_view: dict[str, int], stacklevel: int) -> None:
        if not late_rows:
            return
        detail = ", ".join(f"{k}: {n}" for k, n in by_view.items() if n)
        warnings.warn(LateDataWarning(
            f"{late_rows} of {self.rows} entity rows used feature rows created after "
            f"their event_timestamp ({detail}): late corrections leak into this training set. "
            "Pass filter_by_created_timestamp=True to use only rows known at each event_timestamp."),
            stacklevel=stacklevel)
