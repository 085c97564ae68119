"""Every chapter passes every check for any learner: six real chapters built for five learner ids.

The packs come from the session fixture ``learner_packs`` (``learner_packs.py``): five ids
from a seeded RNG, each built once with ``build_evidence(learner=id, quiz_answers="key")``.
The seeds are re-derived here from the documented formula, not from the kit.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from mlops_kit.evidence import grade_pack

from .learner_packs import LEARNERS, learner_ids, learner_packs  # noqa: F401  (the session fixture)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("learner-worlds")]   # one worker builds the packs


def _seed(learner: str) -> int:
    """The documented derivation: the first 31 bits of sha256('mlops-kit-practicum:<id>')."""
    digest = hashlib.sha256(f"mlops-kit-practicum:{learner}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def test_the_learner_ids_are_reproducible_and_distinct():
    assert learner_ids() == LEARNERS and len(set(LEARNERS)) == 5
    assert len({_seed(learner) for learner in LEARNERS}) == 5


@pytest.mark.parametrize("learner", LEARNERS)
def test_every_chapter_passes_every_check_at_full_marks(learner_packs, learner):  # noqa: F811
    pack = learner_packs[learner]
    manifest = json.loads((pack / "manifest.json").read_text())
    failed = {n: c["error"] for n, c in manifest["chapters"].items() if c["status"] != "ok"}
    assert sorted(manifest["chapters"]) == ["1", "2", "3", "4", "5", "6"]
    assert not failed, f"{learner} (seed {_seed(learner)}): chapters failed: {failed}"
    for number in range(1, 7):
        checks = json.loads((pack / f"ch0{number}" / "checks.json").read_text())["checks"]
        broken = [c["id"] for c in checks if not c["passed"]]
        assert checks and not broken, f"{learner} (seed {_seed(learner)}), chapter {number}: {broken}"
    report = grade_pack(pack, write=False)
    short = {r["id"]: (r["awarded"], r["points"]) for r in report.results if r["awarded"] != r["points"]}
    assert report.integrity_ok and not short, f"{learner} (seed {_seed(learner)}): criteria short: {short}"
    assert report.points == report.max_points > 0


@pytest.mark.parametrize("learner", LEARNERS)
def test_the_pack_records_the_learners_world(learner_packs, learner):  # noqa: F811
    pack = learner_packs[learner]
    params = json.loads((pack / "manifest.json").read_text())["parameters"]
    assert (params["learner"], params["seed"], params["seed_source"]) == (learner, _seed(learner), "learner")
    for number in range(1, 7):
        run = json.loads((pack / f"ch0{number}" / "run.json").read_text())
        assert (run["learner"], run["seed"], run["seed_source"]) == (learner, _seed(learner), "learner")
        assert run["kit_version"]


def test_the_five_worlds_really_differ(learner_packs):  # noqa: F811
    for artifact in ("ch01/asof_join_sample.csv", "ch01/scoring_requests.csv", "ch02/profile_history.csv",
                     "ch05/canary_good_routing.csv"):
        digests = {hashlib.sha256((learner_packs[x] / artifact).read_bytes()).hexdigest() for x in LEARNERS}
        assert len(digests) == len(LEARNERS), artifact
    first = {x: (learner_packs[x] / "ch01" / "asof_join_sample.csv").read_text().splitlines()[1:] for x in LEARNERS}
    for a in LEARNERS:          # not shuffled copies either: two worlds share no sampled transaction time
        for b in LEARNERS:
            if a < b:
                assert not set(first[a]) & set(first[b]), (a, b)
