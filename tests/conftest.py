"""Shared fixtures and the hypothesis profiles (``HYPOTHESIS_PROFILE=nightly`` for long runs)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "nightly", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def workspace(tmp_path):
    """A fresh, empty workspace in a temporary folder."""
    from mlops_kit import Workspace

    return Workspace(tmp_path / "ws")

# Fixture notebooks of the evidence tests fail on purpose; they are run by those tests only.
collect_ignore_glob = ["evidence/fixtures/*"]
