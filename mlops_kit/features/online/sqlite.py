"""The default online store: SQLite, one file per workspace (``workspace.online_db``).

``SqliteOnlineStore`` keeps one table per view version (``fv_<view>_v<version>``) with
typed columns, the join key(s) as PRIMARY KEY, the winning row's event timestamp
(``__event_ts``, microseconds since the epoch) and created timestamp (``__created_ts``).
Writes are guarded upserts (see ``base``; Feast's SQLite store is last-write-wins, this one
never lets an older row overwrite a newer one). Reads are keyed lookups (one
``WHERE key IN (...)`` per batch) over one cached connection in WAL mode.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..._sqlite import enable_wal
from ..definitions import FeatureView
from .base import OnlineRows, OnlineStore

__all__ = ["SqliteOnlineStore", "table_name"]

_SQLITE_TYPES = {"int64": "INTEGER", "float64": "REAL", "string": "TEXT", "bool": "INTEGER",
                 "timestamp": "INTEGER"}
_BATCH = 500


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_name(view: FeatureView) -> str:
    return f"fv_{view.name}_v{view.version}"


class SqliteOnlineStore(OnlineStore):
    """The default online store: one SQLite file (``workspace.online_db``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._con: sqlite3.Connection | None = None
        self._tables: set[str] = set()
        self._read_sql: dict[tuple, str] = {}

    @property
    def connection(self) -> sqlite3.Connection:
        if self._con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                  check_same_thread=False, cached_statements=512)
            enable_wal(con)
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA cache_size=-65536")
            self._con = con
        return self._con

    def describe(self) -> dict[str, object]:
        return {"kind": "sqlite", "path": str(self.path)}

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _exists(self, view: FeatureView) -> bool:
        name = table_name(view)
        if name in self._tables:
            return True
        found = self.connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        if found:
            self._tables.add(name)
        return bool(found)

    def _ensure_table(self, view: FeatureView, key_dtypes: dict[str, str]) -> None:
        if self._exists(view):
            return
        cols = [f"{_q(k)} {_SQLITE_TYPES[key_dtypes[k]]} NOT NULL" for k in view.join_keys]
        cols += ["__event_ts INTEGER NOT NULL", "__created_ts INTEGER NOT NULL"]
        cols += [f"{_q(f.name)} {_SQLITE_TYPES[f.dtype]}" for f in view.features]
        pk = ", ".join(_q(k) for k in view.join_keys)
        if len(view.join_keys) == 1 and key_dtypes[view.join_keys[0]] == "int64":
            # an integer key becomes the rowid itself: the fastest keyed table SQLite has
            cols[0] = f"{_q(view.join_keys[0])} INTEGER PRIMARY KEY"
            body = f"({', '.join(cols)})"
        else:
            body = f"({', '.join(cols)}, PRIMARY KEY ({pk})) WITHOUT ROWID"
        self.connection.execute(f"CREATE TABLE IF NOT EXISTS {_q(table_name(view))} {body}")
        self._tables.add(table_name(view))

    def write_rows(self, view: FeatureView, key_dtypes: dict[str, str], rows: Iterable[tuple]) -> int:
        con = self.connection
        self._ensure_table(view, key_dtypes)
        names = list(view.join_keys) + ["__event_ts", "__created_ts"] + list(view.feature_names)
        table = _q(table_name(view))
        pk = ", ".join(_q(k) for k in view.join_keys)
        updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in names[len(view.join_keys):])
        sql = (f"INSERT INTO {table} ({', '.join(map(_q, names))}) "
               f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT ({pk}) DO UPDATE SET {updates} "
               f"WHERE excluded.__event_ts > {table}.__event_ts OR (excluded.__event_ts = "
               f"{table}.__event_ts AND excluded.__created_ts >= {table}.__created_ts)")
        before = con.total_changes
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany(sql, rows)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return con.total_changes - before

    def _sql(self, view: FeatureView, features: tuple[str, ...], n: int) -> str:
        cache_key = (view.name, view.version, features, n)
        sql = self._read_sql.get(cache_key)
        if sql is None:
            keys = view.join_keys
            cols = ", ".join([*map(_q, keys), "__event_ts", *map(_q, features)])
            if len(keys) == 1:
                where = f"{_q(keys[0])} IN ({', '.join('?' * n)})" if n > 1 else f"{_q(keys[0])} = ?"
            else:
                one = "(" + ", ".join("?" * len(keys)) + ")"
                where = f"({', '.join(map(_q, keys))}) IN (VALUES {', '.join([one] * n)})"
            sql = f"SELECT {cols} FROM {_q(table_name(view))} WHERE {where}"
            self._read_sql[cache_key] = sql
        return sql

    def read_rows(self, view: FeatureView, features: Sequence[str], keys: Sequence[tuple]) -> OnlineRows:
        features = tuple(features)
        nkeys = len(view.join_keys)
        found: dict[tuple, tuple] = {}
        if self._exists(view):
            unique = list(dict.fromkeys(keys))
            con = self.connection
            for start in range(0, len(unique), _BATCH):
                chunk = unique[start:start + _BATCH]
                params = [v for key in chunk for v in key] if nkeys > 1 else [k[0] for k in chunk]
                for row in con.execute(self._sql(view, features, len(chunk)), params):
                    found[row[:nkeys]] = row[nkeys:]
        ts: list[int | None] = []
        values: dict[str, list[object]] = {f: [] for f in features}
        columns = [values[f] for f in features]
        for key in keys:
            row = found.get(key)
            if row is None:
                ts.append(None)
                for col in columns:
                    col.append(None)
            else:
                ts.append(row[0])
                for col, value in zip(columns, row[1:]):
                    col.append(value)
        return ts, values

    def count(self, view: FeatureView) -> int:
        if not self._exists(view):
            return 0
        return self.connection.execute(f"SELECT COUNT(*) FROM {_q(table_name(view))}").fetchone()[0]
