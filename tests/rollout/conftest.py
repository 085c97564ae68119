"""Fixtures of the rollout tests (builders live in ``rollout_helpers``)."""

from __future__ import annotations

import pytest
from rollout_helpers import build_world


@pytest.fixture(scope="session")
def world():
    """The seeded request world shared by the rollout tests (built once)."""
    return build_world()
