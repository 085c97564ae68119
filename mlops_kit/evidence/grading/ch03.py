"""Chapter 3 criteria that recompute results from the saved samples.

Each criterion re-derives its verdict from raw artifacts with code written here (pandas and
plain loops), never with ``mlops_kit.quality``/``aggregates``/``governance``, so that a bug
or an edit in the kit cannot make the grader agree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .base import Grade, GradingContext, MissingEvidence, criterion
from .recompute import psi_from_samples

__all__ = ["grade_psi_recomputed", "grade_quality_gate", "grade_backfill_idempotent", "grade_cost_report",
           "grade_access_log", "grade_drift_responses", "blocking_failures"]


@criterion("C3.1")
def grade_psi_recomputed(ctx: GradingContext) -> Grade:
    """Recompute every PSI stated in ``ch03/drift_psi.json`` from the saved samples.

    ``drift_psi.json`` holds ``{"reference": "<file>", "current": "<file>", "features":
    [{"column": str, "psi": float, "bins": int}, ...]}``; the two files are tables in
    ``ch03/`` with those columns. Level 4: every stated PSI is within 0.0005 of the
    recomputed one (rounding allowed); 2: within 10 %; 0: otherwise or missing.
    """
    claim = ctx.read_json("ch03/drift_psi.json")
    try:
        ref = ctx.read_table(f"ch03/{claim['reference']}")
        cur = ctx.read_table(f"ch03/{claim['current']}")
        features = list(claim["features"])
    except (KeyError, TypeError) as exc:
        raise MissingEvidence(f"drift_psi.json lacks {exc}") from exc
    if not features:
        return Grade(0, "drift_psi.json states no PSI")
    worst, notes = 4, []
    for item in features:
        column, stated = item.get("column"), item.get("psi")
        if column not in ref.columns or column not in cur.columns:
            return Grade(0, f"column {column!r} is not in both saved samples")
        if not isinstance(stated, (int, float)) or isinstance(stated, bool) or not math.isfinite(stated):
            return Grade(0, f"stated PSI for {column!r} is not a number: {stated!r}")
        value, _ = psi_from_samples(ref[column], cur[column], bins=int(item.get("bins", 10)))
        gap = abs(value - stated)
        level = 4 if gap <= 5e-4 else 2 if gap <= 0.1 * max(abs(value), 1e-9) else 0
        worst = min(worst, level)
        notes.append(f"{column}: stated {stated:.4f}, recomputed {value:.4f}")
    return Grade(worst, "; ".join(notes))


# -- C3.2: the quality gate ----------------------------------------------------------------------
def _missing(series: pd.Series) -> pd.Series:
    return series.isna()


def _check_fails(check: dict[str, Any], df: pd.DataFrame, timestamp_column: str | None) -> bool | None:
    """Independent verdict of one saved check on ``df``: True fails, False passes, None unsupported."""
    kind = check.get("type")
    min_rows = int(check.get("min_rows", 1))
    if kind == "null_rate":
        col, segs, limit = check["column"], list(check.get("segment_by") or []), float(check["max_rate"])
        groups = [df] if not segs else [g for _, g in df.groupby(segs, dropna=False)]
        judged = [(len(g), int(_missing(g[col]).sum())) for g in groups if len(g) >= min_rows]
        if not judged:
            return None
        return any(nulls / n > limit for n, nulls in judged)
    if kind in ("range", "allowed_values"):
        values = df[check["column"]][~_missing(df[check["column"]])]
        if len(values) < min_rows:
            return None
        if kind == "range":
            lo, hi = check.get("min_value"), check.get("max_value")
            bad = sum(1 for v in values.tolist() if (lo is not None and v < lo) or (hi is not None and v > hi))
        else:
            allowed = set(check["allowed"])
            bad = sum(1 for v in values.tolist() if v not in allowed)
        return bad / len(values) > float(check.get("max_violation_rate", 0.0))
    if kind == "unique_key":
        cols = list(check["columns"])
        if len(df) < min_rows:
            return None
        day = (pd.to_datetime(df[timestamp_column], utc=True).dt.strftime("%Y-%m-%d")
               if timestamp_column else pd.Series("", index=df.index))
        seen: dict[tuple, int] = {}
        for key in zip(day.tolist(), *(df[c].tolist() for c in cols)):
            seen[key] = seen.get(key, 0) + 1
        return sum(c - 1 for c in seen.values()) > int(check.get("max_duplicates", 0))
    if kind == "sql_invariant":
        import duckdb

        con = duckdb.connect()
        con.register("t", df)
        n, bad = con.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT coalesce(CAST(({check['expression']}) "
                             "AS BOOLEAN), false)) FROM t").fetchone()
        con.close()
        return None if n < min_rows else bad / n > float(check.get("max_violation_rate", 0.0))
    return None


def blocking_failures(suite: dict[str, Any], df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(failing block-check ids, block-check ids this grader cannot recompute)`` for ``df``."""
    failing, unsupported = [], []
    for check in suite.get("checks", []):
        if check.get("severity") != "block":
            continue
        verdict = _check_fails(check, df, suite.get("timestamp_column"))
        if verdict is None:
            unsupported.append(check.get("id"))
        elif verdict:
            failing.append(check.get("id"))
    return sorted(failing), sorted(unsupported)


@criterion("C3.2")
def grade_quality_gate(ctx: GradingContext) -> Grade:
    """Re-run the suite's blocking checks on the saved broken and fixed deliveries.

    ``ch03/quality_gate.json``: ``{"suite": QualitySuite.to_dict(), "broken_sample": file,
    "fixed_sample": file, "blocking": [ids the gate listed], "fixed_blocking": [ids]}``.
    Level 4: at least two blocking failures, exactly the stated ones, recomputed on the broken
    sample, and none on the fixed one; 2: the broken sample's failures match but the fixed
    sample is missing or still blocked; 0: otherwise.
    """
    claim = ctx.read_json("ch03/quality_gate.json")
    try:
        suite, stated = claim["suite"], sorted(claim["blocking"])
        broken = ctx.read_table(f"ch03/{claim['broken_sample']}")
    except (KeyError, TypeError) as exc:
        raise MissingEvidence(f"quality_gate.json lacks {exc}") from exc
    try:
        found, unsupported = blocking_failures(suite, broken)
    except Exception as exc:  # a malformed suite or sample: graded 0, never a grader crash
        return Grade(0, f"the saved suite could not be re-run on the sample ({exc})")
    if found != stated or len(found) < 2:
        return Grade(0, f"recomputed blocking failures {found} but the gate listed {stated}")
    note = f"broken delivery: {len(found)} blocking failures recomputed ({', '.join(found)})"
    if unsupported:
        note += f"; not recomputable: {unsupported}"
    try:
        fixed = ctx.read_table(f"ch03/{claim['fixed_sample']}")
    except (KeyError, MissingEvidence):
        return Grade(2, note + "; no fixed sample saved")
    fixed_found, _ = blocking_failures(suite, fixed)
    if fixed_found or claim.get("fixed_blocking"):
        return Grade(2, note + f"; the fixed delivery still fails {fixed_found or claim.get('fixed_blocking')}")
    return Grade(2 if unsupported else 4, note + "; the fixed delivery passes every blocking check")


# -- C3.3: backfill idempotency ------------------------------------------------------------------
@criterion("C3.3")
def grade_backfill_idempotent(ctx: GradingContext) -> Grade:
    """Hash the saved copies of one backfilled partition file after the failed run and the retry.

    ``ch03/backfill.json``: ``{"partition": date, "first_run_file": file, "retry_file": file,
    "first_run_sha256": hex, "retry_sha256": hex, "hashes_equal": bool}``; the two files are
    byte copies of the partition's Parquet file taken after each run. Level 4: the sha256 of
    both copies, computed here, are equal and equal the hashes the lineage records state;
    2: the copies are equal but a stated hash disagrees; 0: the copies differ or are missing.
    """
    import hashlib

    claim = ctx.read_json("ch03/backfill.json")
    try:
        files = [ctx.path(f"ch03/{claim[k]}") for k in ("first_run_file", "retry_file")]
        stated = [claim["first_run_sha256"], claim["retry_sha256"]]
    except (KeyError, TypeError) as exc:
        raise MissingEvidence(f"backfill.json lacks {exc}") from exc
    digests = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    if digests[0] != digests[1] or files[0].stat().st_size == 0:
        return Grade(0, f"partition {claim.get('partition')}: the copies differ after the retry "
                        f"({digests[0][:12]} vs {digests[1][:12]})")
    if stated != digests or claim.get("hashes_equal") is not True:
        return Grade(2, f"partition {claim.get('partition')}: copies identical, but the stated hashes "
                        f"{[str(h)[:12] for h in stated]} are not {digests[0][:12]}")
    return Grade(4, f"partition {claim.get('partition')}: byte-identical after the retry "
                    f"(sha256 {digests[0][:12]}, as the lineage records state)")


# -- C3.4: full refresh vs incremental -----------------------------------------------------------
@criterion("C3.4")
def grade_cost_report(ctx: GradingContext) -> Grade:
    """Check the cost comparison from its saved report, inventory and output samples.

    ``ch03/cost_report.json``: ``{"modes": [{"mode", "rows_scanned", ...}], "rows_scanned_ratio":
    incremental / full, "values_identical": bool, "full_sample": file, "incremental_sample": file,
    "inventory": file}``. Level 4: the two output samples are equal value by value (compared
    here), the full refresh scanned exactly the inventory's rows, and the stated ratio equals
    incremental / full rows scanned and is below 1; 2: values equal but a number disagrees;
    0: otherwise.
    """
    claim = ctx.read_json("ch03/cost_report.json")
    try:
        modes = {m["mode"]: m for m in claim["modes"]}
        full, inc = modes["full_refresh"], modes["incremental"]
        ratio = float(claim["rows_scanned_ratio"])
        a = ctx.read_table(f"ch03/{claim['full_sample']}")
        b = ctx.read_table(f"ch03/{claim['incremental_sample']}")
        inventory = ctx.read_table(f"ch03/{claim['inventory']}")
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingEvidence(f"cost_report.json lacks {exc}") from exc
    keys = [c for c in ("user_id", "event_timestamp") if c in a.columns]
    same = (not a.empty and list(a.columns) == list(b.columns) and len(a) == len(b)
            and all(np.array_equal(x.to_numpy(), y.to_numpy())
                    for x, y in ((a.sort_values(keys, ignore_index=True)[c], b.sort_values(keys, ignore_index=True)[c])
                                 for c in a.columns)))
    if not same or claim.get("values_identical") is not True:
        return Grade(0, "the full and incremental output samples differ (or the chapter says they do)")
    problems = []
    if int(full["rows_scanned"]) != int(inventory["rows"].sum()):
        problems.append(f"full refresh scanned {full['rows_scanned']} rows, the inventory holds "
                        f"{int(inventory['rows'].sum())}")
    recomputed = int(inc["rows_scanned"]) / max(int(full["rows_scanned"]), 1)
    if abs(recomputed - ratio) > 5e-3 or not recomputed < 1:
        problems.append(f"stated ratio {ratio} but incremental/full = {recomputed:.4f}")
    if problems:
        return Grade(2, "outputs identical; " + "; ".join(problems))
    return Grade(4, f"outputs identical on {len(a)} sampled rows; incremental scanned {recomputed:.1%} of the "
                    "full refresh's rows")


# -- C3.5: audited access ------------------------------------------------------------------------
@criterion("C3.5")
def grade_access_log(ctx: GradingContext) -> Grade:
    """Rebuild who could read the restricted view from the saved grants and check the read log.

    ``ch03/access_log.csv`` (the read log: at, principal, view, sensitivity, outcome, ...) and
    ``ch03/access_events.json`` (grants and revokes: action, view, subject_type, subject, at).
    Level 4: a denied read of a restricted view is logged, a later allowed read of it by a
    principal holding a grant at that time is logged, and no allowed read of a restricted view
    lacks a grant; 2: the denial is logged but no granted read follows; 0: otherwise.
    """
    log = ctx.read_table("ch03/access_log.csv")
    events = ctx.read_json("ch03/access_events.json")
    if not {"at", "principal", "view", "sensitivity", "outcome"} <= set(log.columns):
        return Grade(0, "access_log.csv lacks the read-log columns")
    restricted = log[log["sensitivity"] == "restricted"]

    def granted(principal: Any, view: str, at: str) -> bool:
        held = False
        for event in sorted(events, key=lambda e: e.get("at", "")):
            if event.get("at", "") > at or event.get("view") != view or event.get("subject_type") != "principal" \
                    or event.get("subject") != principal:
                continue
            held = {"grant": True, "revoke": False}.get(event.get("action"), held)
        return held

    denied = restricted[restricted["outcome"] == "denied"]
    if denied.empty:
        return Grade(0, "no denied read of a restricted view is logged")
    allowed = restricted[restricted["outcome"] == "allowed"]
    unjustified = [f"{r.principal} read {r.view} at {r.at}" for r in allowed.itertuples()
                   if not isinstance(r.principal, str) or not granted(r.principal, r.view, r.at)]
    if unjustified:
        return Grade(0, "allowed restricted read(s) without a grant: " + "; ".join(unjustified[:3]))
    first_denied = denied.iloc[0]
    later = allowed[(allowed["view"] == first_denied["view"]) & (allowed["at"] >= first_denied["at"])]
    if later.empty:
        return Grade(2, f"denied read of {first_denied['view']} logged; no granted read follows")
    return Grade(4, f"{len(denied)} denied and {len(allowed)} granted read(s) of restricted views; every "
                    "allowed read is covered by a grant")


# -- C3.6: drift responses follow the stated policy -----------------------------------------------
_EDGES = (0.1, 0.25)


def _levels(psi: Any, verdict: Any) -> set[str]:
    """The drift level(s) of a saved row: inconclusive, major (PSI >= 0.25), moderate (PSI >= 0.1 or a
    failed test) or none; both neighbours when a rounded PSI sits on a band edge."""
    if verdict == "inconclusive" or psi is None or (isinstance(psi, float) and math.isnan(psi)):
        return {"inconclusive"}
    value = float(psi)
    near = [v for e in _EDGES if abs(value - e) <= 5e-5 for v in (e - 1e-9, e)]
    return {"major" if v >= 0.25 else "moderate" if v >= 0.1 or verdict == "drift" else "none"
            for v in (value, *near)}


@criterion("C3.6")
def grade_drift_responses(ctx: GradingContext) -> Grade:
    """Every saved drift response is the policy's action for the level of its PSI *and* test verdict.

    ``ch03/drift_report.json`` holds ``policy`` (``rules[criticality][level]``), ``responses`` (the
    monitored columns: criticality, psi, verdict, action) and ``response_table`` (the amount
    magnitudes of a critical feature: magnitude, psi, verdict, action). Level 4: every action
    matches and the table holds a row the test flags while PSI < 0.1; 2: all match, no such row;
    0: a mismatch or missing fields.
    """
    data = ctx.read_json("ch03/drift_report.json")
    try:
        rules = data["policy"]["rules"]
        rows = [dict(r) for r in data["responses"]] + [{**r, "criticality": "critical"}
                                                         for r in data["response_table"]]
        checked = [(r.get("column", f"amount x{1 + float(r.get('magnitude', 0)):.2f}"), r["criticality"],
                    _levels(r["psi"], r["verdict"]), r["action"], r["psi"], r["verdict"]) for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingEvidence(f"drift_report.json lacks {exc}") from exc
    wrong = [f"{name}: {action} for PSI {psi} / test {verdict} (policy: "
             f"{sorted({rules.get(crit, {}).get(lv) for lv in levels}, key=str)})"
             for name, crit, levels, action, psi, verdict in checked
             if action not in {rules.get(crit, {}).get(lv) for lv in levels}]
    if wrong or not checked:
        return Grade(0, "; ".join(wrong[:3]) or "no response saved")
    test_only = [name for name, _, _, _, psi, verdict in checked
                 if verdict == "drift" and psi is not None and float(psi) < 0.1]
    if not test_only:
        return Grade(2, f"{len(checked)} responses follow the policy, but none shows a drift only the test sees")
    return Grade(4, f"{len(checked)} responses follow the policy for PSI and test verdict; test-only drift: "
                    f"{', '.join(test_only)}")
