"""Validation of a backfill's shadow against the live version, inside DuckDB.

Inside the window ``[start, end)``: row counts; null rate per feature; value differences per
feature over rows matched on (join keys, event timestamp), each side reduced to its winning
row per pair (latest created timestamp, then ingest order); rows present on one side only.
The leakage check joins a seeded sample of a label frame to the shadow point-in-time (the
latest shadow row with ``feature_ts <= as_of`` and within the TTL, computed here with its own
SQL) and counts joined rows whose feature timestamp is after the label time (blocking) and,
for views with a created column, rows created after the label time (reported).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from .._time import ensure_utc_series
from ..errors import SchemaError, ValidationError
from .backfill_records import BackfillThresholds, ValidationCheck
from .definitions import FeatureView
from .pit import SEQ_COLUMN, files_sql, q, ts_sql
from .validation import key_dtype_of

__all__ = ["prepare_labels", "validation_checks"]

_SQL = {"int64": "BIGINT", "float64": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN",
        "timestamp": "TIMESTAMPTZ"}


def prepare_labels(view: FeatureView, labels: object, key_dtypes: dict[str, str], as_of: str,
                   label_time: str) -> pd.DataFrame:
    """Check the label frame (join keys, ``as_of`` and ``label_time`` columns, tz-aware)."""
    if not isinstance(labels, pd.DataFrame):
        raise ValidationError(f"backfill of {view.name!r}: labels must be a pandas DataFrame, got "
                              f"{type(labels).__name__}.",
                              fix=f"Pass a frame with {list(view.join_keys) + [as_of, label_time]}.")
    needed = list(view.join_keys) + [as_of, label_time]
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise SchemaError(f"backfill of {view.name!r}: labels are missing columns {missing}.",
                          fix=f"Provide {needed} (as-of time of each training row and its label time).",
                          missing=missing)
    out = pd.DataFrame(index=range(len(labels)))
    for key in view.join_keys:
        found, want = key_dtype_of(labels[key]), key_dtypes.get(key)
        if found is None or (want is not None and found != want):
            raise SchemaError(f"backfill of {view.name!r}: labels column {key!r} has dtype "
                              f"{labels[key].dtype}, expected {want or 'int64 or string'}.",
                              fix=f"Cast it: labels[{key!r}] = labels[{key!r}].astype('{want or 'int64'}').")
        out[key] = labels[key].to_numpy()
    for col, name in ((as_of, "__asof"), (label_time, "__label_ts")):
        series = ensure_utc_series(labels[col], name=f"labels[{col!r}]").reset_index(drop=True)
        if series.isna().any():
            raise SchemaError(f"backfill of {view.name!r}: labels column {col!r} has null values.",
                              fix="Drop or fill those rows first.")
        out[name] = series
    return out


def _sample(labels: pd.DataFrame, start_us: int, end_us: int, size: int, seed: int) -> pd.DataFrame:
    asof = labels["__asof"].astype("int64").to_numpy()
    candidates = np.flatnonzero((asof >= start_us) & (asof < end_us))
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(candidates, size=min(size, len(candidates)), replace=False))
    out = labels.iloc[take].reset_index(drop=True)
    out["__row"] = np.arange(len(out), dtype=np.int64)
    return out


def _source(view: FeatureView, files: Sequence[Path], key_dtypes: dict[str, str], where: str) -> str:
    created = view.created_timestamp_column
    cols = [q(k) for k in view.join_keys] + [f"{q(view.timestamp_field)} AS __ts",
                                             f"{q(created)} AS __cr" if created else "NULL::TIMESTAMPTZ AS __cr",
                                             SEQ_COLUMN]
    cols += [f"{q(f.name)} AS __f{i}" for i, f in enumerate(view.features)]
    if files:
        return f"SELECT {', '.join(cols)} FROM read_parquet({files_sql(files)}) WHERE {where}"
    empty = [f"NULL::{_SQL[key_dtypes.get(k, 'int64')]} AS {q(k)}" for k in view.join_keys]
    empty += ["NULL::TIMESTAMPTZ AS __ts", "NULL::TIMESTAMPTZ AS __cr", f"NULL::BIGINT AS {SEQ_COLUMN}"]
    empty += [f"NULL::{_SQL[f.dtype]} AS __f{i}" for i, f in enumerate(view.features)]
    return f"SELECT {', '.join(empty)} WHERE false"


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def validation_checks(con: duckdb.DuckDBPyConnection, view: FeatureView, *, live_files: Sequence[Path],
                      shadow_files: Sequence[Path], shadow_all: Sequence[Path], key_dtypes: dict[str, str],
                      start_us: int, end_us: int, thresholds: BackfillThresholds,
                      labels: pd.DataFrame | None, sample_size: int, seed: int) -> list[ValidationCheck]:
    """Every check of the report, in a fixed order."""
    ts = q("__ts")
    where = (f"{q(view.timestamp_field)} >= {ts_sql(start_us)} AND "
             f"{q(view.timestamp_field)} < {ts_sql(end_us)}")
    feats = view.features
    packed = "{" + ", ".join(f"'f{i}': __f{i}" for i in range(len(feats))) + "}"
    keys = ", ".join(q(k) for k in view.join_keys)
    sides = {side: _source(view, files, key_dtypes, where)
             for side, files in (("l", live_files), ("s", shadow_files))}
    counts = {}
    for side, sql in sides.items():
        counts[side] = con.sql(f"SELECT count(*), {', '.join(f'count(__f{i})' for i in range(len(feats)))} "
                               f"FROM ({sql})").fetchall()[0]
    dedup = {side: f"SELECT {keys}, {ts}, arg_max({packed}, {{'c': __cr, 's': {SEQ_COLUMN}}}) AS v "
                   f"FROM ({sql}) GROUP BY ALL" for side, sql in sides.items()}
    on = " AND ".join([f"l.{q(k)} = s.{q(k)}" for k in view.join_keys] + ["l.__ts = s.__ts"])
    both = "l.__ts IS NOT NULL AND s.__ts IS NOT NULL"
    parts = [f"count(*) FILTER (WHERE {both})", "count(*) FILTER (WHERE l.__ts IS NULL)",
             "count(*) FILTER (WHERE s.__ts IS NULL)"]
    for i, f in enumerate(feats):
        a, b = f"l.v.f{i}", f"s.v.f{i}"
        if f.dtype in ("int64", "float64"):
            tol = f"{thresholds.tolerance(f.name)!r} + {thresholds.rtol!r} * abs(CAST({a} AS DOUBLE))"
            differs = f"(({a} IS NULL) <> ({b} IS NULL) OR abs(CAST({b} AS DOUBLE) - CAST({a} AS DOUBLE)) > {tol})"
            parts.append(f"max(abs(CAST({b} AS DOUBLE) - CAST({a} AS DOUBLE))) FILTER (WHERE {both})")
        else:
            differs = f"({a} IS DISTINCT FROM {b})"
            parts.append("NULL")
        parts.append(f"count(*) FILTER (WHERE {both} AND {differs})")
    diff = con.sql(f"WITH l AS ({dedup['l']}), s AS ({dedup['s']}) SELECT {', '.join(parts)} "
                   f"FROM l FULL OUTER JOIN s ON {on}").fetchall()[0]
    matched, only_shadow, only_live = diff[0], diff[1], diff[2]
    n_live, n_shadow = counts["l"][0], counts["s"][0]
    change = 0.0 if n_live == n_shadow else (math.inf if n_live == 0 else abs(n_shadow - n_live) / n_live)
    t = thresholds
    checks = [ValidationCheck(check="row_count", feature=None, observed=change,
                              threshold=t.max_row_count_change, passed=change <= t.max_row_count_change,
                              detail={"live_rows": n_live, "shadow_rows": n_shadow})]
    pairs = matched + only_live + only_shadow
    unmatched = 0.0 if pairs == 0 else (only_live + only_shadow) / pairs
    checks.append(ValidationCheck(check="unmatched_rows", feature=None, observed=unmatched,
                                  threshold=t.max_unmatched_share, passed=unmatched <= t.max_unmatched_share,
                                  detail={"matched": matched, "only_live": only_live,
                                          "only_shadow": only_shadow}))
    for i, f in enumerate(feats):
        rl = _rate(n_live - counts["l"][1 + i], n_live)
        rs = _rate(n_shadow - counts["s"][1 + i], n_shadow)
        obs = None if rl is None or rs is None else abs(rs - rl)
        checks.append(ValidationCheck(check="null_rate", feature=f.name, observed=obs,
                                      threshold=t.max_null_rate_change,
                                      passed=None if obs is None else obs <= t.max_null_rate_change,
                                      detail={"live": rl, "shadow": rs}))
    for i, f in enumerate(feats):
        changed, max_abs = diff[4 + 2 * i], diff[3 + 2 * i]
        share = None if matched == 0 else changed / matched
        checks.append(ValidationCheck(
            check="value_diff", feature=f.name, observed=share, threshold=t.max_changed_share,
            passed=None if share is None else share <= t.max_changed_share,
            detail={"changed": changed, "matched": matched, "tolerance": t.tolerance(f.name),
                    "max_abs_diff": None if max_abs is None else float(max_abs)}))
    checks.append(_leakage(con, view, shadow_all, key_dtypes, start_us, end_us, labels, sample_size, seed))
    return checks


def _leakage(con: duckdb.DuckDBPyConnection, view: FeatureView, files: Sequence[Path],
             key_dtypes: dict[str, str], start_us: int, end_us: int, labels: pd.DataFrame | None,
             sample_size: int, seed: int) -> ValidationCheck:
    if labels is None:
        return ValidationCheck(check="leakage", feature=None, observed=None, threshold=0.0, passed=None,
                               detail={"reason": "no labels given: pass labels=... to run it"})
    sample = _sample(labels, start_us, end_us, sample_size, seed)
    src = _source(view, files, key_dtypes, "true")
    on = " AND ".join(f"e.{q(k)} = s.{q(k)}" for k in view.join_keys)
    lower = ""
    if view.ttl_active:
        micros = view.ttl // view.ttl.resolution  # type: ignore[union-attr]
        lower = f" AND s.__ts >= e.__asof - to_microseconds(CAST({micros} AS BIGINT))"
    table = pa.Table.from_pandas(sample, preserve_index=False)
    con.register("__labels", table)
    try:
        row = con.sql(
            f"WITH s AS ({src}), w AS (SELECT e.__row, arg_max({{'ts': s.__ts, 'cr': s.__cr}}, "
            f"{{'t': s.__ts, 'c': s.__cr, 'q': s.{SEQ_COLUMN}}}) AS w FROM __labels e JOIN s ON {on} "
            f"AND s.__ts <= e.__asof{lower} GROUP BY e.__row) "
            "SELECT count(*), count(w.w), count(*) FILTER (WHERE w.w.ts > e.__label_ts), "
            "count(*) FILTER (WHERE w.w.cr > e.__label_ts), "
            "count(*) FILTER (WHERE e.__asof > e.__label_ts) "
            "FROM __labels e LEFT JOIN w ON w.__row = e.__row").fetchall()[0]
    finally:
        con.unregister("__labels")
    sampled, joined, future, late, asof_after = row
    return ValidationCheck(check="leakage", feature=None, observed=float(future), threshold=0.0,
                           passed=future == 0,
                           detail={"sampled": sampled, "joined": joined, "feature_after_label": future,
                                   "created_after_label": late if view.created_timestamp_column else None,
                                   "as_of_after_label": asof_after, "seed": seed})
