"""``check_world``: a pack is checked against the world regenerated from the learner's seed.

The real cases run on the five six-chapter learner packs of ``learner_packs`` (built once per
session); the record cases (a seed override, no learner) on one-chapter packs recorded
in-process from the real chapter-1 world, so both halves of the check are exercised.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlops_kit.datasets import Scenario, generate_world
from mlops_kit.errors import EvidenceError, ValidationError
from mlops_kit.evidence import check_world, grade_class, grade_pack, start_chapter, verify_pack, write_manifest
from mlops_kit.evidence import world_check as W
from mlops_kit.evidence.learners import derive_seed
from mlops_kit.labs import ch02, ch03, ch05, ch06

from .learner_packs import LEARNERS, learner_packs  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.xdist_group("learner-worlds")   # the worker of test_learner_worlds: packs built once


def _copy(pack: Path, target: Path) -> Path:
    shutil.copytree(pack, target, ignore=shutil.ignore_patterns("work"))
    return target


def _claim(pack: Path, learner: str) -> None:
    """Rewrite every record to say ``learner`` built the pack, and re-hash the manifest."""
    seed = derive_seed(learner)
    for run in pack.glob("ch0*/run.json"):
        record = json.loads(run.read_text())
        run.write_text(json.dumps({**record, "learner": learner, "seed": seed, "seed_source": "learner"}))
    manifest = json.loads((pack / "manifest.json").read_text())
    write_manifest(pack, chapters=manifest["chapters"],
                   parameters={**manifest["parameters"], "learner": learner, "seed": seed},
                   built_at=manifest["built_at"])


def _chapter1_pack(root: Path, *, seed: int | None, learner: str | None, world_seed: int) -> Path:
    """Chapter 1's records as ``start_chapter`` writes them, with transaction times of a real world."""
    rec = start_chapter(1, evidence_dir=root, seed=seed, scale=1, learner=learner)
    world = generate_world(Scenario.default().with_scale(1), seed=world_seed)
    rec.save_table("asof_join_sample", world.transactions[["event_timestamp"]].sample(300, random_state=1))
    write_manifest(root, chapters={"1": {"status": "ok"}}, parameters={"seed": rec.seed, "learner": learner})
    return root


@pytest.mark.slow
@pytest.mark.parametrize("learner", LEARNERS)
def test_an_honest_pack_matches_its_learners_world(learner_packs, learner):  # noqa: F811
    verdict = check_world(learner_packs[learner], learner)
    assert verdict.status == "ok" and verdict.ok and verdict.problems == []
    assert verdict.seed == derive_seed(learner)
    assert {a["artifact"].split("/")[0] for a in verdict.artifacts} == {"ch01", "ch02", "ch03", "ch05", "ch06"}
    assert all(a["ok"] and a["rows"] > 0 and a["unmatched"] == 0 for a in verdict.artifacts)


@pytest.mark.slow
def test_a_pack_renamed_to_another_id_is_a_mismatch(learner_packs):  # noqa: F811
    bob, alice = LEARNERS[0], LEARNERS[1]
    verdict = check_world(learner_packs[bob], alice)
    assert verdict.status == "mismatch" and not verdict.ok
    assert verdict.problems[0] == f"the pack was built for {bob!r}"
    assert verdict.problems[1] == f"chapters 1, 2, 3, 4, 5, 6: built for {bob!r}, not {alice!r}"
    assert all(not a["ok"] and a["unmatched"] > 0 for a in verdict.artifacts)


@pytest.mark.slow
def test_rewritten_records_are_still_caught_by_the_raw_rows(learner_packs, tmp_path):  # noqa: F811
    bob, alice = LEARNERS[0], LEARNERS[1]
    forged = _copy(learner_packs[bob], tmp_path / alice)
    _claim(forged, alice)
    assert verify_pack(forged) == []                                  # intact: integrity cannot see it
    verdict = check_world(forged, alice)
    assert verdict.status == "mismatch"
    assert all(p.startswith("ch0") and f"not rows of the world of {alice!r}" in p for p in verdict.problems)
    assert len(verdict.problems) == len(W.PROBES)                     # every probe table of bob's world
    assert check_world(forged, bob).status == "mismatch"              # and the records now say alice


@pytest.mark.slow
def test_grade_class_flags_renamed_and_forged_packs_and_only_those(learner_packs, tmp_path):  # noqa: F811
    subs = tmp_path / "subs"
    subs.mkdir()
    honest = LEARNERS[:3]
    for learner in honest:
        _copy(learner_packs[learner], subs / learner)
    _copy(learner_packs[LEARNERS[3]], subs / "renamed")               # handed in under another id
    _claim(_copy(learner_packs[LEARNERS[4]], subs / "forged"), "forged")   # records rewritten too
    result = grade_class(subs, tmp_path / "book", jobs=1)
    rows = {r["id"]: r for r in result.rows}
    for learner in honest:
        assert rows[learner]["world"]["status"] == "ok" and rows[learner].get("flags", []) == []
        assert rows[learner]["points"] == grade_pack(learner_packs[learner], write=False).points   # same grader
    flagged = {f["learner"]: f for f in result.flags["world_mismatch"]}
    assert sorted(flagged) == ["forged", "renamed"]
    assert flagged["renamed"]["pack_learner"] == LEARNERS[3]
    assert flagged["renamed"]["detail"].startswith(f"the pack was built for {LEARNERS[3]!r}")
    assert "not rows of the world of 'forged'" in flagged["forged"]["detail"]
    assert "tampered" not in rows["forged"].get("flags", [])          # re-hashed: only the world shows it


def test_a_seed_override_is_flagged_with_its_own_detail(tmp_path):
    ada = "ada-lovelace"
    pack = _chapter1_pack(tmp_path / "p", seed=123, learner=ada, world_seed=123)
    verdict = check_world(pack, ada)
    assert verdict.status == "mismatch"
    assert verdict.problems[0] == f"chapter 1: ran on an overridden seed 123 (--seed), not the seed of {ada!r} ({derive_seed(ada)})"
    assert "ch01/asof_join_sample.csv: 300 of 300 saved rows" in verdict.problems[1]


def test_a_pack_built_without_a_learner_is_flagged(tmp_path):
    pack = _chapter1_pack(tmp_path / "p", seed=None, learner=None, world_seed=7)
    verdict = check_world(pack, "ada-lovelace")
    assert verdict.status == "mismatch"
    assert verdict.problems[0] == "chapter 1: built without --learner (seed 7), not on the world of 'ada-lovelace'"


def test_the_learners_own_world_in_process_is_a_match(tmp_path):
    ada = "ada-lovelace"
    pack = _chapter1_pack(tmp_path / "p", seed=None, learner=ada, world_seed=derive_seed(ada))
    verdict = check_world(pack, ada)
    assert (verdict.status, verdict.problems) == ("ok", [])
    assert verdict.artifacts == [{"artifact": "ch01/asof_join_sample.csv", "rows": 300, "unmatched": 0, "ok": True}]
    # one row of another world among the learner's is enough
    other = generate_world(Scenario.default(), seed=derive_seed(ada) + 1).transactions[["event_timestamp"]].head(1)
    path = pack / "ch01" / "asof_join_sample.csv"
    path.write_text(path.read_text() + other.to_csv(index=False, header=False))
    assert check_world(pack, ada).artifacts[0]["unmatched"] == 1


def test_a_pack_without_world_artifacts_is_unchecked_not_flagged(tmp_path):
    rec = start_chapter(4, evidence_dir=tmp_path / "p", scale=1, learner="ada-lovelace")
    rec.save_json("summary", {"a": 1})
    verdict = check_world(tmp_path / "p", "ada-lovelace")
    assert (verdict.status, verdict.ok, verdict.detail) == ("unchecked", True, "no world artifact to check")


def test_an_unreadable_world_artifact_is_a_mismatch_that_says_so(tmp_path):
    pack = _chapter1_pack(tmp_path / "p", seed=None, learner="ada-lovelace", world_seed=derive_seed("ada-lovelace"))
    (pack / "ch01" / "asof_join_sample.csv").write_text("something,else\n1,2\n")
    verdict = check_world(pack, "ada-lovelace")
    assert verdict.status == "mismatch" and "asof_join_sample.csv is not readable as a saved table" in verdict.detail


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="learner id"):
        check_world(tmp_path, "../etc")
    with pytest.raises(EvidenceError, match="not an evidence pack folder"):
        check_world(tmp_path / "nope", "ada")


@pytest.mark.parametrize("seed", [7, 2104418507])
def test_the_regenerated_worlds_are_the_chapters_own(seed):
    """The grader's world builders against the chapters' make_world / make_data."""
    assert W._ch02_world(seed, 1.0).fingerprint() == ch02.make_world(seed=seed, scale=1).fingerprint()
    assert W._ch03_messy(seed, 1.0).fingerprint() == ch03.make_data(seed=seed, scale=1).messy.fingerprint()
    assert W._ch06_world(seed, 1.0).fingerprint() == ch06.make_world(seed=seed, scale=1).fingerprint()
    assert W._ch05_world(seed, 1.0)["traffic"].equals(ch05.make_world(seed=seed, scale=1)["traffic"])
    default = generate_world(Scenario.default().with_scale(1), seed=seed)
    assert W._default_world(seed, 1.0).fingerprint() == default.fingerprint()


def test_cli_grade_checks_the_world_of_the_learner_given(tmp_path, capsys):
    from mlops_kit.cli import main

    ada = "ada-lovelace"
    pack = _chapter1_pack(tmp_path / "p", seed=None, learner=ada, world_seed=derive_seed(ada))
    assert main(["grade", str(pack), "--learner", ada]) == 0
    assert "WORLD ok: 1 saved table(s) are rows of the world of 'ada-lovelace'" in capsys.readouterr().out
    assert main(["grade", str(pack), "--learner", "grace"]) == 1
    assert "WORLD mismatch: the pack was built for 'ada-lovelace'" in capsys.readouterr().out
    assert main(["grade", str(pack), "--learner", "grace", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["world"]["status"] == "mismatch"


def test_a_rewritten_scale_does_not_skip_the_rows(tmp_path):
    ada = "ada-lovelace"
    pack = _chapter1_pack(tmp_path / "p", seed=None, learner=ada, world_seed=derive_seed(ada))
    run = pack / "ch01" / "run.json"
    record = json.loads(run.read_text())
    run.write_text(json.dumps({**record, "scale": "none"}))
    assert check_world(pack, ada).problems == ["chapter 1: no usable scale ('none')"]
    run.write_text(json.dumps({**record, "scale": 2}))               # another world: the rows do not match
    assert check_world(pack, ada).artifacts[0]["unmatched"] == 300
