"""SQL evaluation of each check type over a DuckDB relation (aggregates only, no row loops)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable

import duckdb

from ..errors import SchemaError, ValidationError
from ._source import column_types, quote_ident, require_columns, require_utc_timestamp, ts_literal
from .checks import (AllowedValuesCheck, FreshnessCheck, NullRateCheck, QualityCheck, RangeCheck,
                     SqlInvariantCheck, UniqueKeyCheck, VolumeCheck)
from .report import CheckResult

__all__ = ["Context", "evaluate_check"]

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")


@dataclass(frozen=True)
class Context:
    rel: Any            # rows in [start, end)
    full: Any           # all rows (volume baselines)
    timestamp_column: str | None
    start: datetime | None
    end: datetime | None
    now: datetime | None
    consumers: tuple[str, ...]


def _q(rel: duckdb.DuckDBPyRelation, sql: str, check: QualityCheck) -> list[tuple]:
    try:
        return rel.query("t", sql).fetchall()
    except duckdb.Error as exc:
        raise ValidationError(
            f"check {check.id!r} ({check.kind}): DuckDB could not evaluate it: {exc}",
            fix="Fix the column names, types or expression of the check to match the data.",
            check_id=check.id,
        ) from exc


def _result(check: QualityCheck, ctx: Context, *, observed: float | None, n: int, fail: bool | None,
            message: str, **details: Any) -> CheckResult:
    if fail is None or n < check.min_rows:
        verdict = "inconclusive"
        if n < check.min_rows:
            message = f"only {n} row(s)/unit(s) to judge, fewer than min_rows={check.min_rows}. " + message
    else:
        verdict = "fail" if fail else "pass"
    consumers = tuple(dict.fromkeys((*check.consumers, *ctx.consumers)))
    return CheckResult(check_id=check.id, check_type=check.kind, severity=check.severity,
                       verdict=verdict, observed=observed, threshold=check.threshold, sample_size=int(n),
                       message=message, owner=check.owner, remediation=check.remediation,
                       consumers=consumers, details=details)


def _is_null(rel: duckdb.DuckDBPyRelation, column: str) -> str:
    col = quote_ident(column)
    kind = column_types(rel)[column]
    if kind in ("FLOAT", "DOUBLE", "REAL"):
        return f"({col} IS NULL OR isnan({col}))"
    return f"({col} IS NULL)"


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _null_rate(check: NullRateCheck, ctx: Context) -> CheckResult:
    require_columns(ctx.rel, [check.column, *check.segment_by], where=f"check {check.id!r}")
    null = _is_null(ctx.rel, check.column)
    segs = ", ".join(quote_ident(c) for c in check.segment_by)
    if not check.segment_by:
        (n, nulls), = _q(ctx.rel, f"SELECT count(*), count(*) FILTER (WHERE {null}) FROM t", check)
        rate = nulls / n if n else None
        return _result(check, ctx, observed=rate, n=n, fail=None if rate is None else rate > check.max_rate,
                       message=f"null rate of {check.column} is {_pct(rate)} (max {_pct(check.max_rate)}).")
    rows = _q(ctx.rel, f"SELECT {segs}, count(*) AS n, count(*) FILTER (WHERE {null}) AS nulls "
                       f"FROM t GROUP BY ALL ORDER BY nulls / n DESC, n DESC", check)
    k = len(check.segment_by)
    judged = [(r[:k], r[k], r[k + 1]) for r in rows if r[k] >= check.min_rows]
    skipped = len(rows) - len(judged)
    segments = [{"segment": dict(zip(check.segment_by, s)), "rows": n, "null_rate": nl / n}
                for s, n, nl in judged]
    if not judged:
        return _result(check, ctx, observed=None, n=0, fail=None, segments_skipped=skipped,
                       message=f"no segment of {check.segment_by} has >= {check.min_rows} rows.")
    worst = segments[0]
    failing = [s for s in segments if s["null_rate"] > check.max_rate]
    return _result(
        check, ctx, observed=worst["null_rate"], n=sum(s["rows"] for s in segments), fail=bool(failing),
        message=f"worst segment {worst['segment']} has null rate {_pct(worst['null_rate'])} of "
        f"{check.column} (max {_pct(check.max_rate)}); {len(failing)} of {len(segments)} segments over.",
        segments=segments[:50], segments_failing=len(failing), segments_skipped=skipped)


def _numeric(check: Any, ctx: Context) -> None:
    kind = column_types(ctx.rel)[check.column]
    if not kind.startswith(_NUMERIC):
        raise SchemaError(f"check {check.id!r}: column {check.column!r} is {kind}, not numeric.",
                          fix="Use RangeCheck on numeric columns; use AllowedValuesCheck for categories.")


def _range(check: RangeCheck, ctx: Context) -> CheckResult:
    require_columns(ctx.rel, [check.column], where=f"check {check.id!r}")
    _numeric(check, ctx)
    col = quote_ident(check.column)
    out = []
    if check.min_value is not None:
        out.append(f"{col} < {_literal(float(check.min_value))}")
    if check.max_value is not None:
        out.append(f"{col} > {_literal(float(check.max_value))}")
    (n, bad, lo, hi), = _q(ctx.rel, f"SELECT count(*), count(*) FILTER (WHERE {' OR '.join(out)}), "
                                    f"min({col}), max({col}) FROM t WHERE NOT {_is_null(ctx.rel, check.column)}",
                           check)
    rate = bad / n if n else None
    return _result(check, ctx, observed=rate, n=n, fail=None if rate is None else rate > check.max_violation_rate,
                   message=f"{bad} of {n} values of {check.column} outside [{check.min_value}, "
                   f"{check.max_value}] ({_pct(rate)}; max {_pct(check.max_violation_rate)}).",
                   violations=int(bad), observed_min=lo, observed_max=hi)


def _day(ctx: Context) -> str:
    return f"CAST(timezone('UTC', {quote_ident(ctx.timestamp_column)}) AS DATE)" if ctx.timestamp_column \
        else "NULL::DATE"


def _unique(check: UniqueKeyCheck, ctx: Context) -> CheckResult:
    require_columns(ctx.rel, list(check.columns), where=f"check {check.id!r}")
    keys = ", ".join(quote_ident(c) for c in check.columns)
    sql = (f"WITH g AS (SELECT {_day(ctx)} AS part, {keys}, count(*) AS c FROM t GROUP BY ALL), "
           f"p AS (SELECT part, sum(c) AS n, sum(c - 1) AS dups FROM g GROUP BY part) "
           f"SELECT part, n, dups FROM p ORDER BY dups DESC, part")
    rows = _q(ctx.rel, sql, check)
    n = int(sum(r[1] for r in rows))
    dups = int(sum(r[2] for r in rows))
    worst = [{"partition": None if r[0] is None else r[0].isoformat(), "rows": int(r[1]),
              "duplicates": int(r[2])} for r in rows if r[2] > 0][:20]
    return _result(check, ctx, observed=float(dups), n=n, fail=dups > check.max_duplicates if n else None,
                   message=f"{dups} duplicate row(s) of key {list(check.columns)} within "
                   f"{len(rows)} partition(s) (max {check.max_duplicates}).",
                   partitions=len(rows), worst_partitions=worst)


def _allowed(check: AllowedValuesCheck, ctx: Context) -> CheckResult:
    require_columns(ctx.rel, [check.column], where=f"check {check.id!r}")
    col = quote_ident(check.column)
    values = ", ".join(_literal(v) for v in check.allowed)
    rows = _q(ctx.rel, f"SELECT {col} AS v, count(*) AS c FROM t WHERE {col} IS NOT NULL "
                       f"AND {col} NOT IN ({values}) GROUP BY ALL ORDER BY c DESC, v LIMIT 5", check)
    (n, bad), = _q(ctx.rel, f"SELECT count({col}), count(*) FILTER (WHERE {col} NOT IN ({values})) "
                            f"FROM t", check)
    rate = bad / n if n else None
    return _result(check, ctx, observed=rate, n=n, fail=None if rate is None else rate > check.max_violation_rate,
                   message=f"{bad} of {n} values of {check.column} not in the allowed set "
                   f"({_pct(rate)}; max {_pct(check.max_violation_rate)}).",
                   unexpected=[{"value": v, "count": int(c)} for v, c in rows])


def _invariant(check: SqlInvariantCheck, ctx: Context) -> CheckResult:
    (n, bad), = _q(ctx.rel, f"SELECT count(*), count(*) FILTER (WHERE NOT coalesce(CAST(({check.expression}) "
                            f"AS BOOLEAN), false)) FROM t", check)
    rate = bad / n if n else None
    return _result(check, ctx, observed=rate, n=n, fail=None if rate is None else rate > check.max_violation_rate,
                   message=f"{bad} of {n} rows violate `{check.expression}` ({_pct(rate)}; "
                   f"max {_pct(check.max_violation_rate)}).", violations=int(bad))


def _needs_time(check: QualityCheck, ctx: Context, *, now: bool) -> None:
    if ctx.timestamp_column is None:
        raise ValidationError(f"check {check.id!r} ({check.kind}) needs a timestamp column.",
                              fix="Create the QualitySuite with timestamp_column='event_timestamp'.")
    require_utc_timestamp(ctx.rel, ctx.timestamp_column, where=f"check {check.id!r}")
    if now and ctx.now is None:
        raise ValidationError(f"check {check.id!r} (freshness) needs the current time.",
                              fix="Pass now=... or clock=... to QualitySuite.run().")


def _freshness(check: FreshnessCheck, ctx: Context) -> CheckResult:
    _needs_time(check, ctx, now=True)
    ts = quote_ident(ctx.timestamp_column)
    now = ts_literal(ctx.now)
    if check.entity_columns:
        require_columns(ctx.rel, list(check.entity_columns), where=f"check {check.id!r}")
        keys = ", ".join(quote_ident(c) for c in check.entity_columns)
        sql = (f"SELECT count(*), quantile_cont(epoch({now}) - epoch(last), {float(check.quantile)}) "
               f"FROM (SELECT {keys}, max({ts}) AS last FROM t WHERE {ts} IS NOT NULL GROUP BY ALL)")
        what = f"q{check.quantile:g} entity age"
    else:
        sql = f"SELECT count({ts}), epoch({now}) - epoch(max({ts})) FROM t"
        what = "age of the newest row"
    (n, age), = _q(ctx.rel, sql, check)
    limit = check.max_age.total_seconds()
    return _result(check, ctx, observed=age, n=n, fail=None if age is None else age > limit,
                   message=f"{what} is {_dur(age)} at {ctx.now.isoformat()} (max {_dur(limit)}).")


def _volume(check: VolumeCheck, ctx: Context) -> CheckResult:
    _needs_time(check, ctx, now=False)
    counts = {d: int(c) for d, c in _q(ctx.full, f"SELECT {_day(ctx)} AS d, count(*) FROM t "
                                                 f"WHERE {quote_ident(ctx.timestamp_column)} IS NOT NULL "
                                                 f"GROUP BY d", check)}
    first: date | None = ctx.start.date() if ctx.start else (min(counts) if counts else None)
    last: date | None = (ctx.end - timedelta(microseconds=1)).date() if ctx.end else \
        (max(counts) if counts else None)
    pairs = []
    day = first
    while first is not None and last is not None and day <= last:
        prev = counts.get(day - timedelta(days=1), 0)
        cur = counts.get(day, 0)
        if prev >= check.min_rows:
            pairs.append({"partition": day.isoformat(), "previous_rows": prev, "rows": cur,
                          "change": cur / prev - 1.0})
        day += timedelta(days=1)
    if not pairs:
        return _result(check, ctx, observed=None, n=0, fail=None,
                       message="no partition has a previous partition with rows to compare with.")
    worst = max(pairs, key=lambda p: abs(p["change"]))
    over = [p for p in pairs if abs(p["change"]) > check.max_change]
    return _result(check, ctx, observed=worst["change"], n=len(pairs), fail=bool(over),
                   message=f"largest row-count change {worst['change']:+.1%} on {worst['partition']} "
                   f"({worst['previous_rows']} -> {worst['rows']} rows; max +-{check.max_change:.0%}); "
                   f"{len(over)} of {len(pairs)} partitions over.", partitions=pairs[:100])


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _dur(seconds: float | None) -> str:
    return "n/a" if seconds is None else str(timedelta(seconds=round(float(seconds))))


_EVALUATORS: dict[type, Callable[[Any, Context], CheckResult]] = {
    NullRateCheck: _null_rate, RangeCheck: _range, UniqueKeyCheck: _unique,
    AllowedValuesCheck: _allowed, SqlInvariantCheck: _invariant, FreshnessCheck: _freshness,
    VolumeCheck: _volume,
}


def evaluate_check(check: QualityCheck, ctx: Context) -> CheckResult:
    """Run one check (dispatch on its type); no data at all is inconclusive."""
    if ctx.rel is None:
        return _result(check, ctx, observed=None, n=0, fail=None, message="no data files to check.")
    return _EVALUATORS[type(check)](check, ctx)
