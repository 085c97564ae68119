"""SQLite storage for the model registry: schema, connections and write transactions.

Every registry write runs inside one ``BEGIN IMMEDIATE`` transaction: the database write
lock is taken before anything is read, so concurrent writers (threads or processes) are
serialized and never lose an update. The database runs in WAL mode with a busy timeout,
so readers never block writers and a writer waits for the lock instead of failing.

Guards in the schema itself (triggers) refuse to edit or delete versions, and to edit or
delete audit entries. They protect against bugs, not against someone who opens the file
by hand; that is what the audit chain's ``verify()`` is for.

Schema versions (``meta.schema_version``), migrated in place when a workspace is opened:

1. the original layout (every artifact a pickle);
2. ``versions.artifact_format`` and ``versions.trusted_types_json`` (``NULL`` on rows written
   by version 1, read as a pickle with no trusted types) and the append-only
   ``artifact_events`` table: a migrated version gains its new artifact through an event,
   its ``versions`` row stays as written.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._sqlite import enable_wal
from ..errors import RegistryError

__all__ = ["RegistryStore", "SCHEMA_VERSION"]

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    audit_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    author TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    audit_seq INTEGER NOT NULL,
    artifact_format TEXT,
    trusted_types_json TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS feature_refs (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    view TEXT NOT NULL,
    view_version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (name, version, view, view_version)
);
CREATE INDEX IF NOT EXISTS feature_refs_by_view ON feature_refs (view, view_version);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS alias_events (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    from_version INTEGER,
    to_version INTEGER,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    audit_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state_events (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    audit_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    note TEXT NOT NULL,
    at TEXT NOT NULL,
    audit_seq INTEGER NOT NULL,
    UNIQUE (name, version, actor)
);
CREATE TABLE IF NOT EXISTS attestations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    stage TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    body_json TEXT NOT NULL,
    verdict TEXT NOT NULL,
    at TEXT NOT NULL,
    audit_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS artifact_events (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    from_sha256 TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    artifact_format TEXT NOT NULL,
    trusted_types_json TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    audit_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS versions_no_delete
BEFORE DELETE ON versions
BEGIN
    SELECT RAISE(ABORT, 'model versions cannot be deleted');
END;
CREATE TRIGGER IF NOT EXISTS artifact_events_no_update
BEFORE UPDATE ON artifact_events
BEGIN
    SELECT RAISE(ABORT, 'artifact events are append-only');
END;
CREATE TRIGGER IF NOT EXISTS artifact_events_no_delete
BEFORE DELETE ON artifact_events
BEGIN
    SELECT RAISE(ABORT, 'artifact events are append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_update
BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete
BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
"""

#: Every column of ``versions`` except ``state``: none may change after registration.
_IMMUTABLE_TRIGGER = """
CREATE TRIGGER versions_spec_immutable
BEFORE UPDATE OF name, version, created_at, artifact_sha256, author, spec_json, audit_seq, artifact_format,
    trusted_types_json
ON versions
BEGIN
    SELECT RAISE(ABORT, 'model versions are immutable');
END
"""

#: Tables whose rows each reference the audit entry written with them.
AUDITED_TABLES = ("models", "versions", "alias_events", "state_events", "approvals", "attestations",
                  "artifact_events")


class RegistryStore:
    """One SQLite connection to ``registry.sqlite`` with explicit write transactions.

    Parameters
    ----------
    path:
        The database file (created with its schema on first use).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        enable_wal(self._conn)
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._create_schema()

    def _create_schema(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_statements(_SCHEMA):
                    self._conn.execute(statement)
                self._migrate()
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _migrate(self) -> None:
        """Bring an older schema up to :data:`SCHEMA_VERSION` (inside the open transaction)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        stored = SCHEMA_VERSION if row is None else int(row[0])
        if stored > SCHEMA_VERSION:
            raise RegistryError(f"{str(self.path)!r} has registry schema {stored}; this kit reads up to "
                                f"{SCHEMA_VERSION}.", fix="Upgrade mlops_kit to open this workspace.")
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(versions)")}
        for column in ("artifact_format", "trusted_types_json"):
            if column not in columns:  # a version-1 workspace: its rows keep NULL (= pickle)
                self._conn.execute(f"ALTER TABLE versions ADD COLUMN {column} TEXT")
        trigger = self._conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                                     "AND name = 'versions_spec_immutable'").fetchone()
        if trigger is None or "trusted_types_json" not in trigger[0]:
            self._conn.execute("DROP TRIGGER IF EXISTS versions_spec_immutable")
            self._conn.execute(_IMMUTABLE_TRIGGER.strip())
        self._conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot (one deferred transaction)."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (the registry object is unusable afterwards)."""
        with self._lock:
            self._conn.close()


def _split_statements(script: str) -> list[str]:
    """Split the schema script into statements (triggers hold inner semicolons)."""
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.strip().splitlines():
        buffer.append(line)
        text = "\n".join(buffer).strip()
        if sqlite3.complete_statement(text):
            statements.append(text)
            buffer = []
    return statements
