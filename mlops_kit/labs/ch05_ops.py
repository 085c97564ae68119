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

__all__ = ["FAILURES", "incident_phases", "diagnose_segments", "feature_store", "FeatureDrill", "rematerialized_verdict", "feature_drill",
           "bad_write", "ROLLBACK_MATRIX",
           "rollback_matrix", "matrix_errors", "FEATURE_TTL", "snapshot_online", "restore_online",
           "plot_decision_rate"]

#: online values older than this read as null
FEATURE_TTL = timedelta(minutes=90)
_H = timedelta(hours=1)


def incident_phases(result: RolloutResult, *, fault_start: datetime) -> pd.DataFrame:
    """Triage, stabilize and recover, one row each, at the times the run's events recorded them.

    * triage: the first alert (a failed guardrail measurement) at or after ``fault_start``;
    * stabilize: the first mitigation after it (abort, revert, ...): the harm stops there, and
      this is what ``incident_report`` measures as time to recover;
    * recover: the first registry rollback at or after the mitigation (the alias back on the
      known-good version).

    No time here is chosen: a run without an alert, a mitigation or a registry rollback raises.
    """
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
    back = ev[(ev["kind"] == "rollback") & (ev["time"] >= t_stable)]
    if back.empty:
        raise ValidationError("incident_phases: the registry alias was never rolled back after the mitigation.",
                              fix="Release through RegistryModelProvider so that an abort moves the alias back.")
    rows = [("triage", t_alert, "alert", "page: " + str(alerts["detail"].iloc[0])[:80]),
            ("stabilize", t_stable, str(mit["kind"].iloc[0]), "candidate routed to 0 %"),
            ("recover", back["time"].iloc[0], "rollback", str(back["detail"].iloc[0])[:80])]
    out = pd.DataFrame(rows, columns=["phase", "time", "event", "what"])
    out["minutes_since_fault"] = ((out["time"] - pd.Timestamp(fault_start)).dt.total_seconds() / 60).round(1)
    return out


def diagnose_segments(requests: pd.DataFrame, *, since: datetime, until: datetime | None = None) -> pd.DataFrame:
    """Mean score and positive rate per segment and arm on the requests served in ``[since, until)``
    (served answers only; ``until=None``: to the end)."""
    t = requests["event_timestamp"]
    keep = (t >= pd.Timestamp(since)) & (True if until is None else t < pd.Timestamp(until))
    r = requests[keep & requests["arm"].isin(["stable", "candidate"])]
    if set(r["arm"]) != {"stable", "candidate"}:
        raise ValidationError(f"diagnose_segments: no requests of both arms between {since} and {until}.",
                              fix="Pass a window in which the candidate served traffic (from the rollout start).")
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


def bad_write(store: FeatureStore, *, at: datetime) -> int:
    """A misconfigured job: v2's numbers written into the v1 online table with the served rows' event
    times and created time ``at``; returns the rows written."""
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


class FeatureDrill:
    """The measuring side of the feature-rollback drill; the moves (flag, job, writes) are the caller's.

    ``flags["feature_version"]`` is the version serving reads; :meth:`materialize` is the hourly
    job (it moves the store's clock); :meth:`measure` scores the requests of the hour before
    ``at`` with the stable model on features read online from the flagged version and records
    the missing-feature rate, the PSI of the scores against the first phase, the positive rate
    and an online/offline parity check of that version.
    """

    def __init__(self, store: FeatureStore, clock: FixedClock, world: dict[str, Any], *, seed: int) -> None:
        if not isinstance(store, FeatureStore) or not isinstance(clock, FixedClock):
            raise ValidationError("FeatureDrill: pass the store and clock feature_store() returned.",
                                  fix="store, clock = feature_store(ws, world, seed=seed)")
        self.store, self.clock, self.world, self.seed = store, clock, world, int(seed)
        self.flags: dict[str, int] = {"feature_version": 1}
        self.phases: list[dict[str, Any]] = []
        self._baseline: Any = None

    def materialize(self, until: datetime, *, views: list[str]) -> Any:
        """Run the materialization job for ``views`` up to ``until`` (the job's clock moves there)."""
        self.clock.set(until)
        return self.store.materialize_incremental(until, views=list(views))

    def measure(self, name: str, *, at: datetime) -> dict[str, Any]:
        """Measure serving at ``at`` with the flagged feature version; returns (and records) the row."""
        if not isinstance(name, str) or not name or name in {p["phase"] for p in self.phases}:
            raise ValidationError(f"FeatureDrill.measure: phase name must be new and non-empty, got {name!r}.",
                                  fix="Name each phase once, e.g. 'v1 re-materialized'.")
        self.clock.set(at)
        v = int(self.flags["feature_version"])
        got = _read(self.store, self.world, v, at, self.world["stable"])
        if self._baseline is None:
            self._baseline = got["scores"]
        par = parity_report(self.store, [f"user_stats@v{v}:user_txn_7d"], sample_size=300, seed=self.seed, at=at)
        row = {"phase": name, "at": at.isoformat(), "feature_version": v,
               "missing_feature_rate": round(got["missing"], 4),
               "score_psi_vs_v1": round(psi(self._baseline, got["scores"]), 4),
               "positive_rate": round(float((got["scores"] >= 0.5).mean()), 4),
               "parity_match_rate": round(par.match_rate, 4), "parity_missing_online": len(par.missing_online)}
        self.phases.append(row)
        return row

    def table(self) -> pd.DataFrame:
        """The phases measured so far, one row each."""
        return pd.DataFrame(self.phases)


def rematerialized_verdict(phases: pd.DataFrame) -> dict[str, Any]:
    """``rec.check`` arguments for the feature-version rollback, from the drill's phase table."""
    by = phases.set_index("phase")
    remat = by.loc["v1 re-materialized"]
    ok = (by.loc["v2 released", "score_psi_vs_v1"] > 0.25 and by.loc["flag-only rollback", "missing_feature_rate"] > 0.5
          and remat["missing_feature_rate"] <= 0.01 and remat["parity_match_rate"] == 1.0
          and remat["score_psi_vs_v1"] < 0.1)
    cols = ["missing_feature_rate", "score_psi_vs_v1", "parity_match_rate"]
    return dict(passed=bool(ok), observed=by[cols].iloc[:4].to_dict(orient="index"),
                threshold="v2 PSI > 0.25; flag-only missing > 50 %; after re-materialization missing <= 1 %, "
                          "parity 100 %, PSI < 0.1",
                detail="the feature-version rollback needs the flag AND a refreshed v1 online table",
                look_at="drill.materialize(rollback_at, views=['user_stats@v1']) and the view's TTL")


def feature_drill(store: FeatureStore, clock: FixedClock, ws: Any, world: dict[str, Any], *, seed: int,
                  rematerialize: bool = True, restore: bool = True) -> dict[str, Any]:
    """The whole drill in one call (the notebook makes the same moves cell by cell).

    Release v2 (flag and job), roll back the flag only (stale cache), re-materialize v1
    (skipped with ``rematerialize=False``), snapshot; then a same-event-time bad write, a
    re-materialization that cannot repair it, and the snapshot restore (skipped with
    ``restore=False``).
    """
    drill = FeatureDrill(store, clock, world, seed=seed)
    for h in (1, 2):
        drill.materialize(START + h * _H, views=["user_stats@v1"])
    drill.measure("v1 live", at=START + 2 * _H)
    drill.flags["feature_version"] = 2
    drill.materialize(START + 3 * _H, views=["user_stats@v2"])
    drill.measure("v2 released", at=START + 3 * _H)
    drill.flags["feature_version"] = 1
    at = START + 3 * _H + timedelta(minutes=25)
    drill.measure("flag-only rollback", at=at)
    if rematerialize:
        drill.materialize(at, views=["user_stats@v1"])
    drill.measure("v1 re-materialized", at=at)
    snap = snapshot_online(store, ws, label="after-remat")
    at = START + 3 * _H + timedelta(minutes=40)
    clock.set(at)
    written = bad_write(store, at=at)
    drill.measure("bad write into v1 table", at=at)
    store.materialize(START - _H, at, views=["user_stats@v1"])
    drill.measure("re-materialized over bad write", at=at)
    if restore:
        restore_online(store, ws, snap)
    drill.measure("snapshot restored", at=at)
    return {"phases": drill.phases, "ttl_minutes": FEATURE_TTL.total_seconds() / 60, "snapshot": snap,
            "bad_rows_written": written}


#: failure -> what to roll back, the control and what verifies it (the reference matrix)
ROLLBACK_MATRIX = {
    "after a rollback most online reads of user features are null; the offline rows are fresh": "rematerialize",
    "a configuration push moved the decision threshold from 0.5 to 0.3; no scorer or feature changed": "flags",
    ("one segment's scores inverted right after a release; online features match offline, threshold "
     "unchanged"): "model",
    ("a release moved the scorer and the threshold; after the alias rollback declines stay "
     "doubled"): "full_release_state",
    ("parity fails for most users although the table was just re-materialized; the bad rows carry the "
     "good rows' event times"): "snapshot_restore",
    "users of a cohort held on the stable arm are answered by the candidate": "routing",
    ("since the aggregation job's release, every user's 7-day count reads about 4x what the old "
     "definition gives"): "feature_version",
}
#: the failures of the matrix, in order (the exercise fills in one unit each; not in the units' order)
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
