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
from itertools import repeat
from operator import itemgetter
from pathlib import Path

from ..._sqlite import enable_wal
from ..definitions import FeatureView
from .base import OnlineRows, OnlineStore

__all__ = ["SqliteOnlineStore", "table_name"]

_SQLITE_TYPES = {"int64": "INTEGER", "float64": "REAL", "string": "TEXT", "bool": "INTEGER",
                 "timestamp": "INTEGER"}
_BATCH = 500
_first = itemgetter(0)


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
        self._readers: dict[tuple, _Reader] = {}

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

    def _reader(self, view: FeatureView, features: tuple[str, ...]) -> _Reader | None:
        """The cached read statements of ``(view, features)``; None while the table is missing."""
        cache_key = (view.name, view.version, features)
        reader = self._readers.get(cache_key)
        if reader is None:
            if not self._exists(view):
                return None  # not cached: a later materialization may create the table
            reader = self._readers[cache_key] = _Reader(view, features)
        return reader

    def read_rows(self, view: FeatureView, features: Sequence[str], keys: Sequence[tuple]) -> OnlineRows:
        features = features if type(features) is tuple else tuple(features)
        reader = self._reader(view, features)
        if reader is None or not keys:
            return [None] * len(keys), {f: [None] * len(keys) for f in features}
        con = self.connection
        nkeys = reader.nkeys
        if len(keys) == 1:  # the common serving call: one prepared point lookup
            key = keys[0]
            row = con.execute(reader.one, key).fetchone()
            if row is None or row[:nkeys] != tuple(key):  # the str '7' never matches the int key 7
                return [None], {f: [None] for f in features}
            return [row[nkeys]], {f: [v] for f, v in zip(features, row[nkeys + 1:])}
        missing = reader.missing
        if nkeys == 1:  # duplicates may repeat in an IN list: SQLite returns each row once
            flat = [k[0] for k in keys]
            found = {}
            for start in range(0, len(flat), _BATCH):
                chunk = flat[start:start + _BATCH]
                rows = con.execute(reader.many(len(chunk)), chunk).fetchall()
                found.update(zip(map(_first, rows), rows))
            got = list(map(found.get, flat, repeat(missing, len(flat))))
        else:
            unique = list(dict.fromkeys(keys))
            found = {}
            for start in range(0, len(unique), _BATCH):
                chunk = unique[start:start + _BATCH]
                params = [v for key in chunk for v in key]
                found.update({row[:nkeys]: row for row in con.execute(reader.many(len(chunk)), params)})
            got = [found.get(k, missing) for k in keys]
        columns = list(zip(*got))
        return list(columns[nkeys]), {f: list(col) for f, col in zip(features, columns[nkeys + 1:])}

    def count(self, view: FeatureView) -> int:
        if not self._exists(view):
            return 0
        return self.connection.execute(f"SELECT COUNT(*) FROM {_q(table_name(view))}").fetchone()[0]


class _Reader:
    """Read statements of one ``(view, features)`` pair: the point lookup and ``IN`` lists by size."""

    __slots__ = ("nkeys", "one", "missing", "_keys", "_head", "_many")

    def __init__(self, view: FeatureView, features: tuple[str, ...]) -> None:
        keys = view.join_keys
        self.nkeys = len(keys)
        self._keys = keys
        cols = ", ".join([*map(_q, keys), "__event_ts", *map(_q, features)])
        self._head = f"SELECT {cols} FROM {_q(table_name(view))} WHERE "
        self.one = self._head + " AND ".join(f"{_q(k)} = ?" for k in keys)
        self.missing = (None,) * (len(keys) + 1 + len(features))  # the row of an unknown key
        self._many: dict[int, str] = {}

    def many(self, n: int) -> str:
        sql = self._many.get(n)
        if sql is None:
            if self.nkeys == 1:
                where = f"{_q(self._keys[0])} IN ({', '.join('?' * n)})"
            else:
                one = "(" + ", ".join("?" * self.nkeys) + ")"
                where = f"({', '.join(map(_q, self._keys))}) IN (VALUES {', '.join([one] * n)})"
            sql = self._many[n] = self._head + where
        return sql
