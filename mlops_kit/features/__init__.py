"""The feature store: definitions as code, offline Parquet, point-in-time joins, online serving::

    from mlops_kit.features import Entity, Field, FeatureView, FeatureStore
    store = FeatureStore(root)                        # or Workspace(root).features
    store.apply([user, user_7d])                      # validated; versions coexist
    store.ingest("user_7d", df)                       # validated, then atomic
    store.get_historical_features(entity_df, ["user_7d:amount_7d"])
    store.materialize(start, end); store.materialize_incremental(end)
    store.get_online_features(["user_7d:amount_7d"], [{"user_id": 7}])

Feature references are ``"view:feature"`` (the latest applied version of the view) or
``"view@v2:feature"`` (a pinned version). One request reads one version of a view.

Helpers for other components: ``store.get_feature_view(name, version=None)``,
``store.list_feature_views()``, ``store.offline_files(view, version=None)`` (committed
Parquet files, for DuckDB ``read_parquet``; each holds the view's columns plus a hidden
``__seq`` ingest-order column), ``store.read_offline(view, start=None, end=None)``,
``store.online`` (the ``OnlineStore``: SQLite, or ``RedisOnlineStore`` when the workspace's
``feature_store.toml`` or ``FeatureStore(root, online_store="redis://...")`` says so; see
``mlops_kit.features.config``), ``store.describe()`` (the engines in use), ``store.watermark(view)``, ``store.duckdb`` (the
store's configured DuckDB connection), ``get_online_features(..., include_timestamps=True)``
(adds ``<view>__event_timestamp``: the served value's event time, for feature age) and
``parity_report(store, features, sample_size=, seed=, at=)``.

Backfills as controlled migrations (``mlops_kit.features.backfill``)::

    rec = store.backfill("user_7d", start, end, compute=f, labels=labels_df)  # shadow + validation
    rec.report.to_frame()                     # row counts, null rates, value diffs, leakage
    store.promote_backfill(rec.backfill_id)   # one transaction; force_reason= if it failed
    store.rollback_promotion("user_7d")       # the previous live version again
    store.live_version("user_7d"); store.get_backfill(id); store.list_backfills("user_7d")

``"view:feature"`` (and ``ingest``, ``read_offline``, ``materialize``) use the view's live
version: the one pinned in ``features.sqlite`` (pinned to the then-latest version when the
view's first backfill starts, then moved only by promotion and rollback), else the latest
applied. ``"view@v2:feature"`` still reads any version, shadows included.
``store.forget_offline_files(paths)`` drops files or ``date=`` folders from the committed
list (made to be the ``before_delete`` of ``governance.apply_retention``).

Several processes may write one workspace at once (ingest, backfill, materialize, apply,
governance): ids are reserved in ``features.sqlite`` before any file is written, a lock held
past the bounded wait raises the retryable ``ConcurrentWriteError``, and
``store.verify()`` / ``store.repair()`` (``mlops-kit doctor WORKSPACE [--repair]``) check the
manifest against its files, the online store against its watermarks and the databases'
integrity, quarantining orphans (``mlops_kit.features.doctor``).

Point-in-time semantics are written out in ``mlops_kit.features.pit``. The join runs in DuckDB
unless ``offline_engine`` (``feature_store.toml`` or ``FeatureStore(root, offline_engine=...)``)
is ``"spark"``, ``"spark://host:port"`` or a ``SparkSession``: the same semantics and result
types on Spark (``mlops_kit.features.spark_engine``; ``pip install -e ".[spark]"``, Java 17+).
``store.historical_retrieval(...)`` returns a ``RetrievalJob`` (``.to_df()``, ``.to_parquet(path)``,
``.to_spark()``; ``mlops_kit.features.retrieval``); on Spark ``entity_df`` may be a Spark
DataFrame, and ``materialize`` / ``materialize_incremental`` run there too
(``mlops_kit.features.spark_materialize``).
"""

from .backfill_records import BackfillRecord, BackfillThresholds, PartitionRun, ValidationCheck, ValidationReport
from .definitions import DTYPES, SENSITIVITIES, Entity, FeatureView, Field
from .doctor import Problem, VerifyReport
from .materialize import MaterializationReport, ViewMaterialization
from .offline import IngestResult
from .config import StoreConfig, load_store_config
from .online import OnlineStore, RedisOnlineStore, SqliteOnlineStore
from .parity import ParityReport, parity_report
from .retrieval import RetrievalJob
from .store import FeatureStore

__all__ = [
    "BackfillRecord",
    "Problem",
    "VerifyReport",
    "BackfillThresholds",
    "PartitionRun",
    "ValidationCheck",
    "ValidationReport",
    "DTYPES",
    "SENSITIVITIES",
    "Entity",
    "Field",
    "FeatureView",
    "FeatureStore",
    "RetrievalJob",
    "IngestResult",
    "MaterializationReport",
    "ViewMaterialization",
    "OnlineStore",
    "SqliteOnlineStore",
    "RedisOnlineStore",
    "StoreConfig",
    "load_store_config",
    "ParityReport",
    "parity_report",
]
