"""The registry's tamper-evident audit log: an append-only hash chain over canonical JSON.

Entry ``n`` stores ``seq``, ``at``, ``actor``, ``action``, ``payload`` and ``prev_hash``
(the hash of entry ``n-1``; 64 zeros for the first) and its own
``hash = sha256(canonical_json({seq, at, actor, action, payload, prev_hash}))``.
Every registry write appends its entry inside the same SQLite transaction as the write,
so a write and its audit entry exist together or not at all.

``AuditLog.verify()`` walks the chain and names the first broken entry. It detects an
edited entry (its hash no longer matches), a deleted or inserted entry (the sequence has a
gap or the ``prev_hash`` link breaks), reordered entries (links break), and a truncated
tail when a registry row still references the missing entry. Truncating the tail *and*
every row that references it is only detectable against an exported head: pass the head
you recorded earlier as ``verify(anchor=...)``. ``export(path)`` writes the chain as JSON
lines; ``verify_chain_export(path)`` re-verifies such a file offline, with nothing but
the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_path, canonical_json
from ..errors import ValidationError

__all__ = ["AuditLog", "AuditEntry", "AuditVerification", "verify_chain_export", "GENESIS_HASH"]

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One entry of the chain (as stored)."""

    seq: int
    at: str
    actor: str
    action: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action,
                "payload": self.payload, "prev_hash": self.prev_hash, "hash": self.hash}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AuditEntry":
        return cls(seq=int(data["seq"]), at=str(data["at"]), actor=str(data["actor"]),
                   action=str(data["action"]), payload=dict(data["payload"]),
                   prev_hash=str(data["prev_hash"]), hash=str(data["hash"]))


@dataclass(frozen=True, kw_only=True)
class AuditVerification:
    """The result of verifying a chain.

    ``ok`` is True when nothing is broken; otherwise ``first_broken_seq`` is the position
    (1-based) of the first entry that fails and ``reason`` says why.
    """

    ok: bool
    entries: int
    head: str
    first_broken_seq: int | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "head": self.head,
                "first_broken_seq": self.first_broken_seq, "reason": self.reason}


def entry_hash(*, seq: int, at: str, actor: str, action: str, payload: Any, prev_hash: str) -> str:
    """The hash of one entry: sha256 over the canonical JSON of its fields."""
    body = {"seq": seq, "at": at, "actor": actor, "action": action, "payload": payload,
            "prev_hash": prev_hash}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _verify_entries(rows: list[dict[str, Any]]) -> AuditVerification:
    """Walk ``rows`` (in stored order) and report the first broken link."""
    prev = GENESIS_HASH
    for position, row in enumerate(rows, start=1):
        def broken(reason: str, position: int = position) -> AuditVerification:
            return AuditVerification(ok=False, entries=len(rows), head=prev,
                                     first_broken_seq=position, reason=reason)
        if row["seq"] != position:
            return broken(f"entry at position {position} has seq {row['seq']}: an entry was "
                          "deleted, inserted or renumbered.")
        if row["prev_hash"] != prev:
            return broken(f"entry {position} does not link to the entry before it (prev_hash "
                          f"{str(row['prev_hash'])[:12]}... != {prev[:12]}...): an entry was "
                          "deleted, inserted or reordered before it.")
        try:
            payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        except json.JSONDecodeError:
            return broken(f"entry {position} has a payload that is not JSON: it was edited.")
        expected = entry_hash(seq=row["seq"], at=row["at"], actor=row["actor"],
                              action=row["action"], payload=payload, prev_hash=row["prev_hash"])
        if row["hash"] != expected:
            return broken(f"entry {position} ({row['action']}) does not match its hash: "
                          "its content was edited.")
        prev = row["hash"]
    return AuditVerification(ok=True, entries=len(rows), head=prev)


class AuditLog:
    """The audit chain stored in the registry database (``registry.audit``).

    Writes go through :meth:`append`, called by the registry inside its own write
    transaction; learners read it with :meth:`entries`, :meth:`verify`, :meth:`head` and
    :meth:`export`.
    """

    def __init__(self, store: Any, *, referencing_tables: tuple[str, ...] = ()) -> None:
        self._store = store
        self._referencing = referencing_tables

    # -- writing (inside a registry transaction) ----------------------------------------
    @staticmethod
    def append(conn: sqlite3.Connection, *, at: str, actor: str, action: str,
               payload: dict[str, Any]) -> int:
        """Append one entry using ``conn``'s open transaction; return its ``seq``."""
        last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq = 1 if last is None else int(last["seq"]) + 1
        prev = GENESIS_HASH if last is None else str(last["hash"])
        payload = json.loads(canonical_json(payload))  # exactly what will be re-read
        digest = entry_hash(seq=seq, at=at, actor=actor, action=action, payload=payload,
                            prev_hash=prev)
        conn.execute(
            "INSERT INTO audit_log (seq, at, actor, action, payload, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, at, actor, action, canonical_json(payload), prev, digest),
        )
        return seq

    # -- reading ------------------------------------------------------------------------
    def _rows(self, conn: sqlite3.Connection) -> list[dict[str, Any]]:
        cursor = conn.execute(
            "SELECT seq, at, actor, action, payload, prev_hash, hash FROM audit_log ORDER BY rowid"
        )
        return [dict(row) for row in cursor]

    def entries(self) -> list[AuditEntry]:
        """Every entry in stored order."""
        with self._store.read() as conn:
            rows = self._rows(conn)
        return [AuditEntry.from_dict({**row, "payload": json.loads(row["payload"])}) for row in rows]

    def __len__(self) -> int:
        with self._store.read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])

    def head(self) -> str:
        """The hash of the last entry (64 zeros for an empty log): record it to anchor the chain."""
        with self._store.read() as conn:
            row = conn.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return GENESIS_HASH if row is None else str(row["hash"])

    def verify(self, *, anchor: str | None = None) -> AuditVerification:
        """Re-compute the chain from the database file and name the first broken entry.

        Parameters
        ----------
        anchor:
            A head hash recorded earlier (e.g. in an evidence manifest). When given, the
            chain must still contain an entry with that hash, which detects a truncated tail.
        """
        if anchor is not None and (not isinstance(anchor, str) or len(anchor) != 64):
            raise ValidationError(f"AuditLog.verify: anchor must be a 64-character hex hash, got {anchor!r}.",
                                  fix="Pass the value returned by registry.audit.head().")
        with self._store.read() as conn:
            rows = self._rows(conn)
            result = _verify_entries(rows)
            if not result.ok:
                return result
            for table in self._referencing:
                row = conn.execute(f"SELECT MIN(audit_seq) AS lo, MAX(audit_seq) AS hi FROM {table}").fetchone()
                if row["hi"] is not None and (row["hi"] > len(rows) or row["lo"] < 1):
                    missing = row["hi"] if row["hi"] > len(rows) else row["lo"]
                    return AuditVerification(
                        ok=False, entries=len(rows), head=result.head, first_broken_seq=missing,
                        reason=f"table {table!r} references audit entry {missing}, which is not in "
                        "the log: entries were deleted from the end.")
        if anchor is not None and anchor not in {row["hash"] for row in rows}:
            return AuditVerification(
                ok=False, entries=len(rows), head=result.head, first_broken_seq=len(rows) + 1,
                reason=f"the anchored head {anchor[:12]}... is no longer in the chain: entries were "
                "removed or the log was rewritten.")
        return result

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write the chain as JSON lines (one canonical entry per line), atomically.

        Re-verify the file anywhere with :func:`verify_chain_export`.
        """
        if not isinstance(path, (str, os.PathLike)) or Path(path).is_dir():
            raise ValidationError(f"AuditLog.export: path must be a file path, got {path!r}.",
                                  fix="Pass e.g. evidence_dir / 'audit_chain.jsonl'.")
        target = Path(path)
        lines = [canonical_json(entry.to_dict()) for entry in self.entries()]
        with atomic_path(target) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return target


def verify_chain_export(path: str | os.PathLike[str], *, expected_head: str | None = None) -> AuditVerification:
    """Verify an exported chain file offline (standard library only).

    Parameters
    ----------
    path:
        A file written by :meth:`AuditLog.export`.
    expected_head:
        If given, the last entry's hash must equal it (detects a truncated export).
    """
    file = Path(path)
    if not file.is_file():
        raise ValidationError(f"verify_chain_export: {str(file)!r} is not a file.",
                              fix="Pass the path written by registry.audit.export(path).")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            rows.append({key: data[key] for key in
                         ("seq", "at", "actor", "action", "payload", "prev_hash", "hash")})
        except (json.JSONDecodeError, KeyError, TypeError):
            return AuditVerification(ok=False, entries=len(rows), head=GENESIS_HASH,
                                     first_broken_seq=len(rows) + 1,
                                     reason=f"line {number} is not a complete audit entry.")
    result = _verify_entries(rows)
    if result.ok and expected_head is not None and result.head != expected_head:
        return AuditVerification(ok=False, entries=len(rows), head=result.head,
                                 first_broken_seq=len(rows) + 1,
                                 reason="the last entry's hash differs from the expected head: "
                                 "the export was truncated or extended.")
    return result
