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

The manifest ``offline_files`` is what readers trust: a Parquet file becomes visible only
when its row is committed, and one ingest commits all its files in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .._io import canonical_json
from .._sqlite import enable_wal
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
"""


class MetadataDB:
    """Small typed access layer over ``features.sqlite`` (one cached connection, WAL mode)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                    check_same_thread=False)
        enable_wal(self._con)
        self._con.executescript(_SCHEMA)

    def close(self) -> None:
        self._con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: everything inside commits together or not at all."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._con.execute(sql, params).fetchall()

    # -- definitions ----------------------------------------------------------------------
    def stored_fingerprint(self, kind: str, name: str, version: int) -> str | None:
        rows = self._query("SELECT fingerprint FROM feature_definitions WHERE kind=? AND name=? "
                           "AND version=?", (kind, name, version))
        return rows[0][0] if rows else None

    def save_definitions(self, items: Iterable[Entity | FeatureView]) -> None:
        """Insert new definitions (callers have checked conflicts) in one transaction."""
        with self.transaction() as con:
            seq = con.execute("SELECT COALESCE(MAX(applied_seq), 0) FROM feature_definitions").fetchone()[0]
            for item in items:
                seq += 1
                kind = "view" if isinstance(item, FeatureView) else "entity"
                version = item.version if isinstance(item, FeatureView) else 1
                con.execute("INSERT OR IGNORE INTO feature_definitions VALUES (?,?,?,?,?,?)",
                            (kind, item.name, version, item.fingerprint,
                             canonical_json(item.to_dict()), seq))

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

    def next_ingest_id(self) -> int:
        return self._query("SELECT COALESCE(MAX(ingest_id), 0) + 1 FROM offline_files")[0][0]

    def key_dtypes(self, view: str, version: int) -> dict[str, str]:
        rows = self._query("SELECT key, dtype FROM offline_key_dtypes WHERE view=? AND version=?",
                           (view, version))
        return dict(rows)

    def has_ties(self, view: str, version: int) -> bool:
        """True once two committed rows of the view share their keys and event timestamp."""
        return bool(self._query("SELECT 1 FROM offline_ties WHERE view=? AND version=?", (view, version)))

    def commit_files(self, view: str, version: int, files: list[tuple[str, int, int, int]],
                     ingest_id: int, key_dtypes: dict[str, str],
                     detect_ties: Callable[[list[str]], bool]) -> None:
        """Make an ingest visible: all its files and its key dtypes, in one transaction.

        ``detect_ties(committed_paths)`` runs under the write lock, so that concurrent
        ingests cannot both miss a tie between them.
        """
        with self.transaction() as con:
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
        """A number that changes whenever a live pointer moves (cheap: the log's last seq)."""
        return self._query("SELECT COALESCE(MAX(seq), 0) FROM live_version_log")[0][0]

    def remove_files(self, paths: Iterable[str], folders: Iterable[str]) -> int:
        """Drop manifest rows (every version) for ``paths`` and everything under ``folders``."""
        with self.transaction() as con:
            before = con.total_changes
            con.executemany("DELETE FROM offline_files WHERE path=?", [(p,) for p in paths])
            con.executemany("DELETE FROM offline_files WHERE substr(path, 1, ?) = ?",
                            [(len(f) + 1, f + "/") for f in folders])
            return con.total_changes - before
