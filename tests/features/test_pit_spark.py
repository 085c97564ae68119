"""Spark as the offline engine: the oracle property test, DuckDB-vs-Spark differential worlds,
engine settings and the refusals (pyspark missing, Java missing or too old, master unreachable).

The hand-computed rules of ``test_pit.py`` run on both engines through its ``store`` fixture
(parametrised by ``offline_engine``); this file adds what only Spark needs.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from mlops_kit.errors import LateDataWarning, OfflineEngineError, StoreConfigError
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field
from mlops_kit.features.config import parse_offline_engine
from mlops_kit.features.spark_engine import check_java, java_major_version, spark_session

from .conftest import free_port
from .spark_fixtures import SPARK_HINT, missing_spark_outcome, require_spark
from .test_pit_property import _check, entity_rows, view_specs

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
SPARK_EXAMPLES = 20


# -- the brute-force oracle, on Spark ---------------------------------------------------------------
@pytest.fixture(scope="module")
def spark_store(spark):
    with tempfile.TemporaryDirectory() as root:
        store = FeatureStore(root, offline_engine=spark)
        yield store
        store.close()


_SPARK_SETTINGS = settings(max_examples=SPARK_EXAMPLES, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@_SPARK_SETTINGS
@given(specs=st.lists(view_specs, min_size=1, max_size=2), entities=entity_rows, filter_created=st.booleans())
def test_spark_matches_brute_force(spark_store, specs, entities, filter_created):
    _check(spark_store, specs, entities, filter_created, composite=False)


@settings(_SPARK_SETTINGS, max_examples=SPARK_EXAMPLES // 2)
@given(specs=st.lists(view_specs, min_size=1, max_size=1), entities=entity_rows, filter_created=st.booleans())
def test_spark_matches_brute_force_composite_keys(spark_store, specs, entities, filter_created):
    _check(spark_store, specs, entities, filter_created, composite=True)


# -- differential: DuckDB and Spark give identical frames on random worlds --------------------------
def _time(rng: np.random.Generator, minutes: int) -> list[datetime]:
    grid = rng.integers(0, 60, minutes)
    jitter = rng.choice([-1, 0, 0, 0, 1], minutes)
    return [T0 + timedelta(minutes=int(m), microseconds=int(j)) for m, j in zip(grid, jitter)]


def _keys(rng: np.random.Generator, n: int, kind: str, top: int) -> dict[str, pd.Series]:
    ids = rng.integers(0, top, n)
    if kind == "int":
        return {"k": pd.Series(ids, dtype="int64")}
    if kind == "string":
        return {"k": pd.Series([f"u{i}" for i in ids], dtype="string")}
    return {"k": pd.Series(ids, dtype="int64"), "m": pd.Series([f"m{i % 2}" for i in ids], dtype="string")}


def _nulls(rng: np.random.Generator, values: list, rate: float = 0.2) -> list:
    return [None if rng.random() < rate else v for v in values]


def _world(rng: np.random.Generator, store: FeatureStore, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Two views (created column + five dtypes; no created column), two batches, random entities."""
    kind = ["int", "string", "composite"][seed % 3]
    keys = ["k", "m"] if kind == "composite" else ["k"]
    entity = Entity(name=f"ent{seed}", join_keys=keys)
    ttls = [None, timedelta(0), timedelta(minutes=10), timedelta(minutes=15) + US, timedelta(minutes=30)]
    ttl_a, ttl_b = (ttls[int(i)] for i in rng.integers(0, len(ttls), 2))
    a = FeatureView(name=f"a{seed}", entities=[entity], ttl=ttl_a, created_timestamp_column="created",
                    schema=[Field(name="x", dtype="float64"), Field(name="n", dtype="int64"),
                            Field(name="s", dtype="string"), Field(name="b", dtype="bool"),
                            Field(name="t", dtype="timestamp")])
    b = FeatureView(name=f"b{seed}", entities=[entity], ttl=ttl_b, timestamp_field="ts_b",
                    schema=[Field(name="y", dtype="float64")])
    store.apply([a, b])
    first = None
    for batch in range(2):
        n = int(rng.integers(10, 40))
        frame = pd.DataFrame(_keys(rng, n, kind, 5))
        ts = _time(rng, n)
        frame["event_timestamp"] = pd.Series(ts, dtype="datetime64[us, UTC]")
        if first is not None:  # late corrections: half the rows repeat earlier (keys, ts), created later
            half = min(n // 2, len(first))
            for col in keys + ["event_timestamp"]:
                frame.loc[: half - 1, col] = first[col].iloc[:half].to_numpy()
            ts = frame["event_timestamp"].tolist()
        offsets = rng.integers(-5, 40, n)
        frame["created"] = pd.Series([t + timedelta(minutes=int(o)) for t, o in zip(ts, offsets)],
                                     dtype="datetime64[us, UTC]")
        frame["x"] = pd.Series(_nulls(rng, rng.normal(size=n).round(3).tolist()), dtype="float64")
        frame["n"] = pd.Series(_nulls(rng, rng.integers(-9, 9, n).tolist()), dtype="Int64")
        frame["s"] = pd.Series(_nulls(rng, [f"v{i}" for i in rng.integers(0, 4, n)]), dtype="string")
        frame["b"] = pd.Series(_nulls(rng, (rng.random(n) < 0.5).tolist()), dtype="boolean")
        frame["t"] = pd.Series(_nulls(rng, _time(rng, n)), dtype="datetime64[us, UTC]")
        store.ingest(a.name, frame)
        first = frame
        other = pd.DataFrame(_keys(rng, n, kind, 5))
        other["ts_b"] = pd.Series(_time(rng, n), dtype="datetime64[us, UTC]")
        other["y"] = pd.Series(_nulls(rng, rng.normal(size=n).round(3).tolist()), dtype="float64")
        store.ingest(b.name, other)
    m = int(rng.integers(1, 50))
    edf = pd.DataFrame(_keys(rng, m, kind, 7))  # keys 5, 6 have no history
    times = _time(rng, m)
    edge = ttl_a if ttl_a else timedelta(minutes=15)
    for i in range(0, m, 3):  # TTL edges: exactly ttl after a grid point, and one microsecond past it
        times[i] = times[i].replace(microsecond=0) + edge + US * int(rng.integers(-1, 2))
    edf["event_timestamp"] = pd.Series(times, dtype="datetime64[us, UTC]")
    edf["label"] = np.arange(m)
    edf = pd.concat([edf, edf.sample(n=min(m, 5), random_state=seed)]).reset_index(drop=True)  # duplicates
    edf.index = np.arange(len(edf))[::-1]  # a non-default index is dropped by both engines
    refs = [f"{a.name}:{f}" for f in ("x", "n", "s", "b", "t")] + [f"{b.name}:y"]
    return edf, refs


def _join(store: FeatureStore, edf: pd.DataFrame, refs: list[str], filter_created: bool):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = store.get_historical_features(edf, refs, full_feature_names=True,
                                            filter_by_created_timestamp=filter_created)
    return out, [str(w.message) for w in caught if issubclass(w.category, LateDataWarning)]


@pytest.mark.parametrize("seed", range(20))
def test_duckdb_and_spark_agree_on_random_worlds(workspace, spark, seed):
    rng = np.random.default_rng(seed)
    duck = FeatureStore(workspace)
    edf, refs = _world(rng, duck, seed)
    on_spark = FeatureStore(workspace, offline_engine=spark)
    for filter_created in (False, True):
        expected, duck_warnings = _join(duck, edf, refs, filter_created)
        got, spark_warnings = _join(on_spark, edf, refs, filter_created)
        assert_frame_equal(got, expected, check_exact=True)
        assert spark_warnings == duck_warnings
    duck.close()
    on_spark.close()


# -- settings -------------------------------------------------------------------------------------
def test_spark_settings_are_parsed_and_described(workspace, spark):
    assert parse_offline_engine("spark").describe() == {"kind": "spark", "master": "local[2]"}
    remote = parse_offline_engine(" SPARK://10.0.0.5 ")
    assert (remote.kind, remote.host, remote.port, remote.url) == ("spark", "10.0.0.5", 7077, "spark://10.0.0.5:7077")
    assert parse_offline_engine(spark).session is spark
    (workspace.root / "feature_store.toml").write_text('offline_engine = "spark"\n', encoding="utf-8")
    store = FeatureStore(workspace)
    assert store.describe()["offline_engine"] == {"kind": "spark", "master": "local[2]"}
    assert "offline=spark" in repr(store)
    assert FeatureStore(workspace, offline_engine="duckdb").describe()["offline_engine"] == {"kind": "duckdb"}
    assert spark_session(store.config.offline) is spark  # one session per process, reused
    store.close()


@pytest.mark.parametrize("value, needle", [
    ("spark://user:pw@h:7077", "has credentials"), ("spark://h:7077/path", "has a path"),
    ("spark://h:port", "not a number"), ("spark://:7077", "has no host"), ("sparkle", "not a supported"),
])
def test_bad_spark_settings_are_refused(value, needle):
    with pytest.raises(StoreConfigError, match=needle) as err:
        parse_offline_engine(value)
    assert '"spark://host:port"' in str(err.value) and "pw" not in str(err.value)


# -- refusals -------------------------------------------------------------------------------------
def _fake_java(tmp_path, version_line: str) -> str:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n", encoding="utf-8")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return str(home)


def test_java_versions_are_read_and_old_or_missing_java_is_refused(tmp_path, monkeypatch):
    assert java_major_version('openjdk version "17.0.15" 2025-04-15') == 17
    assert java_major_version('java version "1.8.0_392"') == 8 and java_major_version("nothing") is None
    monkeypatch.setenv("JAVA_HOME", _fake_java(tmp_path, 'openjdk version "11.0.2" 2019-01-15'))
    with pytest.raises(OfflineEngineError, match="needs Java 17\\+, but .* is Java 11") as err:
        check_java()
    assert "apt-get install openjdk-17-jre-headless" in str(err.value) and err.value.details["found"] == 11
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(OfflineEngineError, match="no java executable") as err:
        spark_session(f"spark://127.0.0.1:{free_port()}")  # refused before any JVM is contacted
    assert err.value.details["reason"] == "java-missing" and "openjdk-17-jre-headless" in str(err.value)


def test_missing_pyspark_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(OfflineEngineError, match="pyspark is not installed") as err:
        spark_session("spark://127.0.0.1:7077")
    assert 'pip install -e ".[spark]"' in str(err.value) and err.value.details["reason"] == "pyspark-missing"


def test_unreachable_master_is_refused_quickly(spark, workspace):
    port = free_port()  # nothing listens there
    store = FeatureStore(workspace, offline_engine=f"spark://127.0.0.1:{port}")
    from .helpers import at, entities, rows, view

    store.apply([view()])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    with pytest.raises(OfflineEngineError, match="master is unreachable") as err:
        store.get_historical_features(entities([(1, at(1))]), ["user_stats:amount"])
    assert err.value.details == {"reason": "master-unreachable", "master": f"spark://127.0.0.1:{port}"}
    store.close()


def test_a_second_master_in_one_process_is_refused(spark):
    listener = __import__("socket").create_server(("127.0.0.1", 0))  # reachable, but a new master
    try:
        with pytest.raises(OfflineEngineError, match="one per process") as err:
            spark_session(f"spark://127.0.0.1:{listener.getsockname()[1]}")
        assert err.value.details["reason"] == "session-conflict"
    finally:
        listener.close()


def test_missing_spark_fails_under_ci_and_skips_elsewhere():
    assert missing_spark_outcome({"CI": "true"}) == "fail" and missing_spark_outcome({}) == "skip"

    def broken() -> None:
        raise OfflineEngineError("no java", reason="java-missing")

    with pytest.raises(pytest.fail.Exception, match="must run, not skip"):
        require_spark({"CI": "true"}, broken)
    with pytest.raises(pytest.skip.Exception, match="openjdk-17"):
        require_spark({"CI": "false"}, broken)
    assert "pip install -e" in SPARK_HINT
    require_spark(dict(os.environ))  # on this machine Spark is available (or CI fails right here)
