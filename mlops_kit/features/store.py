"""``FeatureStore``: the facade over definitions, offline Parquet, the PIT join and serving."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .._sqlite import translate_busy
from .._time import Clock, system_clock
from ..errors import DefinitionConflictError, DefinitionError, NotFoundError, ValidationError
from ..workspace import Workspace
from .backfill import BackfillOps
from .definitions import Entity, FeatureView
from .materialize import MaterializationReport, ViewMaterialization, materialize_view
from .metadata import MetadataDB
from .offline import IngestResult, write_ingest
from .config import StoreConfig, duckdb_memory_limit_arg, load_store_config, namespace_for
from .online import OnlineStore, RedisOnlineStore, SqliteOnlineStore
from .pit import SEQ_COLUMN, files_sql, q, ts_sql
from .retrieval import PANDAS_TYPES, RetrievalJob, plan_retrieval
from .serving import OnlinePlan, keys_of, plan_online, read_online, us_to_datetime
from .serving import datetime_to_us as _us
from .spark_materialize import materialize_view_spark
from .validation import parse_refs, to_arrow_rows

__all__ = ["FeatureStore"]


class FeatureStore(BackfillOps):
    """Feature definitions, offline storage, point-in-time joins and online serving.

    Parameters
    ----------
    root_or_workspace:
        A ``Workspace`` or a folder path.
    clock:
        "Now" for online TTL checks when no ``at`` is given (default: the wall clock).
    online:
        An ``OnlineStore`` object; wins over every setting below.
    online_store:
        ``"sqlite"`` or ``"redis://[:password@]host:port/db"``; overrides ``online_store`` of the
        workspace's ``feature_store.toml`` (see ``mlops_kit.features.config``; default SQLite in
        ``workspace.online_db``).
    offline_engine:
        ``"duckdb"`` (default), ``"spark"``, ``"spark://host:port"`` or a ``SparkSession``;
        overrides the file's ``offline_engine`` (see ``mlops_kit.features.spark_engine``).
    duckdb_memory_limit:
        DuckDB memory limit, a size such as ``"4GB"`` or ``"512MB"`` (at least 32 MB; other
        values raise ``ValidationError`` before anything is written); larger joins spill to
        ``workspace.tmp_dir / "duckdb"``.
    """

    def __init__(self, root_or_workspace: Workspace | str | os.PathLike[str], *,
                 clock: Clock | None = None, online: OnlineStore | None = None,
                 online_store: str | None = None, offline_engine: str | None = None,
                 duckdb_memory_limit: str = "8GB") -> None:
        self._memory_limit = duckdb_memory_limit_arg(duckdb_memory_limit)  # refused before anything is written
        ws = root_or_workspace
        self.workspace = ws if isinstance(ws, Workspace) else Workspace(ws)  # type: ignore[arg-type]
        self.clock: Clock = clock if clock is not None else system_clock
        self.config: StoreConfig = load_store_config(self.workspace.root, online_store=online_store,
                                                     offline_engine=offline_engine)
        if online is None and self.config.online.kind == "redis":
            online = RedisOnlineStore(self.config.online,
                                      namespace=namespace_for(self.workspace.root, self.config.project))
        self.online: OnlineStore = online if online is not None else SqliteOnlineStore(self.workspace.online_db)
        self.meta = MetadataDB(self.workspace.features_db)
        self._duck: duckdb.DuckDBPyConnection | None = None
        self._governance: Any = None
        self._views: dict[tuple[str, int], FeatureView] = {}
        self._plans: dict[tuple, OnlinePlan] = {}
        self._live_generation = -1
        self._staged_dirs: list[Path] = []  # Spark retrieval staging (see retrieval.RetrievalJob)
        self._reload()

    def __repr__(self) -> str:
        online = self.online.describe()
        shown = f"{online['kind']} {online['url']}" if "url" in online else online["kind"]
        return f"FeatureStore({str(self.workspace.root)!r}, online={shown}, offline={self.config.offline.kind})"

    def describe(self) -> dict[str, Any]:
        """The engines in use, safe to print (passwords masked)::

            {"online_store": {"kind": "redis", "url": "redis://:***@host:6379/0", "namespace": ...},
             "offline_engine": {"kind": "duckdb"}, "config_file": ".../feature_store.toml" or None}
        """
        return {"online_store": self.online.describe(), "offline_engine": self.config.offline.describe(),
                "config_file": None if self.config.source is None else str(self.config.source)}

    def close(self) -> None:
        """Flush buffered usage counts and close every connection (the store is unusable after)."""
        if self._governance is not None:
            self._governance.close()
            self._governance = None
        if self._duck is not None:
            self._duck.close()
            self._duck = None
        for folder in self._staged_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._staged_dirs.clear()
        self.online.close()
        self.meta.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def governance(self) -> Any:
        """The read-time governance hook (created on first use)."""
        if self._governance is None:
            from ..governance import Governance

            self._governance = Governance(self.workspace, clock=self.clock)
        return self._governance

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """The store's DuckDB connection (UTC, memory limit, spills under ``tmp/duckdb``)."""
        if self._duck is None:
            spill = self.workspace.tmp_dir / "duckdb"
            spill.mkdir(exist_ok=True)
            self._duck = duckdb.connect(":memory:", config={
                "memory_limit": self._memory_limit, "temp_directory": str(spill)})
        return self._duck

    def _reload(self) -> None:
        self._views = {(v.name, v.version): v for v in self.meta.load_views()}
        self._plans.clear()

    # -- definitions --------------------------------------------------------------------------
    def apply(self, objects: Iterable[Entity | FeatureView]) -> list[str]:
        """Register entities and feature views; returns the names newly registered.

        Re-applying an identical definition is a no-op; a changed definition under an
        existing ``(name, version)`` raises ``DefinitionConflictError`` (bump ``version``).
        """
        if isinstance(objects, (Entity, FeatureView)) or not isinstance(objects, Iterable):
            raise ValidationError(f"apply: expected a list of Entity/FeatureView, got {objects!r}.",
                                  fix="Pass a list, e.g. store.apply([user, user_7d]).")
        items = list(objects)
        new: list[Entity | FeatureView] = []
        expanded: list[Entity | FeatureView] = []
        for item in items:
            if not isinstance(item, (Entity, FeatureView)):
                raise DefinitionError(f"apply: {item!r} is not an Entity or FeatureView.",
                                      fix="Build definitions with Entity(...) and FeatureView(...).")
            if isinstance(item, FeatureView):
                expanded += list(item.entities)
            expanded.append(item)
        for item in expanded:
            kind = "view" if isinstance(item, FeatureView) else "entity"
            version = item.version if isinstance(item, FeatureView) else 1
            stored = self.meta.stored_fingerprint(kind, item.name, version)
            twin = [o for o in new if type(o) is type(item) and o.name == item.name
                    and getattr(o, "version", 1) == version]
            if stored is not None and stored != item.fingerprint or any(o != item for o in twin):
                what = f"FeatureView {item.name!r} v{version}" if kind == "view" else f"Entity {item.name!r}"
                raise DefinitionConflictError(
                    f"{what} is already registered with a different definition.",
                    fix=("Bump the version (version=...) for a changed view; versions coexist."
                         if kind == "view" else "Give the changed entity a new name."),
                    name=item.name, version=version)
            if stored is None and not twin:
                new.append(item)
        new = self.meta.save_definitions(new)  # re-checked under the write lock
        for item in new:
            if isinstance(item, FeatureView):
                self._views[(item.name, item.version)] = item
                self.governance.register(item)  # discoverable in the catalog from apply on
        self._plans.clear()
        return [f"{o.name}" + (f"@v{o.version}" if isinstance(o, FeatureView) else "") for o in new]

    def get_feature_view(self, name: str, version: int | None = None) -> FeatureView:
        """The applied view ``name``: its live version unless ``version`` is given.

        The live version is the one pinned by a promotion (see ``promote_backfill``), else
        the latest applied version.
        """
        if version is None and isinstance(name, str):
            version = self.meta.live_version(name)
        for attempt in range(2):
            if version is not None and (name, version) in self._views:
                return self._views[(name, version)]
            versions = [v for (n, v) in self._views if n == name]
            if version is None and versions:
                return self._views[(name, max(versions))]
            if attempt == 0:
                self._reload()
        known = sorted({f"{n}@v{v}" for n, v in self._views})
        label = name if version is None else f"{name}@v{version}"
        raise NotFoundError(f"unknown feature view {label!r}.",
                            fix=f"Apply it first (store.apply([...])); known views: {known}.", view=label)

    def list_feature_views(self) -> list[FeatureView]:
        """Every applied view version, sorted by name then version."""
        self._reload()
        return [self._views[k] for k in sorted(self._views)]

    def list_entities(self) -> list[Entity]:
        return self.meta.load_entities()

    def _resolve(self, view: str | FeatureView, version: int | None = None) -> FeatureView:
        if isinstance(view, FeatureView):
            return self.get_feature_view(view.name, view.version)
        if not isinstance(view, str):
            raise ValidationError(f"expected a view name, got {view!r}.", fix="Pass e.g. 'user_7d'.")
        return self.get_feature_view(view, version)

    def _key_dtypes(self, view: FeatureView) -> dict[str, str]:
        return {**self.meta.key_dtypes(view.name, view.version), **view.declared_key_dtypes}

    # -- offline ------------------------------------------------------------------------------
    def ingest(self, view_name: str, df: pd.DataFrame, *, version: int | None = None,
               _before_publish: Any = None) -> IngestResult:
        """Validate ``df`` completely, then write it atomically as Parquet (one commit)."""
        view = self._resolve(view_name, version)
        table, key_dtypes = to_arrow_rows(view, df, self._key_dtypes(view))
        return write_ingest(self.duckdb, self.meta, self.workspace.offline_dir, self.workspace.tmp_dir, view,
                            table, key_dtypes, before_publish=_before_publish,
                            started_us=_us(self.clock(), "clock()"))

    def offline_files(self, view: str | FeatureView, version: int | None = None) -> list[Path]:
        """Committed Parquet files of a view version, in ingest order (for ``read_parquet``)."""
        fv = self._resolve(view, version)
        root = self.workspace.offline_dir
        return [root / p for p, *_ in self.meta.committed_files(fv.name, fv.version)]

    def _files_for(self, view: FeatureView, lo_us: int | None, hi_us: int | None) -> tuple[Path, ...]:
        """Committed files that can hold a candidate for entity times in ``[lo_us, hi_us]``."""
        if lo_us is None or hi_us is None:
            return ()
        lower = lo_us - view.ttl // view.ttl.resolution if view.ttl_active else None  # type: ignore[union-attr]
        root = self.workspace.offline_dir
        return tuple(root / p for p, _, first, last in self.meta.committed_files(view.name, view.version)
                     if first <= hi_us and (lower is None or last >= lower))

    def read_offline(self, view: str | FeatureView, start: datetime | None = None,
                     end: datetime | None = None, *, version: int | None = None) -> pd.DataFrame:
        """Committed offline rows with ``start <= ts < end``, sorted by timestamp and ingest order."""
        fv = self._resolve(view, version)
        cols = list(fv.join_keys) + [fv.timestamp_field]
        cols += [fv.created_timestamp_column] if fv.created_timestamp_column else []
        cols += list(fv.feature_names)
        files = self.offline_files(fv)
        if not files:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        where = []
        if start is not None:
            where.append(f"{q(fv.timestamp_field)} >= {ts_sql(_us(start, 'start'))}")
        if end is not None:
            where.append(f"{q(fv.timestamp_field)} < {ts_sql(_us(end, 'end'))}")
        sql = (f"SELECT {', '.join(map(q, cols))} FROM read_parquet({files_sql(files)}) "
               f"{'WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY {q(fv.timestamp_field)}, {SEQ_COLUMN}")
        return self.duckdb.sql(sql).to_arrow_table().to_pandas(types_mapper=PANDAS_TYPES.get)

    # -- point-in-time join ---------------------------------------------------------------------
    def get_historical_features(self, entity_df: Any, features: Sequence[str],
                                full_feature_names: bool = False,
                                filter_by_created_timestamp: bool = False, *,
                                principal: str | None = None, purpose: str | None = None) -> pd.DataFrame:
        """Point-in-time correct feature values for every row of ``entity_df``, in its order.

        See ``mlops_kit.features.pit`` for the exact semantics. ``entity_df`` holds the
        join keys and a tz-aware ``event_timestamp`` (a pandas DataFrame, or on the Spark
        engine a Spark DataFrame: see ``mlops_kit.features.spark_retrieval``); the result keeps
        every input column and row (duplicates too) in input order, with a fresh RangeIndex.
        Feature columns are named ``feature`` (or ``view__feature`` with
        ``full_feature_names=True``); int64 and bool features come back as nullable
        ``Int64``/``boolean``. With ``filter_by_created_timestamp`` only rows created at or
        before the entity timestamp count (views without a created column are not filtered);
        without it a ``LateDataWarning`` says how many entity rows used rows created after
        their time. ``historical_retrieval`` plans the same request for Parquet or Spark output.
        """
        return plan_retrieval(self, entity_df, features, full_feature_names, filter_by_created_timestamp,
                              principal, purpose)._to_df(stacklevel=3)

    def historical_retrieval(self, entity_df: Any, features: Sequence[str],
                             full_feature_names: bool = False,
                             filter_by_created_timestamp: bool = False, *,
                             principal: str | None = None, purpose: str | None = None) -> RetrievalJob:
        """The ``get_historical_features`` request, validated but not run: a ``RetrievalJob`` with
        ``.to_df()``, ``.to_parquet(path)`` and ``.to_spark()`` (see ``mlops_kit.features.retrieval``)."""
        return plan_retrieval(self, entity_df, features, full_feature_names, filter_by_created_timestamp,
                              principal, purpose)

    # -- materialization ------------------------------------------------------------------------
    def _select_views(self, views: Sequence[str] | None) -> list[FeatureView]:
        if views is None:
            return [self.get_feature_view(n) for n in dict.fromkeys(v.name for v in self.list_feature_views())]
        if isinstance(views, str) or not isinstance(views, (list, tuple)):
            raise ValidationError(f"views must be a list of view names, got {views!r}.",
                                  fix="Pass e.g. views=['user_7d'] or views=['user_7d@v2'].")
        out = []
        for name in views:
            base, at_sign, ver = str(name).partition("@")
            digits = ver[1:] if ver[:1] in ("v", "V") else ver
            if at_sign and not digits.isdigit():
                raise ValidationError(f"views: {name!r} is not 'view' or 'view@vN'.",
                                      fix="Write e.g. 'user_7d' or 'user_7d@v2'.")
            out.append(self.get_feature_view(base, int(digits) if at_sign else None))
        return out

    def _materialize(self, windows: list[tuple[FeatureView, int | None, int]]) -> MaterializationReport:
        report: dict[str, ViewMaterialization] = {}
        for view, start_us, end_us in windows:
            files = self.offline_files(view)
            if start_us is None:
                rows = self.meta.committed_files(view.name, view.version)
                start_us = min((r[2] for r in rows), default=end_us)
            with translate_busy(f"materialize {view.name!r} v{view.version}"):
                if self.config.offline.kind == "spark":  # same winners (spark_materialize)
                    scanned, written, entities = materialize_view_spark(
                        self, view, self._key_dtypes(view), start_us, end_us)
                else:
                    scanned, written, entities = materialize_view(
                        self.duckdb, self.online, view, self._key_dtypes(view), files, start_us, end_us,
                        has_ties=self.meta.has_ties(view.name, view.version))
            if start_us < end_us:
                with self.meta.transaction(f"materialize {view.name!r} (watermark)") as con:
                    self.meta.advance_watermark(con, view.name, view.version, end_us)
            report[view.name] = ViewMaterialization(
                view=view.name, version=view.version, start=us_to_datetime(start_us),
                end=us_to_datetime(end_us), rows_scanned=scanned, rows_written=written,
                entities=entities, watermark=self.watermark(view))
        return MaterializationReport(views=report)

    def materialize(self, start: datetime, end: datetime,
                    views: Sequence[str] | None = None) -> MaterializationReport:
        """Write each entity's latest row with ``start <= ts < end`` to the online store."""
        start_us, end_us = _us(start, "materialize(start)"), _us(end, "materialize(end)")
        if start_us > end_us:
            raise ValidationError(f"materialize: start {start} is after end {end}.",
                                  fix="Pass start <= end.")
        return self._materialize([(v, start_us, end_us) for v in self._select_views(views)])

    def materialize_incremental(self, end: datetime,
                                views: Sequence[str] | None = None) -> MaterializationReport:
        """Materialize from each view's watermark (first run: its earliest offline row) to ``end``."""
        end_us = _us(end, "materialize_incremental(end)")
        windows = []
        for view in self._select_views(views):
            mark = self.meta.watermark_us(view.name, view.version)
            windows.append((view, None if mark is None else min(mark, end_us), end_us))
        return self._materialize(windows)

    def watermark(self, view: str | FeatureView, version: int | None = None) -> datetime | None:
        """How far (exclusive) a view version has been materialized, or None."""
        fv = self._resolve(view, version)
        return us_to_datetime(self.meta.watermark_us(fv.name, fv.version))

    # -- online ---------------------------------------------------------------------------------
    def get_online_features(self, features: Sequence[str], entity_rows: Sequence[dict[str, Any]], *,
                            at: datetime | None = None, full_feature_names: bool = False,
                            include_timestamps: bool = False, principal: str | None = None,
                            purpose: str | None = None) -> dict[str, list]:
        """Latest online values per entity row, as ``{column: [values]}`` (join keys included).

        Values older than the view's TTL relative to ``at`` (default: the store's clock)
        and unknown keys read as ``None``. ``include_timestamps=True`` adds
        ``<view>__event_timestamp`` columns (the served value's event time).
        """
        cache_key = (tuple(features) if isinstance(features, (list, tuple)) else features,
                     full_feature_names)
        generation = self.meta.live_generation()
        if generation != self._live_generation:
            self._plans.clear()
            self._live_generation = generation
        plan = self._plans.get(cache_key) if isinstance(cache_key[0], tuple) else None
        if plan is None:
            plan = plan_online(parse_refs(features, self.get_feature_view), full_feature_names)
            self._plans[cache_key] = plan
        at_us = _us(self.clock() if at is None else at, "get_online_features(at)")
        key_columns = keys_of(entity_rows, plan.join_keys)
        self.governance.check_read([v for v, _, _ in plan.views], principal=principal,
                                   purpose=purpose, channel="online")
        return read_online(self.online, plan, key_columns, at_us, include_timestamps)

