"""The chapter 5 lab shared by its test modules: one world and one registry with two canaries."""

from __future__ import annotations

import pytest

from mlops_kit.labs import ch05 as L
from mlops_kit.workspace import Workspace

#: exercise 5.1's settings (the kit has no defaults for them)
SETTINGS = dict(steps=(15, 25, 50, 100), segment_threshold=0.25, window_min=30)


@pytest.fixture(scope="module")
def world():
    return L.make_world(seed=3)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, world):
    ws = Workspace(tmp_path_factory.mktemp("ch05"))
    registry, clock = L.lab_registry(ws)
    models, stable_v, cand_v = L.release_pair(registry, clock, "fraud", world)
    bad = L.run_canary(world, models, seed=3, **SETTINGS)
    good = L.run_canary(world, L.release_pair(registry, clock, "fraud_good", world)[0], bad=False, seed=3, **SETTINGS)
    return {"ws": ws, "registry": registry, "clock": clock, "bad": bad, "good": good, "stable_v": stable_v,
            "cand_v": cand_v}
