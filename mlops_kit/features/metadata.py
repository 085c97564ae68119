"""The feature store's metadata in ``features.sqlite``: definitions, file manifest, watermarks.

Tables (all owned by this module; other components keep their own tables in the file)::

    feature_definitions(kind, name, version, fingerprint, spec, applied_seq)
    offline_files(view, version, path, rows, min_ts_us, max_ts_us, ingest_id)
    offline_key_dtypes(view, version, key, dtype)
    offline_ties(view, version)   present once two committed rows share (keys, event ts)
    materialization_watermarks(view, version, watermark_us)
    live_versions(view, version)   the version "view:feature" reads (absent: latest applied)
    live_version_log(seq, view, action, from_version, to_version, backfill_id, reason, at_us,
                     marker_ingest_id)   every promotion and rollback, in order
    backfills(backfill_id, view, seq, record)   one lineage record (JSON) per backfill
    id_sequences(name, value)   ids handed out so far (``ingest``), never reused
    write_reservations(token, ingest_id, view, version, pid, host, started_us)
                                an ingest in flight: its id, and the token of its staging folder
    offline_file_digests(path, bytes, sha256)   size and hash of every committed file

The manifest ``offline_files`` is what readers trust: a Parquet file becomes visible only
when its row is committed, and one ingest commits all its files in one transaction.

Several processes may write at once. A writer reserves its ingest id (and a token naming its
staging folder) in one transaction *before* it writes any file, so two writers never pick the same id or
file name; its commit removes the reservation in the same transaction as the manifest rows.
A reservation left behind by a killed writer marks its files as abandoned, not committed
(``mlops-kit doctor`` reports them and ``--repair`` quarantines them).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .._io import canonical_json
from .._sqlite import enable_wal, write_transaction
from ..errors import DefinitionConflictError
from .definitions import Entity, FeatureView

__all__ = ["MetadataDB"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feature_definitions (
    kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL, spec TEXT NOT NULL, applied_seq INTEGER NOT NULL,
    PRIMARY KEY (kind, name, version));
CREATE TABLE IF NOT EXISTS offline_files (
    view TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, rows INTEGER NOT NULL,
    min_ts_us INTEGER NOT NULL, max_ts_us INTEGER NOT NULL, ingest_id INTEGER NOT NULL,
    PRIMARY KEY (view, version, path));
CREATE TABLE IF NOT EXISTS offline_key_dtypes (
    view TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, dtype TEXT NOT NULL,
    PRIMARY KEY (view, version, key));
CREATE TABLE IF NOT EXISTS offline_ties (
    view TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (view, version));
CREATE TABLE IF NOT EXISTS materialization_watermarks (
    view TEXT NOT NULL, version INTEGER NOT NULL, watermark_us INTEGER NOT NULL,
    PRIMARY KEY (view, version));
CREATE TABLE IF NOT EXISTS live_versions (
    view TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS live_version_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, view TEXT NOT NULL, action TEXT NOT NULL,
    from_version INTEGER NOT NULL, to_version INTEGER NOT NULL, backfill_id TEXT,
    reason TEXT, at_us INTEGER NOT NULL, marker_ingest_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS backfills (
    backfill_id TEXT PRIMARY KEY, view TEXT NOT NULL, seq INTEGER NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS id_sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS write_reservations (
    token TEXT PRIMARY KEY, ingest_id INTEGER NOT NULL, view TEXT NOT NULL, version INTEGER NOT NULL,
    pid INTEGER NOT NULL, host TEXT NOT NULL, started_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS offline_file_digests (
    path TEXT PRIMARY KEY, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL);
"""


class MetadataDB:
    """Small typed access layer over ``features.sqlite`` (one cached connection, WAL mode)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                    check_same_thread=False)
        enable_wal(self._con)
        self._writes = 0  # write transactions through this object (they do not move data_version)
        self._generation_stamp: tuple[int, int] | None = None
        self._generation = 0
        with write_transaction(self._con, what="opening the feature store metadata") as con:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)

    def close(self) -> None:
        self._con.close()

    @contextmanager
    def transaction(self, what: str = "feature store write") -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: everything inside commits together or not at all.

        A lock held by another process past the bounded wait raises ``ConcurrentWriteError``.
        """
        try:
            with write_transaction(self._con, what=what) as con:
                yield con
        finally:
            self._writes += 1

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._con.execute(sql, params).fetchall()

    # -- definitions ----------------------------------------------------------------------
    def stored_fingerprint(self, kind: str, name: str, version: int) -> str | None:
        rows = self._query("SELECT fingerprint FROM feature_definitions WHERE kind=? AND name=? "
                           "AND version=?", (kind, name, version))
        return rows[0][0] if rows else None

    def save_definitions(self, items: Iterable[Entity | FeatureView]) -> list[Entity | FeatureView]:
        """Insert new definitions in one transaction; returns those this call inserted.

        The conflict check runs again under the write lock, so two processes applying
        different definitions of one ``(name, version)`` at once cannot both win: the second
        gets ``DefinitionConflictError`` and nothing of its call is written.
        """
        inserted: list[Entity | FeatureView] = []
        with self.transaction("apply") as con:
            seq = con.execute("SELECT COALESCE(MAX(applied_seq), 0) FROM feature_definitions").fetchone()[0]
            for item in items:
                kind = "view" if isinstance(item, FeatureView) else "entity"
                version = item.version if isinstance(item, FeatureView) else 1
                row = con.execute("SELECT fingerprint FROM feature_definitions WHERE kind=? AND name=? "
                                  "AND version=?", (kind, item.name, version)).fetchone()
                if row is not None:
                    if row[0] != item.fingerprint:
                        what = f"FeatureView {item.name!r} v{version}" if kind == "view" else f"Entity {item.name!r}"
                        raise DefinitionConflictError(
                            f"{what} was registered with a different definition by another writer.",
                            fix=("Bump the version (version=...) for a changed view; versions coexist."
                                 if kind == "view" else "Give the changed entity a new name."),
                            name=item.name, version=version)
                    continue
                seq += 1
                con.execute("INSERT INTO feature_definitions VALUES (?,?,?,?,?,?)",
                            (kind, item.name, version, item.fingerprint,
                             canonical_json(item.to_dict()), seq))
                inserted.append(item)
        return inserted

    def load_views(self) -> list[FeatureView]:
        rows = self._query("SELECT spec FROM feature_definitions WHERE kind='view' "
                           "ORDER BY name, version")
        return [FeatureView.from_dict(json.loads(r[0])) for r in rows]

    def load_entities(self) -> list[Entity]:
        rows = self._query("SELECT spec FROM feature_definitions WHERE kind='entity' ORDER BY name")
        return [Entity.from_dict(json.loads(r[0])) for r in rows]

    # -- offline manifest -------------------------------------------------------------------
    def committed_files(self, view: str, version: int) -> list[tuple[str, int, int, int]]:
        """``(relative path, rows, min_ts_us, max_ts_us)`` in commit order."""
        return self._query("SELECT path, rows, min_ts_us, max_ts_us FROM offline_files "
                           "WHERE view=? AND version=? ORDER BY ingest_id, path", (view, version))

    @staticmethod
    def take_ingest_id(con: sqlite3.Connection) -> int:
        """The next ingest id, inside the caller's write transaction (never handed out twice)."""
        top = con.execute("SELECT max(COALESCE((SELECT value FROM id_sequences WHERE name='ingest'), 0), "
                          "COALESCE((SELECT MAX(ingest_id) FROM offline_files), 0), "
                          "COALESCE((SELECT MAX(ingest_id) FROM write_reservations), 0))").fetchone()[0]
        con.execute("INSERT INTO id_sequences VALUES ('ingest', ?) ON CONFLICT(name) DO UPDATE SET "
                    "value = excluded.value", (top + 1,))
        return top + 1

    def reserve_ingest(self, view: str, version: int, started_us: int) -> tuple[int, str]:
        """Reserve ``(ingest_id, token)`` for one writer before it writes any file."""
        token = secrets.token_hex(4)
        with self.transaction("ingest (reserving an id)") as con:
            ingest_id = self.take_ingest_id(con)
            con.execute("INSERT INTO write_reservations VALUES (?,?,?,?,?,?,?)",
                        (token, ingest_id, view, version, os.getpid(), socket.gethostname(), started_us))
        return ingest_id, token

    def release_reservation(self, token: str) -> None:
        """Drop a reservation whose writer gave up (its files were removed)."""
        with self.transaction("ingest (releasing a reservation)") as con:
            con.execute("DELETE FROM write_reservations WHERE token=?", (token,))

    def reservations(self) -> list[dict]:
        """Ingests in flight (or abandoned by a killed writer)."""
        cols = ("token", "ingest_id", "view", "version", "pid", "host", "started_us")
        return [dict(zip(cols, r)) for r in self._query(f"SELECT {', '.join(cols)} FROM write_reservations "
                                                         "ORDER BY ingest_id")]

    def referenced(self, paths: Iterable[str]) -> set[str]:
        """Which of ``paths`` some committed manifest row (any version) points to."""
        wanted = list(paths)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            found |= {r[0] for r in self._query(
                f"SELECT DISTINCT path FROM offline_files WHERE path IN ({', '.join('?' * len(chunk))})",
                tuple(chunk))}
        return found

    def record_digests(self, con: sqlite3.Connection, digests: Iterable[tuple[str, int, str]]) -> None:
        """``(path, bytes, sha256)`` of committed files, inside the caller's transaction."""
        con.executemany("INSERT INTO offline_file_digests VALUES (?,?,?) ON CONFLICT(path) DO UPDATE SET "
                        "bytes=excluded.bytes, sha256=excluded.sha256", list(digests))

    def all_manifest_rows(self) -> list[tuple[str, int, str, int]]:
        """``(view, version, path, rows)`` of every committed file, in commit order."""
        return self._query("SELECT view, version, path, rows FROM offline_files ORDER BY ingest_id, path")

    def digests(self) -> dict[str, tuple[int, str]]:
        return {p: (n, h) for p, n, h in self._query("SELECT path, bytes, sha256 FROM offline_file_digests")}

    def watermarks(self) -> dict[tuple[str, int], int]:
        return {(v, n): w for v, n, w in self._query(
            "SELECT view, version, watermark_us FROM materialization_watermarks")}

    def key_dtypes(self, view: str, version: int) -> dict[str, str]:
        rows = self._query("SELECT key, dtype FROM offline_key_dtypes WHERE view=? AND version=?",
                           (view, version))
        return dict(rows)

    def has_ties(self, view: str, version: int) -> bool:
        """True once two committed rows of the view share their keys and event timestamp."""
        return bool(self._query("SELECT 1 FROM offline_ties WHERE view=? AND version=?", (view, version)))

    def commit_files(self, view: str, version: int, files: list[tuple[str, int, int, int]],
                     ingest_id: int, key_dtypes: dict[str, str],
                     detect_ties: Callable[[list[str]], bool], *, token: str | None = None,
                     digests: Iterable[tuple[str, int, str]] = ()) -> None:
        """Make an ingest visible: all its files and its key dtypes, in one transaction.

        ``detect_ties(committed_paths)`` runs under the write lock, so that concurrent
        ingests cannot both miss a tie between them. The writer's reservation (``token``) is
        removed in the same transaction.
        """
        with self.transaction(f"ingest into {view!r} v{version}") as con:
            tied = con.execute("SELECT 1 FROM offline_ties WHERE view=? AND version=?",
                               (view, version)).fetchone()
            if not tied:
                committed = [r[0] for r in con.execute(
                    "SELECT path FROM offline_files WHERE view=? AND version=?", (view, version))]
                if detect_ties(committed):
                    con.execute("INSERT OR IGNORE INTO offline_ties VALUES (?,?)", (view, version))
            for key, dtype in key_dtypes.items():
                con.execute("INSERT OR IGNORE INTO offline_key_dtypes VALUES (?,?,?,?)",
                            (view, version, key, dtype))
            con.executemany("INSERT INTO offline_files VALUES (?,?,?,?,?,?,?)",
                            [(view, version, p, n, lo, hi, ingest_id) for p, n, lo, hi in files])
            self.record_digests(con, digests)
            if token is not None:
                con.execute("DELETE FROM write_reservations WHERE token=?", (token,))

    # -- watermarks --------------------------------------------------------------------------
    def watermark_us(self, view: str, version: int) -> int | None:
        rows = self._query("SELECT watermark_us FROM materialization_watermarks WHERE view=? "
                           "AND version=?", (view, version))
        return rows[0][0] if rows else None

    def advance_watermark(self, con: sqlite3.Connection, view: str, version: int, value_us: int) -> None:
        """Raise the watermark to ``value_us`` (never lowers it)."""
        con.execute("INSERT INTO materialization_watermarks VALUES (?,?,?) "
                    "ON CONFLICT(view, version) DO UPDATE SET watermark_us = "
                    "MAX(watermark_us, excluded.watermark_us)", (view, version, value_us))

    # -- live versions (see mlops_kit.features.backfill) -----------------------------------------
    def live_version(self, view: str) -> int | None:
        """The version pinned as live for ``view``, or None (then the latest applied is live)."""
        rows = self._query("SELECT version FROM live_versions WHERE view=?", (view,))
        return rows[0][0] if rows else None

    def live_generation(self) -> int:
        """A number that changes whenever a live pointer moves: the log's last seq.

        The log is re-read only when the file may have changed since the last call: SQLite's
        ``PRAGMA data_version`` on this connection moves when any other connection (another
        process, another store object) commits, and this object counts its own write
        transactions (which do not move it). Otherwise the last answer is still exact.
        """
        stamp = (self._con.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if stamp != self._generation_stamp:
            self._generation = self._query("SELECT COALESCE(MAX(seq), 0) FROM live_version_log")[0][0]
            self._generation_stamp = stamp
        return self._generation

    def remove_files(self, paths: Iterable[str], folders: Iterable[str]) -> int:
        """Drop manifest rows (every version) for ``paths`` and everything under ``folders``."""
        with self.transaction() as con:
            before = con.total_changes
            con.executemany("DELETE FROM offline_files WHERE path=?", [(p,) for p in paths])
            con.executemany("DELETE FROM offline_files WHERE substr(path, 1, ?) = ?",
                            [(len(f) + 1, f + "/") for f in folders])
            return con.total_changes - before
