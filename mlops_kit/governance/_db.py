"""Governance state in the workspace's ``features.sqlite``, in tables prefixed ``gov_``.

The feature store keeps its own tables in the same file; governance opens its own connection
(WAL journal, busy timeout) and writes each operation in one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._sqlite import enable_wal, write_transaction

__all__ = ["connect", "transaction", "SCHEMA"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS gov_views (
    name TEXT NOT NULL, version INTEGER NOT NULL, owner TEXT, description TEXT,
    sensitivity TEXT NOT NULL, tags TEXT NOT NULL, registered_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active', replacement TEXT, end_of_life TEXT,
    consumers_blocked_from TEXT,
    PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS gov_transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL,
    from_state TEXT NOT NULL, to_state TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL,
    reason TEXT NOT NULL, replacement TEXT, end_of_life TEXT, consumers_blocked_from TEXT);
CREATE TABLE IF NOT EXISTS gov_consumers (
    name TEXT NOT NULL, version INTEGER NOT NULL, consumer TEXT NOT NULL, kind TEXT NOT NULL,
    registered_by TEXT NOT NULL, registered_at TEXT NOT NULL,
    PRIMARY KEY (name, version, consumer));
CREATE TABLE IF NOT EXISTS gov_usage (
    name TEXT NOT NULL, version INTEGER NOT NULL, channel TEXT NOT NULL,
    reads INTEGER NOT NULL, last_read_at TEXT NOT NULL,
    PRIMARY KEY (name, version, channel));
CREATE TABLE IF NOT EXISTS gov_principals (
    principal TEXT PRIMARY KEY, roles TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gov_grants (
    view TEXT NOT NULL, subject_type TEXT NOT NULL, subject TEXT NOT NULL,
    granted_by TEXT NOT NULL, granted_at TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (view, subject_type, subject));
CREATE TABLE IF NOT EXISTS gov_access_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, view TEXT, subject_type TEXT,
    subject TEXT NOT NULL, detail TEXT, actor TEXT NOT NULL, at TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gov_read_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, principal TEXT, view TEXT NOT NULL,
    version INTEGER NOT NULL, sensitivity TEXT NOT NULL, purpose TEXT, channel TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS gov_retention_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, path TEXT NOT NULL,
    partition_date TEXT NOT NULL, max_age_seconds REAL NOT NULL, dry_run INTEGER NOT NULL,
    actor TEXT NOT NULL);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` with WAL and a busy timeout, creating the ``gov_`` tables if missing."""
    con = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA busy_timeout = 30000")
    enable_wal(con)
    con.execute("PRAGMA foreign_keys = ON")
    with transaction(con):
        for statement in SCHEMA.split(";"):
            if statement.strip():
                con.execute(statement)
    return con


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error.

    A lock held by another process past the bounded wait raises ``ConcurrentWriteError``.
    """
    with write_transaction(con, what="governance write"):
        yield con
