"""Materialization on Spark against the reference (the DuckDB path), on SQLite and on Redis.

Two workspaces hold identical offline data; one materializes with DuckDB, the other with
Spark. Reports, watermarks and the raw online rows must be identical after a window, an
incremental run and an idempotent rerun; a failed Spark job must write nothing online.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit.errors import OfflineEngineError
from mlops_kit.features import FeatureStore

from .test_pit_spark import T0, _world


def _online_state(store: FeatureStore, edf: pd.DataFrame) -> dict:
    """Every view's raw online rows for every entity key of ``edf``, plus counts and watermarks."""
    state = {}
    for view in store.list_feature_views():
        keys = list(dict.fromkeys(map(tuple, edf[list(view.join_keys)].itertuples(index=False))))
        ts, values = store.online.read_rows(view, list(view.feature_names), keys)
        state[view.name] = (ts, values, store.online.count(view), store.watermark(view))
    return state


def _pair(workspace, tmp_path, spark, engine, seed):
    duck = FeatureStore(workspace, online_store=engine)
    edf, refs = _world(np.random.default_rng(seed), duck, seed)
    duck.close()
    copy = tmp_path / "spark_ws"
    shutil.copytree(workspace.root, copy)  # same offline files and manifest, nothing materialized yet
    return FeatureStore(workspace, online_store=engine), FeatureStore(copy, offline_engine=spark,
                                                                       online_store=engine), edf


@pytest.mark.parametrize("seed", [1, 2])
def test_spark_materialization_equals_the_duckdb_one(workspace, tmp_path, spark, engine, seed):
    duck, on_spark, edf = _pair(workspace, tmp_path, spark, engine, seed)
    window = (T0 + timedelta(minutes=15), T0 + timedelta(minutes=40))
    steps = [lambda s: s.materialize(*window),
             lambda s: s.materialize_incremental(T0 + timedelta(hours=2)),
             lambda s: s.materialize_incremental(T0 + timedelta(hours=2)),  # rerun: idempotent
             lambda s: s.materialize(T0, T0 + timedelta(hours=2), views=[s.list_feature_views()[0].name])]
    before = None
    for i, step in enumerate(steps):
        want, got = step(duck), step(on_spark)
        assert got.to_dict() == want.to_dict(), i
        state = _online_state(on_spark, edf)
        assert state == _online_state(duck, edf), i
        if i == 2:
            assert state == before  # the rerun changed nothing online
        before = state
    assert any(c for _, _, c, _ in before.values())  # something was materialized
    duck.close()
    on_spark.close()


@pytest.mark.parametrize("fault", ["corrupt", "removed"])
def test_a_failed_spark_job_writes_nothing_online(workspace, tmp_path, spark, engine, fault):
    _, on_spark, edf = _pair(workspace, tmp_path, spark, engine, 0)
    on_spark.materialize(T0, T0 + timedelta(minutes=20))
    before = _online_state(on_spark, edf)
    bad = on_spark.offline_files(on_spark.list_feature_views()[0])[-1]
    if fault == "corrupt":
        bad.write_bytes(b"PAR1 this is not a parquet file PAR1")  # the driver can open it; Spark cannot read it
    else:
        bad.unlink()
    with pytest.raises(OfflineEngineError) as err:
        on_spark.materialize_incremental(T0 + timedelta(hours=2))
    assert err.value.details == {"reason": "path-unreadable" if fault == "removed" else "job-failed",
                                 "path": str(bad)}
    assert str(bad) in str(err.value)
    assert _online_state(on_spark, edf) == before  # counts, rows and watermarks unchanged
    assert not list((on_spark.workspace.root / "tmp").glob("spark-materialize-*"))
    on_spark.close()
