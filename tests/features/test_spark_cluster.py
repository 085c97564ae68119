"""A real standalone Spark cluster on loopback: a master and two workers from the pip install.

The driver (a separate process: one Spark master per process) attaches with
``offline_engine = "spark://127.0.0.1:PORT"``, checks a point-in-time join against DuckDB, and
repeats it while this test kills one worker: the answer must stay identical. Then it
materializes a copy of the workspace through the cluster (a window, then incrementally) and
checks reports, online rows and the watermark against a DuckDB materialization.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import free_port
from .spark_fixtures import require_spark

pytestmark = pytest.mark.slow

DRIVER = textwrap.dedent('''
    import sys, tempfile, warnings
    from datetime import datetime, timedelta, timezone
    import numpy as np, pandas as pd
    from pandas.testing import assert_frame_equal
    from mlops_kit.features import Entity, FeatureStore, FeatureView, Field

    warnings.simplefilter("ignore")
    url = sys.argv[1]
    rng = np.random.default_rng(7)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    root = tempfile.mkdtemp()
    duck = FeatureStore(root)
    user = Entity(name="user", join_keys=["user_id"])
    duck.apply([FeatureView(name="stats", entities=[user], ttl=timedelta(hours=6),
                            created_timestamp_column="created",
                            schema=[Field(name="x", dtype="float64"), Field(name="n", dtype="int64")])])
    n = 200_000
    ts = pd.Series(t0 + pd.to_timedelta(rng.integers(0, 72 * 60, n), unit="min"), dtype="datetime64[us, UTC]")
    duck.ingest("stats", pd.DataFrame({
        "user_id": rng.integers(0, 2000, n), "event_timestamp": ts,
        "created": ts + pd.to_timedelta(rng.integers(-5, 120, n), unit="min"),
        "x": rng.normal(size=n), "n": rng.integers(0, 100, n)}))
    m = 50_000
    edf = pd.DataFrame({"user_id": rng.integers(0, 2200, m), "event_timestamp": pd.Series(
        t0 + pd.to_timedelta(rng.integers(0, 72 * 60, m), unit="min"), dtype="datetime64[us, UTC]")})
    spark = FeatureStore(root, offline_engine=url)
    for run in range(4):
        for filt in (False, True):
            expected = duck.get_historical_features(edf, ["stats:x", "stats:n"], filter_by_created_timestamp=filt)
            print(f"RUN {run} {filt}", flush=True)
            got = spark.get_historical_features(edf, ["stats:x", "stats:n"], filter_by_created_timestamp=filt)
            assert_frame_equal(got, expected, check_exact=True)
    print("IDENTICAL", spark.describe()["offline_engine"], flush=True)
    import shutil
    copy = tempfile.mkdtemp()
    shutil.rmtree(copy)
    shutil.copytree(root, copy)  # same offline data, nothing materialized: one per engine
    cluster = FeatureStore(copy, offline_engine=url)
    steps = (lambda s: s.materialize(t0 + timedelta(hours=24), t0 + timedelta(hours=48)),
             lambda s: s.materialize_incremental(t0 + timedelta(hours=80)))
    for step in steps:
        want, got = step(duck), step(cluster)
        assert got.to_dict() == want.to_dict(), (got.to_dict(), want.to_dict())
    view, keys = duck.get_feature_view("stats"), [(k,) for k in range(2200)]
    assert cluster.online.read_rows(view, ["x", "n"], keys) == duck.online.read_rows(view, ["x", "n"], keys)
    assert cluster.online.count(view) == duck.online.count(view) == 2000
    print("MATERIALIZED", got.rows_scanned, cluster.watermark("stats").isoformat(), flush=True)
''')


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_for(log: Path, needle: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not seen in {log}:\n{log.read_text(errors='replace')[-3000:]}")


def test_standalone_cluster_gives_duckdb_answers_even_when_a_worker_dies(tmp_path):
    require_spark(dict(os.environ))
    import pyspark

    spark_home = os.path.dirname(pyspark.__file__)
    env = {**os.environ, "SPARK_HOME": spark_home, "PYSPARK_PYTHON": sys.executable,
           "SPARK_LOG_DIR": str(tmp_path / "logs"), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = os.path.join(spark_home, "bin", "spark-class")
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        master_log = tmp_path / "master.log"
        procs.append(_start([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                             "--port", str(port), "--webui-port", str(free_port())], master_log, env))
        _wait_for(master_log, "I have been elected leader", procs[0])
        workers = []
        for i in range(2):
            work = tmp_path / f"worker{i}"
            work.mkdir()
            log = tmp_path / f"worker{i}.log"
            proc = _start([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                           "--cores", "1", "--memory", "2g", "--work-dir", str(work),
                           "--webui-port", str(free_port()), url], log, env)
            procs.append(proc)
            workers.append((proc, log))
        for proc, log in workers:
            _wait_for(log, "Successfully registered with master", proc)
        driver_log = tmp_path / "driver.log"
        driver = _start([sys.executable, "-c", DRIVER, url], driver_log, env)
        procs.append(driver)
        _wait_for(driver_log, "RUN 1 True", driver, seconds=300)
        workers[0][0].kill()  # a worker dies while the joins run
        workers[0][0].wait(timeout=30)
        driver.wait(timeout=300)
        text = driver_log.read_text(errors="replace")
        assert driver.returncode == 0, text[-4000:]
        assert f"IDENTICAL {{'kind': 'spark', 'url': '{url}', 'master': '{url}'}}" in text
        assert "MATERIALIZED" in text and "2024-01-04T08:00:00+00:00" in text  # watermark t0 + 80 h
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
