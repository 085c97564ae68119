"""``RetrievalJob`` on both engines: to_df / to_parquet / to_spark, Spark entity frames, refusals.

References: the DuckDB engine's frame (itself checked against the brute-force oracle in
``test_pit_property``) and, for a hand-built world, ``oracle.brute_force_join`` directly.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from mlops_kit.errors import LateDataWarning, OfflineEngineError, SchemaError, TimezoneError, ValidationError
from mlops_kit.features import FeatureStore, RetrievalJob
from mlops_kit.features.spark_faults import spark_failures

from .helpers import at, entities, rows, view
from .oracle import brute_force_join
from .test_pit_spark import _world


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LateDataWarning)
        return call()


@pytest.mark.parametrize("seed", [0, 1])
def test_parquet_spark_frame_and_spark_entity_give_the_duckdb_result(workspace, spark, tmp_path, seed):
    duck = FeatureStore(workspace)
    edf, refs = _world(np.random.default_rng(seed), duck, seed)
    expected = _quiet(lambda: duck.get_historical_features(edf, refs, full_feature_names=True))
    on_spark = FeatureStore(workspace, offline_engine=spark)
    job = on_spark.historical_retrieval(edf, refs, full_feature_names=True)
    assert isinstance(job, RetrievalJob) and job.engine == "spark" and job.rows == len(edf)
    assert_frame_equal(_quiet(job.to_df), expected, check_exact=True)
    out = _quiet(lambda: job.to_parquet(tmp_path / "spark_out"))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in out.glob("part-*.parquet"))
    assert_frame_equal(pd.read_parquet(out), expected, check_exact=True)  # dtypes included
    frame = job.to_spark().toPandas()  # Spark's own conversion: compare values, in entity order
    for column in expected.columns:
        want = [None if pd.isna(v) else v for v in expected[column]]
        got = [None if pd.isna(v) else v for v in frame[column]]
        if pd.api.types.is_datetime64_any_dtype(expected[column]):
            want = [None if v is None else v.value // 1000 for v in want]
            got = [None if v is None else pd.Timestamp(v).tz_localize(None).value // 1000 for v in got]
        assert got == want, column
    # a Spark entity frame (two partitions): same result as its pandas equivalent
    plain = edf.reset_index(drop=True).drop_duplicates().reset_index(drop=True)
    sdf = spark.createDataFrame(plain)
    assert sdf.rdd.getNumPartitions() == 2
    equivalent = sdf.toArrow().to_pandas()
    want = _quiet(lambda: duck.get_historical_features(equivalent, refs, full_feature_names=True))
    assert_frame_equal(_quiet(lambda: on_spark.get_historical_features(sdf, refs, full_feature_names=True)),
                       want, check_exact=True)
    assert_frame_equal(pd.read_parquet(_quiet(lambda: on_spark.historical_retrieval(
        sdf, refs, full_feature_names=True).to_parquet(tmp_path / "from_spark_entity"))), want, check_exact=True)
    on_spark.close()
    assert not list((workspace.root / "tmp").glob("spark-retrieval-*"))  # staging removed on close
    duck.close()


def _oracle_world(store: FeatureStore):
    store.apply([view(ttl=timedelta(hours=2))])
    data = [(1, at(0), at(0), 1.0, 1), (1, at(1), at(3), 2.0, 2), (2, at(0.5), at(0.5), None, 3),
            (1, at(1), at(1.5), 2.5, None), (2, at(4), at(4), 4.0, 4)]
    store.ingest("user_stats", rows(data[:3]))
    store.ingest("user_stats", rows(data[3:]))
    oracle_rows = [{"key": (k,), "ts": t, "created": c, "pos": i, "values": {"amount": a, "count": n}}
                   for i, (k, t, c, a, n) in enumerate(data)]
    edf = entities([(1, at(1)), (1, at(2)), (2, at(1)), (2, at(3)), (3, at(1)), (1, at(3.5)), (2, at(5))])
    return oracle_rows, edf


@pytest.mark.parametrize("filter_created", [False, True])
def test_spark_to_parquet_matches_the_brute_force_oracle(workspace, spark, tmp_path, filter_created):
    store = FeatureStore(workspace, offline_engine=spark)
    oracle_rows, edf = _oracle_world(store)
    want, late = brute_force_join([((k,), t) for k, t in zip(edf["user_id"], edf["event_timestamp"])],
                                  oracle_rows, timedelta(hours=2), ["amount", "count"], filter_created)
    job = store.historical_retrieval(edf, ["user_stats:amount", "user_stats:count"],
                                     filter_by_created_timestamp=filter_created)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = pd.read_parquet(job.to_parquet(tmp_path / "out"))
    assert [None if pd.isna(v) else v for v in got["amount"]] == [w["amount"] for w in want]
    assert [None if pd.isna(v) else v for v in got["count"]] == [w["count"] for w in want]
    warned = [w for w in caught if issubclass(w.category, LateDataWarning)]
    assert bool(warned) == any(late) and (not warned or f"{sum(late)} of 7 entity rows" in str(warned[0].message))
    store.close()


def test_duckdb_to_parquet_reads_back_and_to_spark_is_refused(workspace, tmp_path):
    store = FeatureStore(workspace)
    _, edf = _oracle_world(store)
    edf["note"] = pd.Series(list("abcdefg"), dtype="string")
    edf.index = np.arange(7) * 3  # dropped, as by to_df
    job = store.historical_retrieval(edf, ["user_stats:amount", "user_stats:count"])
    expected = _quiet(job.to_df)
    assert expected["count"].dtype == "Int64"
    out = _quiet(lambda: job.to_parquet(tmp_path / "out"))
    assert [p.name for p in out.iterdir()] == ["part-00000.parquet"]
    assert_frame_equal(pd.read_parquet(out), expected, check_exact=True)
    with pytest.raises(ValidationError, match="already exists") as err:
        job.to_parquet(out)
    assert "choose a new folder" in str(err.value)
    with pytest.raises(ValidationError, match="offline engine is DuckDB") as err:
        job.to_spark()
    assert "offline_engine='spark'" in str(err.value)
    store.close()


def test_a_spark_entity_frame_is_checked_like_pandas_before_any_job(workspace, spark):
    from pyspark.sql import functions as F

    store = FeatureStore(workspace, offline_engine=spark)
    store.apply([view()])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    duck = FeatureStore(workspace)
    edf = entities([(1, at(1)), (2, at(2))])
    sdf = spark.createDataFrame(edf)
    refs = ["user_stats:amount"]
    cases = [
        (edf.drop(columns="event_timestamp"), sdf.drop("event_timestamp"), SchemaError),
        (edf.drop(columns="user_id"), sdf.drop("user_id"), SchemaError),
        (edf.assign(user_id=edf["user_id"].astype("string")), sdf.withColumn("user_id", F.col("user_id").cast("string")),
         SchemaError),
        (edf.assign(event_timestamp=edf["event_timestamp"].dt.tz_localize(None)),
         sdf.withColumn("event_timestamp", F.col("event_timestamp").cast("timestamp_ntz")), TimezoneError),
        (edf.assign(amount=1.0), sdf.withColumn("amount", F.lit(1.0)), ValidationError),
    ]
    tracker = spark.sparkContext.statusTracker()
    spark.sparkContext.setJobGroup("entity-checks", "validation must not run jobs")
    try:
        for pandas_frame, spark_frame, kind in cases:
            with pytest.raises(kind) as from_pandas:
                duck.get_historical_features(pandas_frame, refs)
            with pytest.raises(kind) as from_spark:
                store.get_historical_features(spark_frame, refs)
            assert type(from_spark.value) is type(from_pandas.value)
            head = str(from_pandas.value).split(" has dtype")[0].split(" holds")[0]
            assert str(from_spark.value).startswith(head), (str(from_spark.value), head)
        assert list(tracker.getJobIdsForGroup("entity-checks")) == []
    finally:
        spark.sparkContext.setJobGroup("", "")
    with pytest.raises(SchemaError, match="has null values"):
        store.get_historical_features(sdf.withColumn("event_timestamp", F.lit(None).cast("timestamp")), refs)
    with pytest.raises(ValidationError, match="offline engine is DuckDB"):
        duck.get_historical_features(sdf, refs)
    store.close()
    duck.close()


def test_a_file_removed_after_the_manifest_listed_it_is_named(workspace, spark, tmp_path):
    store = FeatureStore(workspace, offline_engine=spark)
    store.apply([view()])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    store.ingest("user_stats", rows([(2, at(0), at(0), 2.0, 2)]))
    gone = store.offline_files("user_stats")[1]
    gone.unlink()
    edf = entities([(1, at(1)), (2, at(1))])
    for run in (lambda: store.get_historical_features(edf, ["user_stats:amount"]),
                lambda: store.historical_retrieval(edf, ["user_stats:amount"]).to_parquet(tmp_path / "out")):
        with pytest.raises(OfflineEngineError, match="cannot be read: it is missing") as err:
            run()
        assert err.value.details == {"reason": "path-unreadable", "path": str(gone)}
        assert "forget_offline_files" in str(err.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.staging-*"))
    # a path only Spark fails to read (here: one the driver never checked) is translated too
    with pytest.raises(OfflineEngineError, match="Spark could not read") as err:
        with spark_failures("read", [gone]):
            spark.read.parquet(str(gone)).count()
    assert err.value.details == {"reason": "path-unreadable", "path": str(gone)}
    store.close()

