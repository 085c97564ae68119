"""Fixtures for the registry tests."""

from __future__ import annotations

import pytest
from registry_helpers import T0

from mlops_kit._time import FixedClock
from mlops_kit.registry import ModelRegistry


@pytest.fixture
def clock():
    return FixedClock(T0)


@pytest.fixture
def registry(workspace, clock):
    reg = ModelRegistry(workspace, clock=clock)
    yield reg
    reg.close()

from mlflow_fixtures import down_uri, mlflow_server, mlflow_uri, unique_name  # noqa: E402,F401 - MLflow fixtures
