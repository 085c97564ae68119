"""Per-learner seeds: the documented derivation, the choice table, validation, and the recording."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit.errors import MlopsKitError, ValidationError
from mlops_kit.evidence import start_chapter
from mlops_kit.evidence.learners import (COURSE_SALT, DEFAULT_SEED, derive_seed, resolve_seed,
                                         validate_learner_id)
from mlops_kit.evidence.runner import build_evidence

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,40}", fullmatch=True).filter(lambda s: ".." not in s)


def test_derivation_matches_the_documented_formula_by_hand():
    digest = hashlib.sha256(b"mlops-kit-practicum:ada").hexdigest()
    assert derive_seed("ada") == int(digest[:8], 16) // 2          # first 32 bits, shifted to 31
    assert COURSE_SALT == "mlops-kit-practicum"


@settings(max_examples=200, deadline=None)
@given(ids)
def test_seed_is_stable_in_range_and_salted(learner):
    seed = derive_seed(learner)
    assert seed == derive_seed(learner) and 0 <= seed < 2**31
    assert resolve_seed(None, learner) == (seed, "learner")
    assert derive_seed(learner, salt="another-course") != seed   # equal by chance: 1 in 2**31


def test_distinct_learners_get_distinct_worlds():
    seeds = {derive_seed(f"s{n:05d}") for n in range(2000)}
    assert len(seeds) == 2000                     # birthday bound: ~1e-3 chance of a clash in 2**31


@pytest.mark.parametrize("seed, learner, expected", [
    (None, None, (DEFAULT_SEED, "default")),
    (11, None, (11, "explicit")),
    (11, "ada", (11, "override")),
    (0, "ada", (0, "override")),
])
def test_choice_table(seed, learner, expected):
    assert resolve_seed(seed, learner) == expected


@pytest.mark.parametrize("bad", ["", " ada", "ada/../bob", "../x", "a b", "x" * 129, 7, None, "-lead", "a..b"])
def test_unusable_ids_are_refused_with_the_fix(bad):
    with pytest.raises(ValidationError) as err:
        validate_learner_id(bad)
    assert isinstance(err.value, MlopsKitError) and "roster" in str(err.value)


@pytest.mark.parametrize("seed", [-1, True, 1.5, "7"])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ValidationError):
        resolve_seed(seed, "ada")


def test_start_chapter_records_learner_seed_and_source(tmp_path):
    rec = start_chapter(1, evidence_dir=tmp_path, scale=1, learner="grace")
    run = json.loads((tmp_path / "ch01" / "run.json").read_text())
    assert rec.seed == derive_seed("grace") == run["seed"]
    assert (run["learner"], run["seed_source"], run["kit_version"]) == ("grace", "learner", rec_version())
    rec = start_chapter(1, evidence_dir=tmp_path, seed=5, scale=1, learner="grace")
    run = json.loads((tmp_path / "ch01" / "run.json").read_text())
    assert (rec.seed, run["seed_source"]) == (5, "override")
    assert start_chapter(1, evidence_dir=tmp_path, scale=1).seed == DEFAULT_SEED


def rec_version() -> str:
    from mlops_kit.evidence.layout import kit_version

    return kit_version()


def test_build_refuses_a_bad_learner_before_writing(tmp_path):
    out = tmp_path / "pack"
    with pytest.raises(ValidationError) as err:
        build_evidence(out, chapters=[1], learner="../bob")
    assert "--learner" in str(err.value)
    assert not out.exists()
