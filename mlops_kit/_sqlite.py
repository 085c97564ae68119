"""SQLite helpers shared by the stores: WAL mode and write transactions under concurrency.

``PRAGMA journal_mode = WAL`` needs an exclusive lock while the file is converted, and SQLite
answers ``database is locked`` at once (the busy handler does not apply) when another
connection is converting or writing the same new file at that moment. Once a file is in WAL
mode the setting persists, so retrying for a short, bounded time is enough.

Writers take ``BEGIN IMMEDIATE`` (the write lock up front, so a transaction never fails half
way on an upgrade) and wait for it through the connection's busy timeout. When another
process holds the lock longer than that, :func:`write_transaction` retries a bounded number
of times and then raises ``ConcurrentWriteError``: a clear, retryable error, never a raw
``sqlite3.OperationalError``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ConcurrentWriteError

__all__ = ["enable_wal", "is_busy", "translate_busy", "write_transaction"]


def is_busy(exc: BaseException) -> bool:
    """Is ``exc`` SQLite's "another connection holds the lock" (locked / busy)?"""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def enable_wal(con: sqlite3.Connection, *, attempts: int = 200, pause_s: float = 0.05) -> None:
    """Put ``con``'s database in WAL mode, retrying while another connection holds the lock."""
    for attempt in range(attempts):
        try:
            con.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == attempts - 1:
                raise
            time.sleep(pause_s)


@contextmanager
def write_transaction(con: sqlite3.Connection, *, what: str, attempts: int = 3,
                      pause_s: float = 0.2) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error.

    Taking the lock is retried ``attempts`` times (each waits the connection's busy timeout);
    a lock still held after that, or a ``COMMIT`` that cannot get it, raises
    ``ConcurrentWriteError`` naming ``what`` and the database. Errors inside the block are
    not retried here (the block may have side effects): they roll back and propagate, with
    busy/locked errors translated.
    """
    for attempt in range(attempts):
        try:
            con.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if attempt == attempts - 1:
                raise _busy_error(con, what, exc) from exc
            time.sleep(pause_s * (attempt + 1))
    try:
        yield con
    except BaseException as exc:
        if con.in_transaction:
            con.execute("ROLLBACK")
        if is_busy(exc):
            raise _busy_error(con, what, exc) from exc
        raise
    try:
        con.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if con.in_transaction:
            con.execute("ROLLBACK")
        if is_busy(exc):
            raise _busy_error(con, what, exc) from exc
        raise


def _busy_error(con: sqlite3.Connection, what: str, exc: BaseException) -> ConcurrentWriteError:
    path = next((row[2] for row in con.execute("PRAGMA database_list") if row[1] == "main"), "?")
    return ConcurrentWriteError(
        f"{what}: another process kept {path!r} locked past the wait ({exc}); nothing was written.",
        fix="Retry the same call; if it keeps failing, look for a stuck process holding the workspace.",
        database=path, operation=what)


@contextmanager
def translate_busy(what: str) -> Iterator[None]:
    """Turn a busy/locked ``sqlite3.OperationalError`` escaping the block into ``ConcurrentWriteError``."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if not is_busy(exc):
            raise
        raise ConcurrentWriteError(
            f"{what}: another process kept a workspace database locked past the wait ({exc}); "
            "nothing of this step was committed.",
            fix="Retry the same call; if it keeps failing, look for a stuck process holding the workspace.",
            operation=what) from exc
