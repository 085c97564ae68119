"""Chapter 5 lab operations: incident phases, the feature-version rollback drill, the rollback matrix.

The feature drill runs on the real feature store of the chapter workspace: a ``user_stats``
view with hourly rows (v1), a v2 with a window bug (a 30-day count published as a 7-day
count), an hourly materialization job, TTL-enforced online reads and a parity check. Online
snapshots use SQLite's online-backup API: a consistent copy written atomically into the
workspace's snapshot folder, and a restore that replaces the live database in one locked step
after checking the snapshot's sha256.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_path, sha256_file
from .._time import FixedClock
from ..errors import IntegrityError, ValidationError
from ..features import Entity, FeatureStore, FeatureView, Field, parity_report
from ..rollout import MITIGATIONS, OnlineStoreFeatureSource, RolloutResult, psi, score_model
from .ch05 import START

__all__ = ["FAILURES", "incident_phases", "diagnose_segments", "feature_store", "feature_drill", "ROLLBACK_MATRIX",
           "rollback_matrix", "matrix_errors", "FEATURE_TTL", "snapshot_online", "restore_online",
           "plot_decision_rate"]

#: online values older than this read as null
FEATURE_TTL = timedelta(minutes=90)
_H = timedelta(hours=1)


def incident_phases(result: RolloutResult, *, fault_start: datetime, diagnosed_at: datetime,
                    verified_at: datetime) -> pd.DataFrame:
    """Triage, stabilize, diagnose, recover: one row each, from the run's events and two human steps."""
    ev = result.events
    alerts = ev[(ev["kind"] == "alert") & (ev["time"] >= pd.Timestamp(fault_start))]
    if alerts.empty:
        raise ValidationError("incident_phases: the run raised no alert after the fault started.",
                              fix="Use a run in which a guardrail failed.")
    t_alert = alerts["time"].iloc[0]
    mit = ev[ev["kind"].isin(MITIGATIONS) & (ev["time"] >= t_alert)]
    if mit.empty:
        raise ValidationError("incident_phases: no mitigation followed the alert.", fix="Use an aborted run.")
    t_stable = mit["time"].iloc[0]
    rows = [("triage", t_alert, "page: " + str(alerts["detail"].iloc[0])[:90]),
            ("stabilize", t_stable, f"{mit['kind'].iloc[0]}: routing to 0 % and registry rollback"),
            ("diagnose", pd.Timestamp(diagnosed_at), "per-segment comparison names the regressed segment"),
            ("recover", pd.Timestamp(verified_at), "verify(): alias, routing and flags match known-good")]
    out = pd.DataFrame(rows, columns=["phase", "time", "what"])
    out["minutes_since_fault"] = ((out["time"] - pd.Timestamp(fault_start)).dt.total_seconds() / 60).round(1)
    return out


def diagnose_segments(requests: pd.DataFrame, *, since: datetime) -> pd.DataFrame:
    """Mean score and positive rate per segment and arm, from ``since`` on (served answers only)."""
    r = requests[(requests["event_timestamp"] >= pd.Timestamp(since))
                 & requests["arm"].isin(["stable", "candidate"])]
    g = r.groupby(["segment", "arm"]).agg(n=("score", "size"), mean_score=("score", "mean"),
                                          positive_rate=("decision", "mean")).reset_index()
    wide = g.pivot(index="segment", columns="arm", values="mean_score")
    wide["gap"] = (wide["candidate"] - wide["stable"]).abs()
    wide.columns.name = None
    return wide.round(4).reset_index().sort_values("gap", ascending=False, ignore_index=True)


def plot_decision_rate(result: RolloutResult, *, bin_minutes: int = 15, baseline: float | None = None,
                       title: str = "Decline rate") -> Any:
    """Share of requests declined per time bin, with the control actions as vertical lines."""
    from matplotlib.figure import Figure

    if not isinstance(result, RolloutResult) or result.requests.empty:
        raise ValidationError("plot_decision_rate: pass the RolloutResult of a run.", fix="Use sim.run()'s value.")
    req = result.requests
    rate = req.set_index("event_timestamp")["decision"].astype(float).resample(f"{int(bin_minutes)}min").mean()
    fig = Figure(figsize=(9, 3.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.step(rate.index, rate.to_numpy() * 100, where="post", color="tab:blue", label="declined %")
    if baseline is not None:
        ax.axhline(baseline * 100, color="tab:gray", linestyle=":", label="warm-up baseline")
    styles = {"complete": ("tab:green", "release complete"), "partial_rollback": ("tab:brown", "model-only rollback"),
              "restore": ("black", "restore (alias + routing + flags)")}
    for e in result.events.itertuples():
        if e.kind in styles:
            ax.axvline(e.time, color=styles[e.kind][0], linewidth=1.2, label=styles[e.kind][1])
    ax.set_ylabel("% of requests declined")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    return fig


def feature_store(ws: Any, world: dict[str, Any], *, seed: int) -> tuple[FeatureStore, FixedClock]:
    """``user_stats`` v1 (correct) and v2 (30-day count as ``user_txn_7d``), hourly offline rows.

    Rows are stamped ten minutes before each hour from the start of the traffic to its end;
    about a third of the users' counts move by one every hour.
    """
    clock = FixedClock(START)
    store = FeatureStore(ws, clock=clock)
    user = Entity(name="user", join_keys=["user_id"])
    schema = [Field(name="user_risk", dtype="float64"), Field(name="user_txn_7d", dtype="float64")]
    v1 = FeatureView(name="user_stats", entities=[user], schema=schema, ttl=FEATURE_TTL, owner="risk-features",
                     description="user risk score and 7-day transaction count, hourly")
    v2 = FeatureView(name="user_stats", entities=[user], schema=schema, ttl=FEATURE_TTL, owner="risk-features",
                     version=2, description="hourly; new aggregation job (counts over a 30-day window)")
    store.apply([user, v1, v2])
    rng = np.random.default_rng(seed)
    f = world["features"]
    txn = f["user_txn_7d"].to_numpy(dtype=float)
    parts = {1: [], 2: []}
    for h in range(0, 7):
        moves = rng.random(len(f)) < 0.33
        txn = np.maximum(txn + moves * rng.choice([-1.0, 1.0], len(f)), 0.0)
        ts = pd.Series([START + h * _H - timedelta(minutes=10)] * len(f), dtype="datetime64[us, UTC]")
        base = {"user_id": f["key"].astype("int64").to_numpy(), "user_risk": f["user_risk"].to_numpy()}
        parts[1].append(pd.DataFrame({**base, "user_txn_7d": txn, "event_timestamp": ts}))
        parts[2].append(pd.DataFrame({**base, "user_txn_7d": np.round(txn * 30 / 7), "event_timestamp": ts}))
    for version, frames in parts.items():
        store.ingest("user_stats", pd.concat(frames, ignore_index=True), version=version)
    return store, clock


def _sqlite(store: FeatureStore) -> sqlite3.Connection:
    con = getattr(store.online, "connection", None)
    if not isinstance(con, sqlite3.Connection):
        raise ValidationError(f"online snapshots need the SQLite online store, got {type(store.online).__name__}.",
                              fix="Use the default SqliteOnlineStore.")
    return con


def snapshot_online(store: FeatureStore, ws: Any, *, label: str) -> dict[str, Any]:
    """Copy the whole online store into ``<snapshots_dir>/online-<label>.sqlite`` (atomic); return its record."""
    if not isinstance(label, str) or not label.replace("-", "").isalnum():
        raise ValidationError(f"snapshot_online: label must be letters, digits and '-', got {label!r}.",
                              fix="Use e.g. label='after-remat'.")
    con = _sqlite(store)
    target = Path(ws.snapshots_dir) / f"online-{label}.sqlite"
    with atomic_path(target) as tmp:
        dst = sqlite3.connect(tmp)
        try:
            con.backup(dst)
        finally:
            dst.close()
    return {"file": target.name, "sha256": sha256_file(target), "bytes": target.stat().st_size}


def restore_online(store: FeatureStore, ws: Any, snapshot: dict[str, Any]) -> None:
    """Replace the live online store with ``snapshot`` after verifying its sha256 (one locked step)."""
    if not isinstance(snapshot, dict) or not {"file", "sha256"} <= set(snapshot):
        raise ValidationError("restore_online: snapshot must be the record snapshot_online returned.",
                              fix="Pass the dict from snapshot_online().")
    path = Path(ws.snapshots_dir) / snapshot["file"]
    if not path.is_file() or sha256_file(path) != snapshot["sha256"]:
        raise IntegrityError(f"online snapshot {snapshot['file']!r} is missing or its sha256 changed.",
                             fix="Restore from an intact snapshot; take a new one after a verified recovery.")
    con = _sqlite(store)
    src = sqlite3.connect(path)
    try:
        src.backup(con)
    finally:
        src.close()


def _bad_write(store: FeatureStore, at: datetime) -> int:
    """Write v2's numbers into the v1 online table with the served rows' event times (a job misconfigured)."""
    view = store.get_feature_view("user_stats", 1)
    table = store.online.connection.execute(
        f'SELECT user_id, __event_ts, user_risk, user_txn_7d FROM "fv_user_stats_v{view.version}"').fetchall()
    now_us = int(pd.Timestamp(at).value // 1000)
    rows = [(k, ts, now_us, risk, float(np.round(txn * 30 / 7))) for k, ts, risk, txn in table]
    return store.online.write_rows(view, {"user_id": "int64"}, rows)


def _read(store: FeatureStore, world: dict[str, Any], version: int, at: datetime, model: Any) -> dict[str, Any]:
    """Score the requests of the hour before ``at`` with features read online from ``version``."""
    req = world["traffic"]
    sel = req[(req["event_timestamp"] >= pd.Timestamp(at - _H)) & (req["event_timestamp"] < pd.Timestamp(at))]
    src = OnlineStoreFeatureSource(store, [f"user_stats@v{version}:user_risk", f"user_stats@v{version}:user_txn_7d"],
                                   key_column="user_id")
    feats, missing = src.fetch(sel["key"].to_numpy(), at)
    X = pd.DataFrame({"amount_log": sel["amount_log"].to_numpy()})
    for c in feats.columns:
        X[c] = feats[c].fillna(world["fill_values"][c]).to_numpy()
    return {"scores": score_model(model, X[world["feature_columns"]]), "missing": float(missing.any(axis=1).mean())}


def feature_drill(store: FeatureStore, clock: FixedClock, ws: Any, world: dict[str, Any], *,
                  seed: int) -> dict[str, Any]:
    """Release v2, roll back the flag only (stale cache), re-materialize v1; then corrupt and restore a snapshot.

    After the re-materialization the online store is snapshotted; a misconfigured job then
    writes v2's numbers into the v1 table with the same event times and a later created time,
    so a second re-materialization cannot repair it (the upsert keeps the newer-created row);
    restoring the snapshot does.

    The hourly job materializes the versions it is told to; each phase is measured at a
    simulated time on the requests of the hour before: missing-feature rate, PSI of the
    stable model's scores against the v1 phase, positive rate and an online/offline parity
    check of the version read.
    """
    model = world["stable"]
    flags = {"feature_version": 1}
    job = ["user_stats@v1"]
    phases: list[dict[str, Any]] = []
    baseline = None

    def run_job(until: datetime) -> None:
        clock.set(until)
        store.materialize_incremental(until, views=job)

    def measure(name: str, at: datetime) -> None:
        nonlocal baseline
        v = flags["feature_version"]
        got = _read(store, world, v, at, model)
        if baseline is None:
            baseline = got["scores"]
        par = parity_report(store, [f"user_stats@v{v}:user_txn_7d"], sample_size=300, seed=seed, at=at)
        phases.append({"phase": name, "at": at.isoformat(), "feature_version": v, "job_versions": list(job),
                       "missing_feature_rate": round(got["missing"], 4),
                       "score_psi_vs_v1": round(psi(baseline, got["scores"]), 4),
                       "positive_rate": round(float((got["scores"] >= 0.5).mean()), 4),
                       "parity_match_rate": round(par.match_rate, 4),
                       "parity_missing_online": len(par.missing_online)})

    for h in (1, 2):
        run_job(START + h * _H)
    measure("v1 live", START + 2 * _H)
    flags["feature_version"], job = 2, ["user_stats@v2"]        # the release: flag and job move to v2
    run_job(START + 3 * _H)
    measure("v2 released", START + 3 * _H)
    flags["feature_version"] = 1                                 # flag-only rollback: job still on v2
    at = START + 3 * _H + timedelta(minutes=25)
    clock.set(at)
    measure("flag-only rollback", at)
    job = ["user_stats@v1"]                                      # cache refresh: v1 re-materialized to now
    run_job(at)
    measure("v1 re-materialized", at)
    snap = snapshot_online(store, ws, label="after-remat")       # known-good (parity verified just above)
    at = START + 3 * _H + timedelta(minutes=40)
    clock.set(at)
    written = _bad_write(store, at)                              # a job writes v2 numbers into the v1 table
    measure("bad write into v1 table", at)
    store.materialize(START - _H, at, views=["user_stats@v1"])  # the same-event-time rows look newer: no repair
    measure("re-materialized over bad write", at)
    restore_online(store, ws, snap)
    measure("snapshot restored", at)
    return {"phases": phases, "ttl_minutes": FEATURE_TTL.total_seconds() / 60, "snapshot": snap,
            "bad_rows_written": written}


#: failure -> what to roll back, the control and what verifies it (the reference matrix)
ROLLBACK_MATRIX = {
    "model regresses (overall or one segment)": "model",
    "decision threshold / post-processing flag wrong": "flags",
    "canary routing or cohort override wrong": "routing",
    "feature view version computes a wrong value": "feature_version",
    "online store holds stale or expired values": "rematerialize",
    "online rows overwritten with wrong values (same event time)": "snapshot_restore",
    "a release changed model and flags together": "full_release_state",
}
#: the failures of the matrix, in order (the exercise fills in one unit each)
FAILURES = tuple(ROLLBACK_MATRIX)
_CONTROLS = {
    "model": ("registry alias rollback (deployed-prod -> last good)", "alias history; verify(): serving alias"),
    "flags": ("set_flag / restore flags", "verify(): flag checks"),
    "routing": ("candidate weight to 0 % (abort)", "0 candidate requests after the abort"),
    "feature_version": ("feature_version flag to the previous view version", "score PSI back under threshold"),
    "rematerialize": ("re-materialize the previous version's online table", "parity check, missing rate"),
    "snapshot_restore": ("restore the online store from its last verified snapshot", "sha256, parity check"),
    "full_release_state": ("restore(snapshot): alias + routing + flags in one call", "verify(): every check"),
}


def rollback_matrix(answers: dict[str, str] | None = None) -> pd.DataFrame:
    """The rollback matrix as a table (``answers`` overrides the 'roll back' column)."""
    rows = []
    for failure, unit in ROLLBACK_MATRIX.items():
        chosen = (answers or {}).get(failure, unit)
        control, verify = _CONTROLS.get(chosen, ("?", "?"))
        rows.append({"failure": failure, "roll_back": chosen, "control": control, "verified_by": verify})
    return pd.DataFrame(rows)


def matrix_errors(answers: dict[str, str]) -> list[str]:
    """Failures whose answer differs from the reference matrix (with the allowed units listed)."""
    if not isinstance(answers, dict):
        raise ValidationError(f"matrix_errors: answers must be a dict failure -> unit, got {type(answers).__name__}.",
                              fix=f"Use units from {sorted(_CONTROLS)}.")
    return [f"{f!r}: you chose {answers.get(f)!r}" for f, unit in ROLLBACK_MATRIX.items()
            if f in answers and answers[f] != unit]
