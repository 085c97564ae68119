"""Spark fixtures: ONE local[2] SparkSession per test session, and engine parametrisation.

``offline_engine`` is parametrised over ``"duckdb"`` and ``"spark"`` (the session object); the
Spark cases skip without pyspark or Java 17+, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from mlops_kit.errors import OfflineEngineError

SPARK_HINT = ('Spark tests need pyspark and Java 17+: pip install -e ".[spark]" and '
              "apt-get install openjdk-17-jre-headless (or run scripts/test.sh as root)")


def missing_spark_outcome(env: dict[str, str]) -> str:
    """What missing pyspark/Java does to the Spark tests: 'fail' under CI, else 'skip'."""
    return "fail" if env.get("CI", "").lower() == "true" else "skip"


def probe_spark() -> None:
    """Raise ``OfflineEngineError`` unless pyspark imports and Java 17+ answers."""
    from mlops_kit.features.spark_engine import _pyspark, check_java

    _pyspark()
    check_java()


def require_spark(env: dict[str, str], probe: Callable[[], None] = probe_spark) -> None:
    """Skip (or, under CI, fail) the calling test when Spark cannot run here."""
    try:
        probe()
    except OfflineEngineError as exc:
        if missing_spark_outcome(env) == "fail":
            pytest.fail(f"{SPARK_HINT} ({exc}); under CI=true the Spark tests must run, not skip.")
        pytest.skip(f"{SPARK_HINT} ({exc})")


@pytest.fixture(scope="session")
def spark():
    """The test session's SparkSession (local[2], the kit's own settings); stopped at the end."""
    require_spark(dict(os.environ))
    from mlops_kit.features.spark_engine import spark_session, stop_spark_sessions

    session = spark_session("spark")
    yield session
    stop_spark_sessions()


@pytest.fixture(params=["duckdb", "spark"])
def offline_engine(request):
    """``"duckdb"`` or the shared SparkSession: pass it as ``FeatureStore(..., offline_engine=)``."""
    if request.param == "duckdb":
        return "duckdb"
    return request.getfixturevalue("spark")
