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
``store.online`` (the ``OnlineStore``), ``store.watermark(view)``, ``store.duckdb`` (the
store's configured DuckDB connection), ``get_online_features(..., include_timestamps=True)``
(adds ``<view>__event_timestamp``: the served value's event time, for feature age) and
``parity_report(store, features, sample_size=, seed=, at=)``.

Point-in-time semantics are written out in ``mlops_kit.features.pit``.
"""

from .definitions import DTYPES, SENSITIVITIES, Entity, FeatureView, Field
from .materialize import MaterializationReport, ViewMaterialization
from .offline import IngestResult
from .online import OnlineStore, SqliteOnlineStore
from .parity import ParityReport, parity_report
from .store import FeatureStore

__all__ = [
    "DTYPES",
    "SENSITIVITIES",
    "Entity",
    "Field",
    "FeatureView",
    "FeatureStore",
    "IngestResult",
    "MaterializationReport",
    "ViewMaterialization",
    "OnlineStore",
    "SqliteOnlineStore",
    "ParityReport",
    "parity_report",
]
