"""Chapter 6 lab operations: serving through the online store, canaries, drills, the dashboard.

:class:`DailyJobSource` is the serving path: before each read it runs the daily
materialization job (00:05 UTC, incremental from the watermark) when a new day has begun,
then reads ``FeatureStore.get_online_features`` through
:class:`~mlops_kit.rollout.OnlineStoreFeatureSource`. Every job run is recorded (for the
freshness and job-success panels). :func:`canary` releases the holder of ``approved-prod``
through :class:`~mlops_kit.rollout.RegistryModelProvider` on one traffic window.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import OnlineStoreUnavailableError, ValidationError
from ..rollout import (CanaryStrategy, ConceptDrift, CovariateDrift, Guardrail, InMemoryModelProvider,
                       OnlineStoreFeatureSource, OnlineStoreOutage, RegistryModelProvider, RolloutSimulator)
from .ch06 import DAY, FILL, INPUTS, MODEL, WINDOWS, feature_refs

__all__ = ["JOB_AT", "REVIEW_THRESHOLD", "DailyJobSource", "guardrails", "outage_guardrail", "canary", "traffic_for", "drill_fault",
           "hourly_panels", "freshness_table", "skew_table", "first_times", "locate_checklist", "AsOfSource",
           "explore_drill"]

JOB_AT = timedelta(minutes=5)
#: a payment scoring at or above this is declined for review (about 3 % of traffic)
REVIEW_THRESHOLD = 0.1
_M = timedelta(minutes=1)
_INTERVAL = 15 * _M


class DailyJobSource:
    """Online features with the daily materialization job run on schedule (a FeatureSource).

    Parameters
    ----------
    store: the FeatureStore; clock: its FixedClock (set to each job's run time).
    """

    def __init__(self, store: Any, clock: Any) -> None:
        self.store, self.clock = store, clock
        self.inner = OnlineStoreFeatureSource(store, feature_refs(), key_column="user_id")
        self.columns = self.inner.columns
        self.jobs: list[dict[str, Any]] = []
        self.reads: list[dict[str, Any]] = []
        self.served: list[pd.DataFrame] = []

    def run_job(self, run_at: datetime) -> None:
        """Materialize every view incrementally up to ``run_at`` (what the scheduler does at 00:05).

        A job the online store cannot take (``OnlineStoreUnavailableError``) is recorded as failed
        and retried at the next read; its watermark did not move, so the retry completes it.
        """
        self.clock.set(run_at)
        try:
            rep = self.store.materialize_incremental(run_at)
        except OnlineStoreUnavailableError:
            self.jobs.append({"run_at": pd.Timestamp(run_at), "rows_written": 0, "data_as_of": None, "succeeded": False})
            return
        self.jobs.append({"run_at": pd.Timestamp(run_at), "rows_written": int(sum(v.rows_written for v in rep.views.values())),
                          "data_as_of": pd.Timestamp(run_at).floor("D"), "succeeded": True})

    def _last_success(self) -> dict[str, Any] | None:
        done = [j for j in self.jobs if j["succeeded"]]
        return done[-1] if done else None

    def fetch(self, keys: np.ndarray, at: datetime) -> tuple[pd.DataFrame, np.ndarray]:
        """Run the due job (if any, or retry a failed one), then read ``keys`` online as of ``at``."""
        due = pd.Timestamp(at).floor("D") + JOB_AT
        done = self._last_success()
        if pd.Timestamp(at) >= due and (done is None or done["run_at"] < due):
            self.run_job(due.to_pydatetime())
        frame, missing = self.inner.fetch(keys, at)
        self.served.append(frame)
        done = self._last_success()
        last = done["data_as_of"] if done else None
        self.reads.append({"at": pd.Timestamp(at), "keys": int(len(keys)),
                           "feature_age_h": None if last is None else (pd.Timestamp(at) - last).total_seconds() / 3600})
        return frame, missing


class AsOfSource:
    """In-memory as-of source over the daily rows (for the drill widget: no store writes)."""

    def __init__(self, daily: pd.DataFrame, profile: pd.DataFrame) -> None:
        self.daily = daily.sort_values("event_timestamp")
        self.profile = profile.sort_values("event_timestamp")
        self.columns = tuple(r.split(":")[1] for r in feature_refs())

    def fetch(self, keys: np.ndarray, at: datetime) -> tuple[pd.DataFrame, np.ndarray]:
        """The latest daily row at or before ``at`` (within two days) and the latest profile row."""
        left = pd.DataFrame({"user_id": np.asarray(keys, dtype=np.int64),
                             "event_timestamp": pd.Timestamp(at)}).astype({"event_timestamp": "datetime64[us, UTC]"})
        left["_i"] = np.arange(len(left))
        out = pd.merge_asof(left.sort_values("event_timestamp"), self.daily.drop(columns="created_timestamp"),
                            on="event_timestamp", by="user_id", tolerance=pd.Timedelta(days=2))
        out = pd.merge_asof(out, self.profile.drop(columns="created_timestamp"), on="event_timestamp", by="user_id")
        out = out.sort_values("_i")
        values = out[list(self.columns)].to_numpy(dtype=float)
        return pd.DataFrame(values, columns=list(self.columns)), np.isnan(values)


def guardrails(*, outage: Guardrail | None = None) -> list[Guardrail]:
    """Rollback triggers: errors, p99 latency, input drift (stable scores vs the warm-up), candidate
    score shift vs stable, decline-rate change; plus the outage guardrail when given."""
    lim = 10_000  # sparse night traffic is inconclusive, never a reason to pause the release
    # PSI over 10 bins reads about 9/n by chance alone: with 100 candidate scores a chance PSI
    # crosses 0.25 in some worlds (a false abort), so the candidate comparison waits for 300
    out = [Guardrail(name="errors", metric="error_rate", arm="all", threshold=0.02, window=120 * _M, min_samples=30,
                     inconclusive_limit=lim),
           Guardrail(name="p99-latency", metric="latency_p99", arm="all", threshold=150.0, window=120 * _M,
                     min_samples=30, inconclusive_limit=lim),
           Guardrail(name="input-drift", metric="score_psi", arm="stable", compare_to="reference", threshold=0.25,
                     window=6 * 60 * _M, min_samples=200, inconclusive_limit=lim),
           Guardrail(name="candidate-shift", metric="score_psi", compare_to="stable", threshold=0.25,
                     window=6 * 60 * _M, min_samples=300, inconclusive_limit=lim)]
    if outage is not None:
        out.append(outage)
    return out


def outage_guardrail(*, metric: str, threshold: float, window_min: int, action: str, arm: str) -> Guardrail:
    """The feature-retrieval guardrail of the outage drill (the exercise chooses every setting)."""
    return Guardrail(name="feature-retrieval", metric=metric, threshold=float(threshold), window=window_min * _M,
                     min_samples=20, arm=arm, action=action, inconclusive_limit=10_000)


def traffic_for(frames: dict[str, pd.DataFrame], window: str) -> pd.DataFrame:
    """The requests of one traffic window: key, time, segment (channel), request inputs, label."""
    if window not in WINDOWS:
        raise ValidationError(f"traffic_for: window must be one of {sorted(WINDOWS)}, got {window!r}.",
                              fix="Use 'release', 'outage' or 'drift'.")
    lo, hi = WINDOWS[window]
    t = frames["traffic"]
    t = t[(t["event_timestamp"] >= pd.Timestamp(lo)) & (t["event_timestamp"] < pd.Timestamp(hi))]
    return pd.DataFrame({"key": t["user_id"].to_numpy(), "event_timestamp": t["event_timestamp"].to_numpy(),
                         "segment": t["channel"].astype(str).to_numpy(), "amount": t["amount"].to_numpy(),
                         "is_online": t["is_online"].to_numpy(), "label": t["is_fraud"].astype(int).to_numpy(),
                         "label_timestamp": t["label_timestamp"].to_numpy()})


def drill_fault(kind: str, window: str, *, magnitude: float = 3.0, start_h: float = 18, hours: float | None = None) -> Any:
    """The injected fault of a drill, starting ``start_h`` hours into the window."""
    at = WINDOWS[window][0] + timedelta(hours=start_h)
    end = None if hours is None else at + timedelta(hours=hours)
    if kind == "drift":
        return CovariateDrift(feature="amount", scale=float(magnitude), start=at, end=end)
    if kind == "concept":
        return ConceptDrift(share=min(max(float(magnitude) / 100, 0.001), 1.0), start=at, end=end)
    if kind == "outage":
        return OnlineStoreOutage(share=min(max(float(magnitude), 0.01), 1.0), start=at, end=end)
    raise ValidationError(f"drill_fault: kind must be 'drift', 'concept' or 'outage', got {kind!r}.",
                          fix="Pick one of the three drills.")


def canary(models: Any, traffic: pd.DataFrame, source: Any, *, guards: Sequence[Guardrail], faults: Sequence[Any] = (),
           fallback: Any = None, seed: int = 0, steps: tuple[float, ...] = (10, 50, 100),
           bake_h: int = 12, warmup_h: int = 12) -> Any:
    """Run one canary of ``models``' candidate over ``traffic`` with features from ``source``."""
    strategy = CanaryStrategy(steps=steps, bake_time=timedelta(hours=bake_h), analysis_interval=_INTERVAL)
    sim = RolloutSimulator(traffic=traffic, models=models, strategy=strategy, features=source,
                           feature_columns=list(INPUTS), fill_values=FILL, guardrails=list(guards),
                           faults=list(faults), fallback_model=fallback, warmup=timedelta(hours=warmup_h),
                           redeploy_time=_INTERVAL, flags={"threshold": REVIEW_THRESHOLD},
                           seed=int(seed))
    return sim.run()


def hourly_panels(result: Any) -> pd.DataFrame:
    """Per hour: volume, split, latency p95/p99, errors, missing-feature rate, decline rate by arm."""
    r = result.requests.copy()
    r["hour"] = r["event_timestamp"].dt.floor("h")
    g = r.groupby("hour")
    out = pd.DataFrame({"requests": g.size(), "candidate_share": g["arm"].apply(lambda a: (a == "candidate").mean()),
                        "fallback_share": g["arm"].apply(lambda a: (a == "fallback").mean()),
                        "latency_p95_ms": g["latency_ms"].quantile(0.95), "latency_p99_ms": g["latency_ms"].quantile(0.99),
                        "error_rate": g["error"].mean(), "missing_feature_rate": g["missing_feature"].mean(),
                        "decline_rate": g["decision"].mean()})
    for arm in ("stable", "candidate"):
        sub = r[r["arm"] == arm].groupby("hour")["decision"].mean()
        out[f"decline_rate_{arm}"] = sub.reindex(out.index)
    return out.reset_index()


def freshness_table(source: DailyJobSource) -> pd.DataFrame:
    """Feature age at each read (hours since the data the last job published) and job runs."""
    reads = pd.DataFrame(source.reads)
    reads["hour"] = reads["at"].dt.floor("h")
    return reads.groupby("hour").agg(feature_age_h=("feature_age_h", "max"), keys=("keys", "sum")).reset_index()


def skew_table(train: pd.DataFrame, served: pd.DataFrame, traffic: pd.DataFrame, psi_fn: Any) -> pd.DataFrame:
    """Training-serving skew: PSI of each input's training distribution vs what was served.

    ``served`` holds the features read online; request inputs come from ``traffic``.
    """
    rows = []
    for c in INPUTS:
        a = pd.to_numeric(train[c], errors="coerce").fillna(FILL[c]).to_numpy(dtype=float)
        src = served if c in served.columns else traffic
        b = pd.to_numeric(src[c], errors="coerce").fillna(FILL[c]).to_numpy(dtype=float)
        rows.append({"feature": c, "psi_train_vs_served": round(float(psi_fn(a, b)), 4),
                     "train_mean": round(float(a.mean()), 3), "served_mean": round(float(b.mean()), 3)})
    return pd.DataFrame(rows)


def first_times(events: pd.DataFrame, *, containment: Sequence[str]) -> dict[str, Any]:
    """First alert and first containment event (one of ``containment``) at or after it."""
    alerts = events[events["kind"] == "alert"]
    if alerts.empty:
        return {"first_alert": None, "first_containment": None, "containment_kind": None}
    t0 = alerts["time"].iloc[0]
    c = events[events["kind"].isin(list(containment)) & (events["time"] >= t0)]
    return {"first_alert": t0.isoformat(), "first_containment": None if c.empty else c["time"].iloc[0].isoformat(),
            "containment_kind": None if c.empty else str(c["kind"].iloc[0])}


def locate_checklist(items: Sequence[dict[str, Any]], mapping: dict[str, Sequence[str]], exists: Any) -> pd.DataFrame:
    """Each checklist item with the capstone artifacts that evidence it, and whether all are present."""
    rows = []
    for it in items:
        arts = list(mapping.get(it["id"], ()))
        present = [a for a in arts if exists(a)]
        rows.append({"id": it["id"], "area": it["area"], "artifacts": arts, "present": len(present),
                     "located": bool(arts) and len(present) == len(arts), "course_reference": it["evidence"]})
    return pd.DataFrame(rows)


def explore_drill(models: dict[str, Any], frames: dict[str, pd.DataFrame], source: AsOfSource, *, kind: str = "drift",
                  magnitude: float = 3.0, seed: int = 0, outage_guard: Guardrail | None = None) -> tuple[dict[str, Any], Any]:
    """Run one drill on in-memory copies (no registry or store writes); the widget's plain function.

    ``models``: ``{"stable": model, "candidate": model, "fallback": model}``; ``outage_guard`` is
    added to the release's guardrails (an outage drill without one has no feature-retrieval alert).
    """
    from ..rollout import plot_traffic_split

    window = "outage" if kind == "outage" else "drift"
    fault = drill_fault(kind, window, magnitude=magnitude, hours=3 if kind == "outage" else None)
    provider = InMemoryModelProvider({"1": models["stable"], "2": models["candidate"]},
                                     {"deployed-prod": "1", "approved-prod": "2"})
    guards = guardrails(outage=outage_guard if kind == "outage" else None)
    if kind == "concept":
        guards.append(Guardrail(name="kpi-fraud-caught", metric="kpi_drop", statistic="fraud_caught", arm="all",
                                compare_to="reference", threshold=0.2, window=DAY, min_samples=20,
                                inconclusive_limit=10_000))
    r = canary(provider, traffic_for(frames, window), source, guards=guards, faults=[fault],
               fallback=models["fallback"], seed=seed)
    t = first_times(r.events, containment=("abort", "rollback", "fallback_on"))
    req = r.requests
    arrived = int((req["label_timestamp"] <= req["event_timestamp"].max()).sum())
    detect = None if t["first_alert"] is None else (pd.Timestamp(t["first_alert"]) - pd.Timestamp(fault.start)).total_seconds() / 60
    summary = {"kind": kind, "magnitude": round(float(magnitude), 6), "status": r.status, **t, "detect_min": detect,
               "labels_arrived_in_window": f"{arrived} of {len(req)}"}
    return summary, plot_traffic_split(r, title=f"{kind} drill (magnitude {magnitude:g}): {r.status}")
