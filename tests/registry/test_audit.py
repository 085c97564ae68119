"""The audit chain: one entry per write, and tampering with the database file is detected."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from registry_helpers import register, to_production

from mlops_kit.errors import ValidationError
from mlops_kit.registry import ModelRegistry, verify_chain_export
from mlops_kit.registry.audit import GENESIS_HASH


@pytest.fixture
def populated(registry):
    register(registry)
    register(registry, seed=1)
    to_production(registry, "fraud", 1)   # 6 writes
    registry.promote("fraud", 2, "candidate", actor="alice")
    assert len(registry.audit) == 9
    return registry


def raw(reg: ModelRegistry) -> sqlite3.Connection:
    """Open the database file directly, as someone editing it by hand would (guards removed)."""
    conn = sqlite3.connect(reg.workspace.registry_db, isolation_level=None)
    for trigger in ("audit_no_update", "audit_no_delete"):
        conn.execute(f"DROP TRIGGER {trigger}")
    return conn


def independent_hash(entry: dict) -> str:
    body = {k: entry[k] for k in ("seq", "at", "actor", "action", "payload", "prev_hash")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode()).hexdigest()


def test_every_write_appends_one_linked_entry(populated):
    entries = populated.audit.entries()
    assert [e.action for e in entries] == ["register_model", "register_model", "promote", "promote", "approve",
                                           "approve", "promote", "deploy", "promote"]
    prev = GENESIS_HASH
    for n, entry in enumerate(entries, start=1):  # re-derived without the kit's hashing code
        assert entry.seq == n and entry.prev_hash == prev
        assert entry.hash == independent_hash(entry.to_dict())
        prev = entry.hash
    assert populated.audit.head() == prev
    result = populated.audit.verify()
    assert result.ok and result.entries == 9 and result.first_broken_seq is None


def test_edit_is_detected(populated):
    conn = raw(populated)
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5")
    result = populated.audit.verify()
    assert (result.ok, result.first_broken_seq) == (False, 5) and "edited" in result.reason


def test_edit_with_recomputed_hash_is_detected_at_the_next_entry(populated):
    conn = raw(populated)
    row = dict(zip(["seq", "at", "actor", "action", "payload", "prev_hash"],
                   conn.execute("SELECT seq, at, actor, action, payload, prev_hash FROM audit_log WHERE seq = 5")
                   .fetchone()))
    row["payload"] = {**json.loads(row["payload"]), "role": "risk"}
    assert row["payload"] != json.loads(conn.execute("SELECT payload FROM audit_log WHERE seq = 5").fetchone()[0])
    conn.execute("UPDATE audit_log SET payload = ?, hash = ? WHERE seq = 5",
                 (json.dumps(row["payload"], sort_keys=True, separators=(",", ":")), independent_hash(row)))
    assert populated.audit.verify().first_broken_seq == 6


def test_deletion_is_detected(populated):
    raw(populated).execute("DELETE FROM audit_log WHERE seq = 4")
    result = populated.audit.verify()
    assert (result.ok, result.first_broken_seq) == (False, 4)


def test_deleting_the_tail_is_detected_through_rows_that_reference_it(populated):
    raw(populated).execute("DELETE FROM audit_log WHERE seq = 9")
    result = populated.audit.verify()
    assert (result.ok, result.first_broken_seq) == (False, 9) and "deleted from the end" in result.reason


def test_truncation_with_its_rows_is_detected_against_an_anchor(populated):
    anchor = populated.audit.head()
    conn = raw(populated)
    conn.execute("DELETE FROM audit_log WHERE seq = 9")
    conn.execute("DELETE FROM alias_events WHERE audit_seq = 9")
    conn.execute("DELETE FROM attestations WHERE audit_seq = 9")
    conn.execute("DELETE FROM state_events WHERE audit_seq = 9")
    assert populated.audit.verify().ok  # consistent on its own ...
    result = populated.audit.verify(anchor=anchor)  # ... but not against the exported head
    assert not result.ok and "anchored head" in result.reason


def test_insertion_is_detected(populated):
    conn = raw(populated)
    conn.execute("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 3")
    conn.execute("UPDATE audit_log SET seq = seq - 99 WHERE seq >= 103")
    prev = conn.execute("SELECT hash FROM audit_log WHERE seq = 2").fetchone()[0]
    fake = {"seq": 3, "at": "2024-03-01T12:00:00+00:00", "actor": "mallory", "action": "approve",
            "payload": {"name": "fraud", "version": 2}, "prev_hash": prev}
    conn.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (3, fake["at"], fake["actor"], fake["action"], json.dumps(fake["payload"]), prev, independent_hash(fake)))
    result = populated.audit.verify()
    assert (result.ok, result.first_broken_seq) == (False, 4)  # the forged entry links; the next one does not


def test_reordering_is_detected(populated):
    conn = raw(populated)
    cols = "at, actor, action, payload, prev_hash, hash"
    r5 = conn.execute(f"SELECT {cols} FROM audit_log WHERE seq = 5").fetchone()
    r6 = conn.execute(f"SELECT {cols} FROM audit_log WHERE seq = 6").fetchone()
    setter = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    conn.execute(f"UPDATE audit_log SET {setter} WHERE seq = 5", r6)
    conn.execute(f"UPDATE audit_log SET {setter} WHERE seq = 6", r5)
    assert populated.audit.verify().first_broken_seq == 5


def test_export_is_verifiable_offline_and_tampering_with_it_is_detected(populated, tmp_path):
    path = populated.audit.export(tmp_path / "audit.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 9 and all(json.loads(line)["hash"] for line in lines)
    result = verify_chain_export(path, expected_head=populated.audit.head())
    assert result.ok and result.head == populated.audit.head()
    edited = [json.loads(line) for line in lines]
    edited[2]["payload"]["alias"] = "approved-prod"
    (tmp_path / "edited.jsonl").write_text("".join(json.dumps(e) + "\n" for e in edited))
    assert verify_chain_export(tmp_path / "edited.jsonl").first_broken_seq == 3
    (tmp_path / "short.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    assert verify_chain_export(tmp_path / "short.jsonl").ok
    assert not verify_chain_export(tmp_path / "short.jsonl", expected_head=populated.audit.head()).ok
    (tmp_path / "junk.jsonl").write_text(lines[0] + "\n{not json\n")
    assert verify_chain_export(tmp_path / "junk.jsonl").first_broken_seq == 2
    with pytest.raises(ValidationError):
        verify_chain_export(tmp_path / "missing.jsonl")


def test_empty_log_verifies_with_the_genesis_head(registry):
    assert registry.audit.head() == GENESIS_HASH and registry.audit.verify().ok
