"""Real evidence packs for five learners: all six chapters built with papermill, each learner once.

``learner_packs`` (session scope) builds every chapter for ``LEARNERS``: five ids drawn from
``random.Random(2026)``, random-looking but the same on every run. A build takes one to two
minutes per learner on two cores; the packs are shared by ``test_learner_worlds`` and
``test_world_check`` (imported by ``conftest``). Set ``MLOPS_KIT_LEARNER_PACKS=DIR`` to keep
the packs in ``DIR`` and reuse them on the next run (a pack is rebuilt unless its manifest
verifies and names its learner; delete ``DIR`` after changing a chapter).
"""

from __future__ import annotations

import json
import os
import random
import string
import time
from pathlib import Path

import pytest

ALPHABET = string.ascii_lowercase + string.digits
CACHE_ENV = "MLOPS_KIT_LEARNER_PACKS"


def learner_ids(n: int = 5, *, seed: int = 2026) -> list[str]:
    """``n`` distinct learner ids: a letter, then seven letters or digits, from a seeded RNG."""
    rng, ids = random.Random(seed), []
    while len(ids) < n:
        learner = rng.choice(string.ascii_lowercase) + "".join(rng.choices(ALPHABET, k=7))
        if learner not in ids:
            ids.append(learner)
    return ids


LEARNERS = learner_ids()
_BUILT: dict[str, Path] = {}   # one build per session even when two modules request the fixture


def _reusable(pack: Path, learner: str) -> bool:
    from mlops_kit.evidence import verify_pack

    try:
        manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest.get("parameters", {}).get("learner") == learner and len(manifest.get("chapters", {})) == 6
            and verify_pack(pack) == [])


def build_learner_pack(root: Path, learner: str) -> tuple[Path, float]:
    """Build (or reuse) ``root/<learner>``; returns the pack and the build's wall time in seconds."""
    from mlops_kit.evidence import build_evidence

    pack = root / learner
    if _reusable(pack, learner):
        return pack, 0.0
    started = time.perf_counter()
    build_evidence(pack, learner=learner, quiz_answers="key", jobs=2, progress=lambda line: None)
    return pack, round(time.perf_counter() - started, 1)


@pytest.fixture(scope="session")
def learner_packs(tmp_path_factory) -> dict[str, Path]:
    """Learner id -> its six-chapter pack (built with ``--learner`` and the answer key)."""
    if _BUILT:
        return dict(_BUILT)
    cache = os.environ.get(CACHE_ENV)
    root = Path(cache) if cache else tmp_path_factory.mktemp("learner-packs")
    root.mkdir(parents=True, exist_ok=True)
    print(f"\nlearner worlds: {LEARNERS}")
    packs = {}
    for learner in LEARNERS:
        packs[learner], seconds = build_learner_pack(root, learner)
        print(f"  {learner}: built in {seconds} s" if seconds else f"  {learner}: reused from {root}")
    _BUILT.update(packs)
    return dict(packs)
