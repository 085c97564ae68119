"""Chapter 5 criteria: the release and rollback record, re-checked from the saved tables.

Nothing here imports :mod:`mlops_kit.rollout`: timelines, intervals and checks are re-read as
plain tables and JSON, and every stated number is recomputed from them.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from .base import Grade, GradingContext, MissingEvidence, criterion

__all__ = ["grade_rollback_after_breach", "grade_incident_measures", "grade_partial_vs_full",
           "grade_feature_rollback", "grade_postmortem_actions", "grade_routing"]

_MITIGATIONS = ("abort", "revert", "rollback", "fallback_on", "restore")
#: the reference rollback matrix (failure -> unit), kept independent of the lab's copy
_MATRIX = {
    ("one segment's scores inverted right after a release; online features match offline, threshold "
     "unchanged"): "model",
    "a configuration push moved the decision threshold from 0.5 to 0.3; no scorer or feature changed": "flags",
    "users of a cohort held on the stable arm are answered by the candidate": "routing",
    ("since the aggregation job's release, every user's 7-day count reads about 4x what the old "
     "definition gives"): "feature_version",
    "after a rollback most online reads of user features are null; the offline rows are fresh": "rematerialize",
    ("parity fails for most users although the table was just re-materialized; the bad rows carry the "
     "good rows' event times"): "snapshot_restore",
    ("a release moved the scorer and the threshold; after the alias rollback declines stay "
     "doubled"): "full_release_state",
}


def _times(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    out = df.copy()
    for c in cols:
        try:
            out[c] = pd.to_datetime(out[c], utc=True, format="mixed")
        except (KeyError, ValueError, TypeError) as exc:
            raise MissingEvidence(f"column {c!r} is missing or not timestamps ({exc})") from exc
    return out


def _need(df: pd.DataFrame, cols: tuple[str, ...], name: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MissingEvidence(f"{name} lacks columns {missing}")


@criterion("C5.1")
def grade_rollback_after_breach(ctx: GradingContext) -> Grade:
    """The abort came at or after the first failed measurement, and the candidate then served nothing.

    From ``canary_measurements.csv`` (first ``verdict == "fail"``, whose value must exceed its
    threshold), ``canary_events.csv`` (first ``abort``, a registry ``rollback`` at or after it)
    and ``canary_intervals.csv`` (``n_candidate`` is 0 in every interval starting at or after the
    abort, and > 0 in some interval before it).
    """
    ms = _times(ctx.read_table("ch05/canary_measurements.csv"), "time")
    ev = _times(ctx.read_table("ch05/canary_events.csv"), "time")
    iv = _times(ctx.read_table("ch05/canary_intervals.csv"), "start")
    _need(ms, ("verdict", "value", "threshold"), "canary_measurements.csv")
    _need(ev, ("kind",), "canary_events.csv")
    _need(iv, ("n_candidate",), "canary_intervals.csv")
    fails = ms[ms["verdict"] == "fail"]
    aborts = ev[ev["kind"] == "abort"]
    if fails.empty or aborts.empty:
        return Grade(0, f"{len(fails)} failed measurement(s), {len(aborts)} abort event(s): nothing to check")
    first_fail, t_abort = fails.iloc[0], aborts["time"].iloc[0]
    if not float(first_fail["value"]) > float(first_fail["threshold"]):
        return Grade(0, f"the first 'fail' has value {first_fail['value']} <= threshold {first_fail['threshold']}")
    if t_abort < first_fail["time"]:
        return Grade(0, f"the abort ({t_abort}) came before the first breach ({first_fail['time']})")
    rollbacks = ev[(ev["kind"] == "rollback") & (ev["time"] >= t_abort)]
    after = int(iv.loc[iv["start"] >= t_abort, "n_candidate"].sum())
    before = int(iv.loc[iv["start"] < t_abort, "n_candidate"].sum())
    if after or before == 0 or rollbacks.empty:
        return Grade(2, f"abort after the breach, but candidate served {after} request(s) after it, {before} "
                     f"before, registry rollbacks after it: {len(rollbacks)}")
    return Grade(4, f"first breach {first_fail['time']:%H:%M}, abort {t_abort:%H:%M} "
                 f"(+{(t_abort - first_fail['time']).total_seconds() / 60:g} min); "
                 f"registry rollback recorded; candidate served {before} before, 0 after")


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MissingEvidence(f"{what} is not a number: {value!r}")
    return float(value)


@criterion("C5.2")
def grade_incident_measures(ctx: GradingContext) -> Grade:
    """Time to detect, time to recover and exposure in ``incident.json`` recomputed from the tables.

    TTD: fault start -> first ``alert`` event at or after it; TTR: fault start -> first
    mitigation event at or after the detection; exposure: the sum of ``n_affected`` over the
    intervals; candidate requests during the fault: the sum of ``n_candidate`` from the fault
    start; touched requests must be candidate requests on the bad segment (``n_affected`` <=
    ``n_candidate_on_segment`` in every interval).
    """
    inc = ctx.read_json("ch05/incident.json")
    ev = _times(ctx.read_table("ch05/canary_events.csv"), "time")
    iv = _times(ctx.read_table("ch05/canary_intervals.csv"), "start")
    _need(iv, ("n_candidate", "n_affected", "n_candidate_on_segment"), "canary_intervals.csv")
    try:
        start = pd.Timestamp(inc["fault_start"])
        stated = {k: _num(inc[k], k) for k in ("time_to_detect_s", "time_to_recover_s", "exposure",
                                                "bad_arm_requests")}
    except (KeyError, ValueError, TypeError) as exc:
        raise MissingEvidence(f"incident.json lacks {exc}") from exc
    alerts = ev[(ev["kind"] == "alert") & (ev["time"] >= start)]
    if alerts.empty:
        return Grade(0, "no alert after the fault start in canary_events.csv")
    detected = alerts["time"].iloc[0]
    mit = ev[ev["kind"].isin(_MITIGATIONS) & (ev["time"] >= detected)]
    if mit.empty:
        return Grade(0, "no mitigation after the detection in canary_events.csv")
    end = pd.Timestamp(inc["fault_end"]) if inc.get("fault_end") else None
    during = iv[(iv["start"] >= start) & ((iv["start"] < end) if end is not None else True)]
    recomputed = {"time_to_detect_s": (detected - start).total_seconds(),
                  "time_to_recover_s": (mit["time"].iloc[0] - start).total_seconds(),
                  "exposure": float(iv["n_affected"].sum()), "bad_arm_requests": float(during["n_candidate"].sum())}
    wrong = [f"{k}: stated {stated[k]:g}, recomputed {v:g}" for k, v in recomputed.items()
             if abs(stated[k] - v) > 1e-6]
    if (iv["n_affected"] > iv["n_candidate_on_segment"]).any():
        wrong.append("an interval has more touched requests than candidate requests on the segment")
    if wrong:
        return Grade(0, "; ".join(wrong))
    ttd, ttr = recomputed["time_to_detect_s"] / 60, recomputed["time_to_recover_s"] / 60
    return Grade(4, f"TTD {ttd:g} min, TTR {ttr:g} min, "
                 f"exposure {recomputed['exposure']:g}, candidate requests during the fault "
                 f"{recomputed['bad_arm_requests']:g}: all match")


def _same(observed: Any, expected: Any) -> bool:
    if isinstance(observed, float) or isinstance(expected, float):
        try:
            return math.isclose(float(observed), float(expected), rel_tol=1e-9, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return observed == expected


@criterion("C5.3")
def grade_partial_vs_full(ctx: GradingContext) -> Grade:
    """A model-only rollback left a check failing and the decline rate high; the restore fixed both.

    Each check's ``passed`` is recomputed from its ``observed`` and ``expected``; the model-only
    stage must have at least one failing check and a decline rate >= 1.5x the baseline; the
    restore stage must pass every check with a decline rate within 25 % of the baseline; the
    registry's alias history (``alias_history_fraud_flags.csv``) ends on a move back to the
    version deployed first.
    """
    data = ctx.read_json("ch05/rollback_checks.json")
    hist = ctx.read_table("ch05/alias_history_fraud_flags.csv")
    try:
        partial, full, rates = list(data["partial"]), list(data["full"]), dict(data["decline_rates"])
        base = _num(rates["baseline (warm-up)"], "baseline rate")
        after_partial = _num(rates["after model-only rollback"], "model-only rate")
        after_full = _num(rates["after restore"], "restore rate")
    except (KeyError, TypeError) as exc:
        raise MissingEvidence(f"rollback_checks.json lacks {exc}") from exc
    lies = [c.get("name") for c in partial + full
            if bool(c.get("passed")) != _same(c.get("observed"), c.get("expected"))]
    if lies:
        return Grade(0, f"stated results contradict observed/expected for {lies}")
    _need(hist, ("to", "action"), "alias_history_fraud_flags.csv")
    first, last = hist.iloc[0], hist.iloc[-1]
    alias_ok = str(last["action"]) == "rollback" and int(last["to"]) == int(first["to"])
    broken = any(not c["passed"] for c in partial) and after_partial >= 1.5 * base
    fixed = bool(full) and all(c["passed"] for c in full) and abs(after_full - base) <= 0.25 * base
    why = (f"model-only: {sum(not c['passed'] for c in partial)} failing check(s), decline {after_partial:.4f}; "
           f"restore: {sum(c['passed'] for c in full)}/{len(full)} pass, decline {after_full:.4f}; baseline "
           f"{base:.4f}; alias back on v{int(first['to'])}: {alias_ok}")
    return Grade(4 if broken and fixed and alias_ok else 2 if fixed else 0, why)


@criterion("C5.4")
def grade_feature_rollback(ctx: GradingContext) -> Grade:
    """The feature drill's phases show the stale-cache failure and its fix; the matrix is right.

    ``feature_rollback_phases.csv``: v2 moved the scores (PSI > 0.25), the flag-only rollback
    read > 50 % missing features, the re-materialized v1 read <= 1 % missing with a 100 %
    parity match and PSI < 0.1; after a same-event-time overwrite, re-materializing left the
    parity below 50 % and the snapshot restore brought it to 100 %. ``rollback_matrix.csv``:
    every failure's ``roll_back`` unit equals the reference matrix. Level 2 when only one of the two holds.
    """
    ph = ctx.read_table("ch05/feature_rollback_phases.csv")
    _need(ph, ("phase", "missing_feature_rate", "score_psi_vs_v1", "parity_match_rate"), "feature_rollback_phases.csv")
    by = ph.set_index("phase")
    try:
        drill = (by.loc["v2 released", "score_psi_vs_v1"] > 0.25
                 and by.loc["flag-only rollback", "missing_feature_rate"] > 0.5
                 and by.loc["v1 re-materialized", "missing_feature_rate"] <= 0.01
                 and by.loc["v1 re-materialized", "parity_match_rate"] == 1.0
                 and by.loc["v1 re-materialized", "score_psi_vs_v1"] < 0.1
                 and by.loc["re-materialized over bad write", "parity_match_rate"] < 0.5
                 and by.loc["snapshot restored", "parity_match_rate"] == 1.0)
    except KeyError as exc:
        raise MissingEvidence(f"feature_rollback_phases.csv lacks phase {exc}") from exc
    mx = ctx.read_table("ch05/rollback_matrix.csv")
    _need(mx, ("failure", "roll_back"), "rollback_matrix.csv")
    got = dict(zip(mx["failure"], mx["roll_back"]))
    wrong = sorted(f for f, unit in _MATRIX.items() if got.get(f) != unit)
    level = 4 if drill and not wrong else 2 if drill or not wrong else 0
    return Grade(level, f"drill {'shows' if drill else 'does not show'} stale cache then re-materialized v1; "
                 f"matrix rows wrong or missing: {wrong or 'none'}")


@criterion("C5.5")
def grade_postmortem_actions(ctx: GradingContext) -> Grade:
    """Every corrective action passed, and the postmortem reports the same status and numbers.

    ``corrective_actions.json`` lists ``{id, passed, ...}``; ``postmortem.md``'s corrective-actions
    table has one row per id whose status is PASS exactly when the JSON says passed; its
    "Time to detect" / "Time to recover" lines equal ``incident.json`` (rounded minutes).
    """
    actions = ctx.read_json("ch05/corrective_actions.json")
    text = ctx.path("ch05/postmortem.md").read_text(encoding="utf-8")
    inc = ctx.read_json("ch05/incident.json")
    if not isinstance(actions, list) or not actions:
        return Grade(0, "corrective_actions.json lists no action")
    problems = []
    for a in actions:
        row = re.search(rf"^\| {re.escape(str(a.get('id')))} \|.*\| (PASS|FAIL[^|]*|not run) \|$", text, re.M)
        if row is None:
            problems.append(f"{a.get('id')} is not in the postmortem's table")
        elif (row.group(1) == "PASS") != bool(a.get("passed")):
            problems.append(f"{a.get('id')}: postmortem says {row.group(1)!r}, JSON passed={a.get('passed')}")
    for label, key in (("Time to detect", "time_to_detect_s"), ("Time to recover", "time_to_recover_s")):
        m = re.search(rf"- {label}: (\d+) min", text)
        if m is None or inc.get(key) is None or int(m.group(1)) != round(inc[key] / 60):
            problems.append(f"{label} in the postmortem does not match incident.json")
    if problems:
        return Grade(0, "; ".join(problems))
    failed = [a["id"] for a in actions if not a.get("passed")]
    if failed:
        return Grade(2, f"postmortem consistent, but corrective actions fail: {failed}")
    return Grade(4, f"{len(actions)} corrective actions passed; the postmortem reports the same results and times")


@criterion("C5.6")
def grade_routing(ctx: GradingContext) -> Grade:
    """Sticky routing re-checked from the good canary's saved requests and intervals.

    Within each step (intervals of one weight while progressing) no key of
    ``canary_good_routing.csv`` is served by two arms, and the share of keys on the candidate
    is within 4 binomial standard deviations of the weight (keys, not requests, are hashed).
    """
    req = _times(ctx.read_table("ch05/canary_good_routing.csv"), "event_timestamp")
    iv = _times(ctx.read_table("ch05/canary_good_intervals.csv"), "start", "end")
    _need(req, ("key", "arm"), "canary_good_routing.csv")
    _need(iv, ("status", "weight"), "canary_good_intervals.csv")
    steps = iv[iv["status"] == "progressing"].groupby("weight")
    notes, flips, off = [], 0, []
    for weight, g in steps:
        sel = req[(req["event_timestamp"] >= g["start"].min()) & (req["event_timestamp"] < g["end"].max())
                  & req["arm"].isin(["stable", "candidate"])]
        arms = {}
        for key, arm in zip(sel["key"].tolist(), sel["arm"].tolist()):  # a plain loop: independent check
            arms.setdefault(key, set()).add(arm)
        flips += sum(len(a) > 1 for a in arms.values())
        n = len(arms)
        if n == 0:
            continue
        share = sum("candidate" in a for a in arms.values()) / n
        p = float(weight) / 100
        if abs(share - p) > 4 * math.sqrt(p * (1 - p) / n) + 1e-12:
            off.append(f"{weight:g} %: {share:.2%} of {n} keys")
        notes.append(f"{weight:g} %: {share:.1%}")
    if not notes:
        return Grade(0, "no progressing step with requests in the saved tables")
    if flips or off:
        return Grade(0, f"{flips} key(s) changed arm within a step; shares off: {off or 'none'}")
    return Grade(4, f"0 keys changed arm within a step; key shares {', '.join(notes)}")
