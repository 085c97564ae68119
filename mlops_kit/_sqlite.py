"""SQLite helpers shared by the stores: switching a database file to WAL safely.

``PRAGMA journal_mode = WAL`` needs an exclusive lock while the file is converted, and SQLite
answers ``database is locked`` at once (the busy handler does not apply) when another
connection is converting or writing the same new file at that moment. Once a file is in WAL
mode the setting persists, so retrying for a short, bounded time is enough.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["enable_wal"]


def enable_wal(con: sqlite3.Connection, *, attempts: int = 200, pause_s: float = 0.05) -> None:
    """Put ``con``'s database in WAL mode, retrying while another connection holds the lock."""
    for attempt in range(attempts):
        try:
            con.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(pause_s)
