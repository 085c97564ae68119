"""The aggregation itself, in DuckDB SQL: source files in, one row per (entity, day) out.

The computation is the same for a full refresh and for an incremental update; only the
set of files read and the set of output days differ. Rows are first reduced to daily
partials per entity (count, exact sum, min, max), then rolled over a dense per-entity
calendar with ``ROWS BETWEEN w-1 PRECEDING`` frames. Sums are accumulated in
``DECIMAL(38, 6)`` (values rounded to 1e-6), so a sum never depends on the order DuckDB
happens to add rows in: a full refresh and an incremental update give bit-identical
values. ``count_distinct`` is computed from distinct (entity, day, value) triples spread
over the days they cover.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ..errors import SchemaError
from ._spec import AggregateSpec
from ._source import day_from_number

__all__ = ["connect", "load_rows", "source_checks", "aggregate_days"]


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that reads and writes timestamps in UTC."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _q(name: str) -> str:
    return f'"{name}"'


def _columns(spec: AggregateSpec) -> list[str]:
    return list(dict.fromkeys(a.column for a in spec.aggregates))


def load_rows(con: duckdb.DuckDBPyConnection, spec: AggregateSpec,
              files: list[tuple[Path, date]]) -> None:
    """Read ``files`` (path, partition date) once into the temp table ``src``."""
    cols = _columns(spec)
    con.execute("DROP TABLE IF EXISTS src")
    con.execute("DROP TABLE IF EXISTS fmap")
    con.execute("CREATE TEMP TABLE fmap (filename VARCHAR, pday INTEGER)")
    if files:
        con.executemany("INSERT INTO fmap VALUES (?, ?)",
                        [(str(p), (d - date(1970, 1, 1)).days) for p, d in files])
    value_cols = ", ".join(f"r.{_q(c)} AS c{j}" for j, c in enumerate(cols))
    if not files:
        con.execute(
            "CREATE TEMP TABLE src (k BIGINT, ts TIMESTAMPTZ, ing TIMESTAMPTZ, d INTEGER, "
            "pday INTEGER, " + ", ".join(f"c{j} DOUBLE" for j in range(len(cols))) + ")")
        return
    file_list = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p, _ in files) + "]"
    con.execute(f"""
        CREATE TEMP TABLE src AS
        SELECT r.{_q(spec.entity_key)} AS k, r.{_q(spec.timestamp_field)} AS ts,
               r.{_q(spec.ingested_field)} AS ing,
               CAST(date_diff('day', DATE '1970-01-01', CAST(r.{_q(spec.timestamp_field)} AS DATE))
                    AS INTEGER) AS d,
               m.pday, {value_cols}
        FROM read_parquet({file_list}, filename = true, union_by_name = true) AS r
        JOIN fmap AS m ON r.filename = m.filename
    """)


def source_checks(con: duckdb.DuckDBPyConnection, spec: AggregateSpec, *,
                  watermark: datetime | None, previous_last_day: int | None) -> dict[str, int]:
    """Validate the rows just loaded and count new and late ones; raise on bad rows."""
    wm = "NULL" if watermark is None else f"TIMESTAMPTZ '{watermark.isoformat()}'"
    last = "NULL" if previous_last_day is None else str(int(previous_last_day))
    row = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE k IS NULL),
               count(*) FILTER (WHERE ts IS NULL), count(*) FILTER (WHERE d <> pday),
               count(*) FILTER (WHERE {wm} IS NULL OR ing > {wm}),
               count(*) FILTER (WHERE ({wm} IS NULL OR ing > {wm}) AND pday <= {last}),
               min(pday) FILTER (WHERE d <> pday)
        FROM src
    """).fetchone()
    total, null_keys, null_ts, misplaced, new_rows, late_rows, bad_day = row
    if null_keys:
        raise SchemaError(
            f"AggregateSpec {spec.name!r}: {null_keys} source row(s) have a null "
            f"{spec.entity_key!r}.", fix="Drop or repair rows without an entity key upstream.",
            column=spec.entity_key, count=null_keys)
    if null_ts:
        raise SchemaError(
            f"AggregateSpec {spec.name!r}: {null_ts} source row(s) have a null "
            f"{spec.timestamp_field!r}.", fix="Drop or repair rows without an event time upstream.",
            column=spec.timestamp_field, count=null_ts)
    if misplaced:
        raise SchemaError(
            f"AggregateSpec {spec.name!r}: {misplaced} row(s) sit in a partition that is not "
            f"their event date (first in date={day_from_number(bad_day).isoformat()}).",
            fix="Write rows into the folder of their UTC event date, e.g. with "
            "write_partitioned().",
            count=misplaced)
    return {"rows_loaded": int(total), "new_rows": int(new_rows), "late_rows": int(late_rows)}


def _agg_expr(function: str, j: int, w: str) -> str:
    if function == "count":
        return f"CAST(coalesce(sum(n{j}) OVER {w}, 0) AS BIGINT)"
    if function == "sum":
        return f"CAST(coalesce(sum(s{j}) OVER {w}, 0) AS DOUBLE)"
    if function == "mean":
        return f"CAST(sum(s{j}) OVER {w} AS DOUBLE) / nullif(sum(n{j}) OVER {w}, 0)"
    if function == "min":
        return f"min(mn{j}) OVER {w}"
    if function == "max":
        return f"max(mx{j}) OVER {w}"
    raise ValueError(f"no window expression for {function!r}")  # count_distinct is joined


def aggregate_days(con: duckdb.DuckDBPyConnection, spec: AggregateSpec, days: list[int],
                   created: datetime) -> pa.Table:
    """Rows for the output days ``days`` (day numbers) from the loaded ``src`` table.

    Returns an Arrow table ordered by day then entity with columns ``day`` (day number),
    the entity key, ``event_timestamp`` (day end), ``created_timestamp`` and one column per
    aggregate. An (entity, day) row exists when the entity has at least one source row in
    the spec's longest window ending at that day's end.
    """
    cols = _columns(spec)
    con.execute("DROP TABLE IF EXISTS target")
    con.execute("CREATE TEMP TABLE target (d INTEGER PRIMARY KEY)")
    if days:
        con.execute("INSERT INTO target SELECT unnest(?::INTEGER[])", [sorted(set(days))])
    last = max(days) if days else 0
    wmax = spec.max_window_days
    partials = ", ".join(
        f"count(c{j}) AS n{j}, sum(CAST(c{j} AS DECIMAL(38, 6))) AS s{j}, "
        f"CAST(min(c{j}) AS DOUBLE) AS mn{j}, CAST(max(c{j}) AS DOUBLE) AS mx{j}"
        for j in range(len(cols)))
    windows = sorted({a.window_days for a in spec.aggregates} | {wmax})
    window_defs = ", ".join(
        f"w{w} AS (PARTITION BY k ORDER BY d ROWS BETWEEN {w - 1} PRECEDING AND CURRENT ROW)"
        for w in windows)
    ctes, joins, selects = [], [], []
    for i, agg in enumerate(spec.aggregates):
        j = cols.index(agg.column)
        if agg.function == "count_distinct":
            ctes.append(f"""cd{i} AS (
                SELECT v.k, v.d + t.i AS d, count(DISTINCT v.val) AS v
                FROM (SELECT DISTINCT k, d, c{j} AS val FROM src WHERE c{j} IS NOT NULL) AS v
                CROSS JOIN range({agg.window_days}) AS t(i)
                WHERE v.d + t.i IN (SELECT d FROM target)
                GROUP BY 1, 2)""")
            joins.append(f"LEFT JOIN cd{i} ON cd{i}.k = win.k AND cd{i}.d = win.d")
            selects.append(f"CAST(coalesce(cd{i}.v, 0) AS BIGINT) AS {_q(agg.name)}")
        else:
            selects.append(f"win.a{i} AS {_q(agg.name)}")
    win_cols = ", ".join(f"{_agg_expr(a.function, cols.index(a.column), f'w{a.window_days}')}"
                         f" AS a{i}" for i, a in enumerate(spec.aggregates)
                         if a.function != "count_distinct")
    sql = f"""
    WITH daily AS (
        SELECT k, d, count(*) AS n_rows, {partials} FROM src GROUP BY k, d),
    span AS (SELECT k, min(d) AS lo, max(d) AS hi FROM daily GROUP BY k),
    grid AS (SELECT k, CAST(unnest(range(lo, least(hi + {wmax}, {last} + 1))) AS INTEGER) AS d
             FROM span WHERE lo <= {last}),
    dense AS (SELECT grid.k, grid.d, daily.* EXCLUDE (k, d)
              FROM grid LEFT JOIN daily ON daily.k = grid.k AND daily.d = grid.d),
    win AS (SELECT k, d, coalesce(sum(n_rows) OVER w{wmax}, 0) AS present
                   {", " + win_cols if win_cols else ""}
            FROM dense WINDOW {window_defs})
    {", " + ", ".join(ctes) if ctes else ""}
    SELECT win.d AS day, win.k AS {_q(spec.entity_key)},
           to_timestamp((CAST(win.d AS BIGINT) + 1) * 86400) AS event_timestamp,
           TIMESTAMPTZ '{created.isoformat()}' AS created_timestamp,
           {", ".join(selects)}
    FROM win {" ".join(joins)}
    WHERE win.present > 0 AND win.d IN (SELECT d FROM target)
    ORDER BY win.d, win.k
    """
    return con.sql(sql).to_arrow_table()
