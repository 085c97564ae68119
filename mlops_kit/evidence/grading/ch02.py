"""Chapter 2 criteria: feature-store claims recomputed from the saved samples and specs.

Nothing here imports ``mlops_kit.features`` or ``mlops_kit.labs``: disagreements, leakage,
SCD2 lookups, percentiles, parity counts and fingerprints are recomputed with pandas, numpy
and hashlib from the files the chapter saved.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from .base import Grade, GradingContext, MissingEvidence, criterion

__all__ = ["grade_two_teams", "grade_time_semantics", "grade_leakage_recheck", "grade_freshness",
           "grade_parity", "grade_definitions", "grade_contract", "grade_ttl"]

_STAMPS = ("risk_ts", "risk_created", "profile_ts", "profile_created")


def _cols(frame: pd.DataFrame, cols: tuple[str, ...] | list[str], rel: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise MissingEvidence(f"{rel} lacks columns {missing}")


def _differ(a: pd.Series, b: pd.Series) -> int:
    """Rows where two numeric columns differ; two nulls are equal."""
    x, y = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    both = x.isna() & y.isna()
    return int((~both & (x.isna() | y.isna() | (x != y))).sum())


@criterion("C2.1")
def grade_two_teams(ctx: GradingContext) -> Grade:
    """Two hand-written counts disagree; the shared view's offline and online reads agree.

    Level 4: ``team_a`` and ``team_b`` differ on at least one row, ``shared_offline``,
    ``shared_online`` and ``shared`` are equal on every row, and ``two_teams.json`` states
    the recomputed counts; 2: the teams disagree but the shared reads do not all agree (or
    the stated counts differ); 0: no disagreement shown or missing.
    """
    rel = "ch02/two_teams.csv"
    table = ctx.read_table(rel)
    _cols(table, ("team_a", "team_b", "shared", "shared_offline", "shared_online"), rel)
    stated = ctx.read_json("ch02/two_teams.json")
    teams = _differ(table["team_a"], table["team_b"])
    shared = _differ(table["shared_offline"], table["shared_online"])
    definition = _differ(table["shared_offline"], table["shared"])
    if teams == 0:
        return Grade(0, f"the two teams agree on all {len(table)} rows: no disagreement was shown")
    try:
        honest = (stated["two_teams"]["differ"] == teams and stated["shared"]["differ"] == shared)
    except (KeyError, TypeError):
        honest = False
    why = f"teams differ on {teams} of {len(table)} rows; shared offline/online differ on {shared}, vs definition {definition}"
    if shared == 0 and definition == 0 and honest:
        return Grade(4, why)
    return Grade(2, why + ("" if honest else "; two_teams.json does not state these counts"))


@criterion("C2.2")
def grade_time_semantics(ctx: GradingContext) -> Grade:
    """Against the serving replay: the known-at-T count never differs, the others do.

    Level 4: ``known_at_t`` equals ``serving`` on every row and both ``event_time_complete``
    and ``ingestion_time`` differ somewhere; 2: one of the two skews shown; 0: otherwise.
    """
    rel = "ch02/time_semantics.csv"
    table = ctx.read_table(rel)
    _cols(table, ("serving", "event_time_complete", "ingestion_time", "known_at_t"), rel)
    counts = {c: _differ(table[c], table["serving"]) for c in ("event_time_complete", "ingestion_time", "known_at_t")}
    why = ", ".join(f"{k}: {v} of {len(table)} differ" for k, v in counts.items())
    if counts["known_at_t"] != 0:
        return Grade(0, why)
    skews = (counts["event_time_complete"] > 0) + (counts["ingestion_time"] > 0)
    return Grade(4 if skews == 2 else 2 if skews == 1 else 0, why)


def _violations(frame: pd.DataFrame) -> int:
    t = pd.to_datetime(frame["event_timestamp"], utc=True)
    bad = np.zeros(len(frame), dtype=bool)
    for col in _STAMPS:
        bad |= (pd.to_datetime(frame[col], utc=True) > t).fillna(False).to_numpy(dtype=bool)
    return int(bad.sum())


def _scd2_mismatches(sample: pd.DataFrame, history: pd.DataFrame) -> int:
    history = history.assign(valid_from=pd.to_datetime(history["valid_from"], utc=True),   # parsed once
                             valid_to=pd.to_datetime(history["valid_to"], utc=True))
    groups = {k: list(zip(g["valid_from"], g["valid_to"], g["account_status"])) for k, g in history.groupby("user_id")}
    wrong = 0
    for user, at, status in zip(sample["user_id"], pd.to_datetime(sample["event_timestamp"], utc=True),
                                sample["account_status"]):
        g = groups.get(user)
        truth = None
        if g is not None:
            for lo, hi, value in g:
                if lo <= at and (pd.isna(hi) or at < hi):
                    truth = value
        wrong += str(truth) != str(status) if not (truth is None and pd.isna(status)) else 0
    return wrong


@criterion("C2.3")
def grade_leakage_recheck(ctx: GradingContext) -> Grade:
    """Re-run the leakage check on the saved training samples, and the SCD2 lookup.

    Level 4: the point-in-time sample has no feature row stamped or created after its row's
    time, both leaky samples (latest-value join, unfiltered corrections) have violations and
    every ``account_status`` in the PIT sample equals the SCD2 version valid at that time
    (from ``profile_history.csv``); 2: PIT sample clean but a leaky sample shows nothing or
    the SCD2 lookup disagrees; 0: the PIT sample leaks or evidence is missing.
    """
    samples = {}
    for name in ("pit", "unfiltered", "latest"):
        rel = f"ch02/training_sample_{name}.csv"
        samples[name] = ctx.read_table(rel)
        _cols(samples[name], ("user_id", "event_timestamp", "account_status", *_STAMPS), rel)
    history = ctx.read_table("ch02/profile_history.csv")
    _cols(history, ("user_id", "valid_from", "valid_to", "account_status"), "ch02/profile_history.csv")
    counts = {k: _violations(v) for k, v in samples.items()}
    scd2 = _scd2_mismatches(samples["pit"], history)
    why = f"violations {counts}; SCD2 mismatches in the PIT sample: {scd2} of {len(samples['pit'])}"
    if counts["pit"] > 0 or samples["pit"].empty:
        return Grade(0, why)
    if counts["unfiltered"] > 0 and counts["latest"] > 0 and scd2 == 0:
        return Grade(4, why)
    return Grade(2, why)


@criterion("C2.4")
def grade_freshness(ctx: GradingContext) -> Grade:
    """p95 feature age recomputed per phase from the saved ages; breach then recovery.

    Level 4: each stated p95 is within 0.01 h of ``numpy.percentile(ages, 95)`` of its phase,
    the ``before`` p95 exceeds the SLO objective and the ``after`` p95 meets it; 2: recomputed
    values agree but the breach/recovery is not shown; 0: a stated value is off or missing.
    """
    ages = ctx.read_table("ch02/feature_ages.csv")
    _cols(ages, ("phase", "age_h"), "ch02/feature_ages.csv")
    claim = ctx.read_json("ch02/freshness.json")
    try:
        objective = float(claim["slo"]["objective"])
        stated = {"before": float(claim["p95_before_h"]), "after": float(claim["p95_after_h"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingEvidence(f"freshness.json lacks {exc}") from exc
    got = {}
    for phase in ("before", "after"):
        values = pd.to_numeric(ages.loc[ages["phase"] == phase, "age_h"], errors="coerce").dropna().to_numpy()
        if values.size == 0:
            return Grade(0, f"no saved ages for phase {phase!r}")
        got[phase] = float(np.percentile(values, 95))
    why = f"p95 recomputed before {got['before']:.2f} h, after {got['after']:.2f} h (objective {objective} h)"
    if any(abs(got[p] - stated[p]) > 0.01 for p in got):
        return Grade(0, why + f"; stated {stated}")
    return Grade(4 if got["before"] > objective >= got["after"] else 2, why)


@criterion("C2.5")
def grade_parity(ctx: GradingContext) -> Grade:
    """Parity mismatch counts recomputed from the saved offline/online table.

    A row is a mismatch when both values are present and differ by more than 1e-9. Level 4:
    the recomputed counts equal ``parity.json`` for both phases, ``before`` has mismatches
    and ``after`` none (no missing values either); 2: counts agree but no before/after
    contrast; 0: a count differs or evidence is missing.
    """
    table = ctx.read_table("ch02/parity_table.csv")
    _cols(table, ("phase", "offline", "online"), "ch02/parity_table.csv")
    claim = ctx.read_json("ch02/parity.json")
    got = {}
    for phase in ("before", "after"):
        rows = table[table["phase"] == phase]
        off, on = pd.to_numeric(rows["offline"], errors="coerce"), pd.to_numeric(rows["online"], errors="coerce")
        present = off.notna() & on.notna()
        got[phase] = {"compared": int(len(rows)), "mismatches": int((present & ((off - on).abs() > 1e-9)).sum()),
                      "missing_online": int((off.notna() & on.isna()).sum())}
    try:
        agree = all(int(claim[p][k]) == got[p][k] for p in got for k in got[p])
    except (KeyError, TypeError, ValueError):
        agree = False
    why = f"recomputed {got}"
    if not agree:
        return Grade(0, why + f"; parity.json states {claim}")
    fixed = got["after"]["mismatches"] == 0 and got["after"]["missing_online"] == 0
    return Grade(4 if got["before"]["mismatches"] > 0 and fixed else 2, why)


def _fingerprint(spec: Any) -> str:
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@criterion("C2.6")
def grade_definitions(ctx: GradingContext) -> Grade:
    """Fingerprints recomputed from the saved specs; the silent change refused, v2 accepted.

    Level 4: every stated fingerprint equals sha256 of its spec's canonical JSON, the silent
    spec has v1's name and version but another fingerprint and was refused, and v2 has the
    same name with version 2; 2: fingerprints verify but the story is incomplete; 0: a
    fingerprint does not verify or evidence is missing.
    """
    claim = ctx.read_json("ch02/definitions.json")
    try:
        specs = {k: (claim[k], claim[f"{k}_fingerprint"]) for k in ("v1", "silent", "v2")}
        refused = claim["silent_refused"] is True
    except (KeyError, TypeError) as exc:
        raise MissingEvidence(f"definitions.json lacks {exc}") from exc
    bad = [k for k, (spec, fp) in specs.items() if _fingerprint(spec) != fp]
    if bad:
        return Grade(0, f"stated fingerprints do not match the specs: {bad}")
    v1, silent, v2 = (specs[k][0] for k in ("v1", "silent", "v2"))
    same_slot = (silent.get("name"), silent.get("version")) == (v1.get("name"), v1.get("version"))
    story = (same_slot and specs["silent"][1] != specs["v1"][1] and refused
             and v2.get("name") == v1.get("name") and v2.get("version") == 2)
    return Grade(4 if story else 2, f"3 fingerprints verified; silent change same slot {same_slot}, refused {refused}, "
                                    f"v2 {v2.get('name')}@v{v2.get('version')}")


@criterion("C2.7")
def grade_contract(ctx: GradingContext) -> Grade:
    """The data contract is complete and was enforced.

    Level 4: ``contract.json`` has an owner, a schema, at least one blocking rule with an
    owner and remediation, and a deprecation with replacement and end of life;
    ``governance.json`` shows the bad batch refused with no rows written, a deprecation
    warning naming the replacement and a refused new consumer; 2: contract complete but
    enforcement not shown; 0: otherwise.
    """
    contract = ctx.read_json("ch02/contract.json")
    gov = ctx.read_json("ch02/governance.json")
    try:
        rules = contract["rules"]
        dep = contract["deprecation"]
        complete = (bool(contract["owner"]) and bool(contract["schema"]) and bool(dep.get("replacement"))
                    and bool(dep.get("end_of_life"))
                    and any(r.get("severity") == "block" and r.get("owner") and r.get("remediation") for r in rules))
        enforced = (gov["gate_refusal"] is not None and gov["rows_before"] == gov["rows_after"]
                    and any(dep["replacement"] in w for w in gov["deprecation_warnings"])
                    and gov["new_consumer_refused"] is not None)
    except (KeyError, TypeError, AttributeError) as exc:
        raise MissingEvidence(f"contract/governance evidence lacks {exc}") from exc
    if not complete:
        return Grade(0, "the contract lacks an owner, schema, blocking rule or deprecation terms")
    return Grade(4 if enforced else 2, f"contract complete; enforcement shown: {enforced}")


@criterion("C2.8")
def grade_ttl(ctx: GradingContext) -> Grade:
    """The chosen TTL honours the stated rule (admit rows <= 48 h old, refuse rows > 72 h).

    Level 4: 48 <= ttl_hours <= 72, every good row admitted, no stale row admitted, none
    beyond the TTL, and without a TTL stale rows were admitted (the risk was real); 2: the
    TTL is in range but a count disagrees; 0: out of range or missing.
    """
    claim = ctx.read_json("ch02/ttl_admission.json")
    try:
        chosen, none = claim["chosen"], claim["no_ttl"]
        hours = float(chosen["ttl_hours"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingEvidence(f"ttl_admission.json lacks {exc}") from exc
    if not math.isfinite(hours) or not 48 <= hours <= 72:
        return Grade(0, f"TTL {hours} h is outside the rule's 48-72 h")
    ok = (chosen["good_admitted"] == chosen["good_rows"] and chosen["stale_admitted"] == 0
          and chosen["admitted_beyond_ttl"] == 0 and none["stale_admitted"] > 0)
    return Grade(4 if ok else 2, f"TTL {hours} h; good {chosen['good_admitted']}/{chosen['good_rows']}, "
                                 f"stale admitted {chosen['stale_admitted']} (without TTL {none['stale_admitted']})")
