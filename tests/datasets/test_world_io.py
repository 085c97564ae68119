"""Parquet persistence: byte identity, round trip, refusal of edited folders, checksums."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mlops_kit.datasets import Scenario, generate_world, load_world, verify_checksums
from mlops_kit.errors import IntegrityError, NotFoundError, ValidationError

DATA = Path(__file__).resolve().parents[2] / "data"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_and_scenario_write_byte_identical_parquet(tmp_path):
    scenario = Scenario.messy().with_scale(0.1)
    a, b = tmp_path / "a", tmp_path / "b"
    generate_world(scenario, seed=7).to_parquet(a)  # two independent generations
    generate_world(scenario, seed=7).to_parquet(b)
    files = sorted(p.name for p in a.iterdir())
    assert files == ["labels.parquet", "merchants.parquet", "profiles.parquet", "transactions.parquet",
                     "users.parquet", "world.json"]
    for name in files:
        assert _sha(a / name) == _sha(b / name), name
    generate_world(scenario, seed=8).to_parquet(tmp_path / "c")
    assert _sha(a / "transactions.parquet") != _sha(tmp_path / "c" / "transactions.parquet")


def test_load_world_round_trip(tmp_path):
    world = generate_world(Scenario.outage().with_scale(0.1), seed=1)
    hashes = world.to_parquet(tmp_path / "w")
    loaded = load_world(tmp_path / "w")
    assert loaded.scenario == world.scenario and loaded.seed == 1
    for name, frame in world.tables().items():
        pd.testing.assert_frame_equal(loaded.tables()[name], frame)
    assert loaded.fingerprint() == world.fingerprint()
    manifest = json.loads((tmp_path / "w" / "world.json").read_text())
    assert manifest["files"] == hashes and manifest["fingerprint"] == world.fingerprint()


def test_fingerprint_sees_a_single_changed_value():
    world = generate_world(Scenario.small(), seed=0)
    txn = world.transactions.copy()
    txn.loc[17, "amount"] += 0.01
    edited = type(world)(**{**world.__dict__, "transactions": txn})
    assert edited.fingerprint() != world.fingerprint()


def test_edited_or_missing_files_are_refused(tmp_path):
    folder = tmp_path / "w"
    generate_world(Scenario.small(), seed=0).to_parquet(folder)
    target = folder / "labels.parquet"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="labels.parquet"):
        load_world(folder)
    target.unlink()
    with pytest.raises(NotFoundError, match="labels.parquet"):
        load_world(folder)
    with pytest.raises(NotFoundError, match="world.json"):
        load_world(tmp_path / "empty")


def test_to_parquet_refuses_a_file_target(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    world = generate_world(Scenario.small(), seed=0)
    with pytest.raises(ValidationError, match="not a folder"):
        world.to_parquet(file)
    assert file.read_text() == "x"


def test_default_dataset_matches_recorded_checksums():
    recorded = json.loads((DATA / "checksums.json").read_text())
    assert recorded["scenario"] == "default" and recorded["seed"] == 0
    result = verify_checksums(DATA / "checksums.json")
    assert result["fingerprint"] == recorded["fingerprint"]
    if recorded["versions"]["pyarrow"] == pa.__version__:
        assert result["files_compared"] and result["files"] == recorded["files"]


def test_verify_checksums_detects_a_wrong_record(tmp_path):
    record = json.loads((DATA / "checksums.json").read_text())
    record["fingerprint"] = "0" * 64
    path = tmp_path / "checksums.json"
    path.write_text(json.dumps(record))
    with pytest.raises(IntegrityError, match="fingerprint"):
        verify_checksums(path)
    with pytest.raises(NotFoundError):
        verify_checksums(tmp_path / "missing.json")


def test_world_and_loader_refuse_bad_input():
    world = generate_world(Scenario.small(), seed=0)
    with pytest.raises(ValidationError, match="DataFrame"):
        type(world)(**{**world.__dict__, "labels": [1, 2]})
    with pytest.raises(ValidationError, match="Scenario"):
        type(world)(**{**world.__dict__, "scenario": "default"})
    with pytest.raises(ValidationError, match="empty"):
        load_world("")
    assert repr(world).startswith("World(scenario='small', seed=0, users=500")
