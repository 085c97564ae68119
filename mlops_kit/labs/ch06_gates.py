"""Chapter 6 lab: the CI/CD gates (data, feature, model) and the release decision.

Every gate check becomes one row ``{release, gate, check, observed, op, threshold, passed}``;
``passed`` is recomputed from ``observed op threshold`` by :func:`verdict`, so a row can
never claim a result its numbers do not support. :func:`release_decision` reads the rows
of one release in gate order (data, feature, model) and names the first gate that blocks.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ValidationError
from ..quality import FreshnessCheck, NullRateCheck, QualitySuite, RangeCheck, UniqueKeyCheck
from ..registry import ContractCheck, EnvironmentRecorded, LineageComplete, MetricThreshold, NoSegmentRegression
from .ch06 import DAILY_FEATURES, DAY

__all__ = ["GATES", "OPS", "AUC_FLOOR", "MAX_AUC_LOSS", "SEGMENT_TOLERANCE", "candidate_policies", "verdict", "gate_row", "data_suite", "data_gate", "leakage_rate", "leaky_join",
           "feature_gate", "model_gate", "release_decision", "decisions", "decision_probes", "corrupt_batch"]

GATES = ("data", "feature", "model")
OPS = ("<=", ">=", "==")
#: the absolute AUC floor of ``candidate``: it stops a broken model (one near chance), not a weaker
#: world. The evaluation window holds only about 200 frauds, so a working model's AUC moves
#: by several hundredths from one seeded world to the next (about 0.72-0.86 for the models of
#: this chapter); comparing with production, on the same evaluation set, is what stops a regression.
AUC_FLOOR = 0.65
#: the largest AUC loss against production that counts as noise (absolute; relative: twice that)
MAX_AUC_LOSS = 0.005
#: a channel holds about 60-70 evaluation frauds: its AUC has a sampling error of about 0.03, and
#: two models on the same rows can differ by more than 0.02 by chance; a drop beyond 0.05 is real
SEGMENT_TOLERANCE = 0.05


def candidate_policies(serving_sample: pd.DataFrame) -> list[Any]:
    """The registry's ``candidate`` gates: lineage, environment, AUC floor and no real loss
    against production, no segment regression, and the serving contract on ``serving_sample``."""
    if not isinstance(serving_sample, pd.DataFrame) or serving_sample.empty:
        raise ValidationError("candidate_policies: serving_sample must be a non-empty DataFrame.",
                              fix='Pass frames["eval"][list(L.INPUTS)].head(500).')
    return [LineageComplete(), EnvironmentRecorded(),
            MetricThreshold(metric="auc", minimum=AUC_FLOOR, min_abs_improvement=-MAX_AUC_LOSS,
                            min_rel_improvement=-2 * MAX_AUC_LOSS),
            NoSegmentRegression(metric="auc", tolerance=SEGMENT_TOLERANCE),
            ContractCheck(data=serving_sample, data_name="eval inputs")]


def verdict(observed: Any, op: str, threshold: Any) -> bool:
    """``observed op threshold`` for numbers (a non-finite observation never passes)."""
    if op not in OPS:
        raise ValidationError(f"verdict: op must be one of {OPS}, got {op!r}.", fix="Use '<=', '>=' or '=='.")
    try:
        o, t = float(observed), float(threshold)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"verdict: observed {observed!r} and threshold {threshold!r} must be numbers.",
                              fix="Record numeric observations.") from exc
    if not (math.isfinite(o) and math.isfinite(t)):
        return False
    return o <= t + 1e-12 if op == "<=" else o >= t - 1e-12 if op == ">=" else abs(o - t) <= 1e-12


def gate_row(release: str, gate: str, check: str, observed: Any, op: str, threshold: Any) -> dict[str, Any]:
    """One evidence row; ``passed`` is computed, never given."""
    if gate not in GATES:
        raise ValidationError(f"gate_row: gate must be one of {GATES}, got {gate!r}.", fix="Use data, feature or model.")
    obs = round(float(observed), 6)
    return {"release": release, "gate": gate, "check": check, "observed": obs, "op": op,
            "threshold": float(threshold), "passed": verdict(obs, op, threshold)}


def data_suite() -> QualitySuite:
    """The data gate over the daily feature rows: nulls, ranges, key uniqueness, freshness."""
    owner, fix = "risk-features", "Re-run the daily job for the day; do not publish the batch."
    checks = [NullRateCheck(id="txn_count_7d_nulls", severity="block", owner=owner, column="txn_count_7d",
                            max_rate=0.0, remediation=fix),
              NullRateCheck(id="amount_avg_30d_nulls", severity="block", owner=owner, column="amount_avg_30d",
                            max_rate=0.35, remediation=fix),
              RangeCheck(id="amount_avg_7d_range", severity="block", owner=owner, column="amount_avg_7d",
                         min_value=0.0, max_value=100_000.0, remediation=fix),
              UniqueKeyCheck(id="user_day_unique", severity="block", owner=owner,
                             columns=("user_id", "event_timestamp"), remediation="Deduplicate the batch."),
              FreshnessCheck(id="daily_freshness", severity="block", owner=owner, max_age=2 * DAY,
                             remediation="The daily job is late: check the scheduler.")]
    return QualitySuite(view="user_daily", checks=checks)


def data_gate(release: str, daily: pd.DataFrame, *, now: Any) -> tuple[list[dict[str, Any]], Any]:
    """Run :func:`data_suite` on a batch of daily rows; one row per check (observed vs threshold)."""
    report = data_suite().run(daily, now=now)
    rows = []
    for r in report.results:
        observed = r.observed if r.observed is not None else float("nan")  # inconclusive never passes
        if isinstance(r.threshold, timedelta):
            threshold = r.threshold.total_seconds()
        else:
            threshold = r.threshold if isinstance(r.threshold, (int, float)) else float("nan")
        rows.append(gate_row(release, "data", r.check_id, observed, "<=", threshold))
    return rows, report


def corrupt_batch(daily: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """A bad daily batch: the last day's rows with 3 % delivered twice and 5 % negative 7-day averages."""
    rng = np.random.default_rng(seed)
    last = daily[daily["event_timestamp"] == daily["event_timestamp"].max()].copy()
    neg = rng.random(len(last)) < 0.05
    last.loc[neg, "amount_avg_7d"] = -last.loc[neg, "amount_avg_7d"].abs() - 1.0
    dup = last[rng.random(len(last)) < 0.03]
    return pd.concat([daily[daily["event_timestamp"] < daily["event_timestamp"].max()], last, dup], ignore_index=True)


def leaky_join(train: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """The classic bug: join the user's row of the NEXT midnight (the day's totals, known only later)."""
    nxt = train["event_timestamp"].dt.floor("D") + pd.Timedelta(days=1)
    right = daily.rename(columns={"event_timestamp": "_day"})[["user_id", "_day", *DAILY_FEATURES]]
    out = train.drop(columns=list(DAILY_FEATURES)).assign(_day=nxt.astype(right["_day"].dtype))
    out = out.merge(right, on=["user_id", "_day"], how="left").drop(columns="_day")
    return out[list(train.columns)]


def leakage_rate(frame: pd.DataFrame, daily: pd.DataFrame) -> float:
    """Share of rows whose daily features differ from the row of the last midnight AT OR BEFORE the row.

    An independent as-of reference: daily rows exist for every user at every midnight, so the
    correct row is the one stamped ``floor(event_timestamp, day)``; a frame built with a row
    from after the event (a leak) disagrees with it.
    """
    day = frame["event_timestamp"].dt.floor("D")
    ref = daily.rename(columns={"event_timestamp": "_day"})[["user_id", "_day", *DAILY_FEATURES]]
    want = pd.DataFrame({"user_id": frame["user_id"].to_numpy(), "_day": day.astype(ref["_day"].dtype).to_numpy()})
    want = want.merge(ref, on=["user_id", "_day"], how="left")
    bad = np.zeros(len(frame), dtype=bool)
    for c in DAILY_FEATURES:
        a = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
        b = want[c].to_numpy(dtype=float)
        bad |= ~((np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=1e-9, atol=1e-9))
    return float(bad.mean()) if len(bad) else 0.0


def feature_gate(release: str, *, parity_match_rate: float, leak_rate: float, ttl_days: float) -> list[dict[str, Any]]:
    """Parity (offline vs online), point-in-time leakage, and a TTL that tolerates one missed job."""
    return [gate_row(release, "feature", "online_offline_parity", parity_match_rate, ">=", 0.99),
            gate_row(release, "feature", "pit_leakage_rate", leak_rate, "<=", 0.0),
            gate_row(release, "feature", "ttl_covers_job_gap_days", ttl_days, ">=", 2.0)]


def model_gate(release: str, attestations: list[Any], golden: Any) -> list[dict[str, Any]]:
    """The registry's policy attestations (1 pass / 0 fail) and the golden-set check."""
    rows = [gate_row(release, "model", f"policy:{a.policy_id}", 1.0 if a.verdict == "pass" else 0.0, ">=", 1.0)
            for a in attestations]
    if golden is not None:
        rows.append(gate_row(release, "model", "golden_set_max_abs_diff", golden.max_abs_diff, "<=", golden.tolerance))
    return rows


def release_decision(rows: list[dict[str, Any]]) -> str:
    """The first gate (data, feature, model) with a failing check, or ``"release"`` when all pass."""
    for gate in GATES:
        if any(r["gate"] == gate and not r["passed"] for r in rows):
            return f"blocked by {gate} gate"
    return "release"


def decision_probes(*, seed: int) -> list[list[dict[str, Any]]]:
    """Probe releases for a decision function: every set of failing gates, in every gate subset run.

    Each probe holds, for each gate that ran, one passing row and (when that gate fails) one
    failing row; the rows are shuffled with ``seed``, so a function must read the gate order,
    not the row order. The empty release (no rows) is included.
    """
    rng = np.random.default_rng(seed)
    probes: list[list[dict[str, Any]]] = [[]]
    for ran in range(1, 1 << len(GATES)):
        gates = [g for i, g in enumerate(GATES) if ran >> i & 1]
        for failing in range(1 << len(gates)):
            rows = [{"gate": g, "check": f"{g}-ok", "passed": True} for g in gates]
            rows += [{"gate": g, "check": f"{g}-bad", "passed": False} for i, g in enumerate(gates) if failing >> i & 1]
            probes.append([rows[i] for i in rng.permutation(len(rows))])
    return probes


def decisions(table: pd.DataFrame, decide: Any = release_decision) -> pd.DataFrame:
    """One row per release: the decision and the failing checks."""
    out = []
    for release, g in table.groupby("release", sort=False):
        rows = g.to_dict(orient="records")
        out.append({"release": release, "decision": decide(rows),
                    "failing": ", ".join(f"{r['gate']}:{r['check']}" for r in rows if not r["passed"]) or "-"})
    return pd.DataFrame(out)
