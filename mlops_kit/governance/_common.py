"""Shared plumbing of the governance mixins: workspace, clock, connection, read cache, usage buffer.

``check_read`` answers from memory: the lifecycle state of each view and each grant decision
are cached per object and revalidated exactly on every call with SQLite's ``PRAGMA
data_version`` (it changes when ANY other connection, in this process or another, commits to
``features.sqlite``); every write made through this object drops the cache itself. Usage
counts are buffered in memory and written in one transaction every ``usage_flush_every``
reads, on ``flush()``/``close()`` and before anything reads usage back. Counts not yet
flushed are lost if the process dies without ``flush()``/``close()`` (usage is a metric, not
an audit trail; the read log of sensitive views is written before each such read returns).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .._time import ensure_utc, system_clock
from ..errors import NotFoundError, ValidationError
from ..workspace import Workspace
from . import _db

__all__ = ["GovernanceBase", "SENSITIVITIES", "text_arg", "view_attrs"]

SENSITIVITIES = ("public", "internal", "sensitive", "restricted")


def text_arg(value: Any, *, where: str, name: str, example: str, optional: bool = False) -> str | None:
    """A non-empty string argument (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}: {name} must be a non-empty string, got {value!r}.",
                              fix=f"Pass e.g. {name}={example!r}.")
    return value


def view_attrs(view: Any, *, where: str) -> tuple[str, int, str]:
    """``(name, version, sensitivity)`` of a feature-view-like object (duck typing)."""
    name = getattr(view, "name", None)
    version = getattr(view, "version", None)
    sensitivity = getattr(view, "sensitivity", None)
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{where}: {view!r} has no usable .name.",
                              fix="Pass FeatureView objects (with .name, .version, .sensitivity).")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(f"{where}: view {name!r} has version {version!r}; expected an integer >= 1.",
                              fix="Pass FeatureView objects with an integer version.")
    if sensitivity not in SENSITIVITIES:
        raise ValidationError(f"{where}: view {name!r} has sensitivity {sensitivity!r}.",
                              fix=f"Use one of {SENSITIVITIES}.")
    return name, version, sensitivity


class GovernanceBase:
    """Holds the workspace, the clock and one SQLite connection to ``features.sqlite``."""

    def __init__(self, workspace: Any, *, clock: Callable[[], datetime] | None = None,
                 usage_flush_every: int = 1000) -> None:
        if isinstance(workspace, (str, os.PathLike)):
            workspace = Workspace(workspace)
        if not isinstance(workspace, Workspace):
            raise ValidationError(f"Governance: workspace must be a Workspace or a path, got {type(workspace).__name__}.",
                                  fix="Pass Workspace(root) or the root folder.")
        if clock is not None and not callable(clock):
            raise ValidationError("Governance: clock must be a zero-argument callable returning a UTC datetime.",
                                  fix="Pass e.g. FixedClock(datetime(2024, 1, 1, tzinfo=UTC)).")
        if isinstance(usage_flush_every, bool) or not isinstance(usage_flush_every, int) or usage_flush_every < 1:
            raise ValidationError(f"Governance: usage_flush_every must be an integer >= 1, got {usage_flush_every!r}.",
                                  fix="Pass e.g. usage_flush_every=1000 (1 writes the counts on every read).")
        self.workspace = workspace
        self.clock = clock or system_clock
        self.usage_flush_every = usage_flush_every
        self._con: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._data_version: int | None = None
        self._view_cache: dict[tuple[str, int], tuple[str, str | None, str | None]] = {}
        self._grant_cache: dict[tuple[str, str], bool] = {}
        self._pending: dict[tuple[str, int, str], list[Any]] = {}  # key -> [reads, last read at]
        self._pending_reads = 0

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            self._con = _db.connect(self.workspace.features_db)
        return self._con

    @contextmanager
    def _tx(self, *, invalidate: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``invalidate`` drops the read cache afterwards (our own commits
        do not move ``PRAGMA data_version`` on our connection, so every write that may change a
        decision must say so; only the read log and usage counts pass ``invalidate=False``)."""
        with self._lock:
            try:
                with _db.transaction(self.con) as con:
                    yield con
            finally:
                if invalidate:
                    self._forget()

    def _forget(self) -> None:
        self._view_cache.clear()
        self._grant_cache.clear()

    def _revalidate(self) -> None:
        """Drop the read cache if another connection committed since the last call."""
        version = self.con.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._forget()
            self._data_version = version

    def _count(self, key: tuple[str, int, str], at: datetime) -> None:
        slot = self._pending.get(key)
        if slot is None:
            self._pending[key] = [1, at]
        else:
            slot[0] += 1
            slot[1] = at

    def _write_usage(self, con: sqlite3.Connection, *, extra: Sequence[tuple[str, int, str]] = (),
                     at: datetime | None = None) -> None:
        """Add the buffered counts (plus one read of each ``extra`` key at ``at``) inside the
        caller's transaction; the buffer is left as is (call ``_drop_usage`` after commit)."""
        rows = {key: list(slot) for key, slot in self._pending.items()}
        for key in extra:
            slot = rows.setdefault(key, [0, at])
            slot[0] += 1
            slot[1] = at
        con.executemany("INSERT INTO gov_usage VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, version, channel) "
                        "DO UPDATE SET reads = reads + excluded.reads, last_read_at = excluded.last_read_at",
                        [(*key, reads, when.isoformat()) for key, (reads, when) in rows.items()])

    def _drop_usage(self) -> None:
        self._pending.clear()
        self._pending_reads = 0

    def flush(self) -> None:
        """Write the usage counts buffered by ``check_read`` (one transaction; no-op if none)."""
        with self._lock:
            if not self._pending:
                return
            with self._tx(invalidate=False) as con:
                self._write_usage(con)
            self._drop_usage()

    def _now(self) -> datetime:
        return ensure_utc(self.clock(), name="Governance clock()")

    def close(self) -> None:
        """Flush buffered usage counts and close the database connection (reopened on next use)."""
        with self._lock:
            try:
                self.flush()
            finally:
                if self._con is not None:
                    self._con.close()
                    self._con = None
                self._data_version = None
                self._forget()

    def _ref(self, view: Any, version: int | None, *, where: str) -> tuple[str, int]:
        """Resolve a view object or name (+ optional version; None = latest registered)."""
        if not isinstance(view, str):
            name, ver, _ = view_attrs(view, where=where)
            version = ver if version is None else version
        else:
            name = text_arg(view, where=where, name="view", example="user_txn_7d")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValidationError(f"{where}: version must be an integer >= 1, got {version!r}.",
                                  fix="Pass version=1, or leave it None for the latest registered version.")
        if version is None:
            row = self.con.execute("SELECT max(version) FROM gov_views WHERE name = ?", (name,)).fetchone()
            version = row[0]
        elif self.con.execute("SELECT 1 FROM gov_views WHERE name = ? AND version = ?",
                              (name, version)).fetchone() is None:
            version = None
        if version is None:
            raise NotFoundError(f"{where}: feature view {name!r} is not in the catalog.",
                                fix="Register it first with Governance.register(view) (reads register it too).",
                                view=name)
        return name, int(version)
