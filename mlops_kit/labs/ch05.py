"""Chapter 5 lab: releases of a fraud scorer on the rollout simulator, through the real registry.

The notebook calls these functions so its cells stay short. Traffic, user features and two
honest scorers come from :func:`mlops_kit.rollout.demo_world` (seeded, six hours, about 830
requests per five-minute interval at scale 1). Both scorers are registered in a
:class:`~mlops_kit.registry.ModelRegistry` (``FixedClock``) and released through
:class:`~mlops_kit.rollout.RegistryModelProvider`, so every deploy and rollback moves the
``deployed-prod`` alias and is audited. Simulator runs read user features from an in-memory
source (the feature-store drill of section 4 uses the real online store, see
:mod:`mlops_kit.labs.ch05_ops`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .._time import UTC, FixedClock
from ..errors import ValidationError
from ..registry import (DataSnapshot, FeatureRef, Lineage, ModelMetadata, ModelRegistry, capture_environment,
                        infer_signature)
from ..rollout import (CanaryStrategy, Guardrail, InMemoryFeatureSource, RegistryModelProvider, RiskBudget,
                       RolloutResult, RolloutSimulator, SegmentRegression, demo_world)

__all__ = ["START", "WARMUP", "BAKE_MIN", "BAD_SEGMENT", "make_world", "lab_registry", "release_pair", "guardrails",
           "make_sim", "bad_fault", "run_canary", "routing_report", "segment_coverage", "exposure_from_intervals",
           "deployment_modes", "budget_table", "explore_canary", "exposure_intervals", "memory_models",
           "budget_verdict"]

START = datetime(2025, 3, 1, tzinfo=UTC)
WARMUP = timedelta(hours=1)
#: the segment the bad candidate regresses on (8 % of the traffic)
BAD_SEGMENT = "high_value"
#: how long every canary step of the chapter bakes (minutes); a given of the chapter, not a choice
BAKE_MIN = 30
_M = timedelta(minutes=1)


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(f"seed must be an integer >= 0, got {seed!r}.", fix="Pass e.g. seed=7.")
    return int(seed)


def make_world(*, seed: int, scale: float = 1.0) -> dict[str, Any]:
    """Six hours of seeded requests (60 000 x ``scale``), 6 000 users, labels after ~10 min."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.25 <= scale <= 4:
        raise ValidationError(f"make_world: scale must be a number in [0.25, 4], got {scale!r}.",
                              fix="Pass scale=1 (the default world).")
    return demo_world(int(round(60_000 * scale)), seed=_seed(seed), n_users=6_000, start=START,
                      duration=timedelta(hours=6), label_delay=timedelta(minutes=10), label_never_share=0.05)


def lab_registry(ws: Any) -> tuple[ModelRegistry, FixedClock]:
    """A registry in the chapter workspace, on a ``FixedClock`` one day before the traffic."""
    clock = FixedClock(START - timedelta(days=1))
    return ModelRegistry(ws, clock=clock), clock


def _register(registry: ModelRegistry, name: str, model: Any, world: dict[str, Any], run: str) -> int:
    X = world["traffic"][["amount_log"]].head(500).assign(user_risk=0.0, user_txn_7d=6.0)
    meta = ModelMetadata(code_revision=hashlib.sha1(run.encode()).hexdigest()[:7], training_run_id=run,
                         environment=capture_environment(["numpy", "pandas", "scikit-learn"]),
                         parameters={"kind": "linear"},
                         metrics={"auc": 0.8}, eval_set_id=hashlib.sha256(f"eval-{name}".encode()).hexdigest(),
                         segment_metrics={"all": {"auc": 0.8}})
    snap = DataSnapshot(name="train", sha256=hashlib.sha256(run.encode()).hexdigest(), role="training", rows=500)
    ref = FeatureRef(view="user_stats", version=1, fingerprint="user-stats-v1",
                     features=("user_risk", "user_txn_7d"), snapshots=("train",))
    mv = registry.register_model(name, model, signature=infer_signature(X, outputs=model.predict_proba(X)[:, 1]),
                                 metadata=meta, lineage=Lineage(features=(ref,), snapshots=(snap,)), author="dana")
    return int(mv.version)


def _approve(registry: ModelRegistry, name: str, version: int) -> None:
    registry.promote(name, version, "candidate", actor="dana")
    registry.promote(name, version, "staging", actor="dana")
    registry.approve(name, version, actor="olivia", role="ml-owner", note="offline metrics reviewed")
    registry.approve(name, version, actor="rita", role="risk", note="risk review passed")
    registry.promote(name, version, "approved-prod", actor="olivia")


def release_pair(registry: ModelRegistry, clock: FixedClock, name: str, world: dict[str, Any]
                 ) -> tuple[RegistryModelProvider, int, int]:
    """Register the stable scorer (approved and deployed) and the candidate (approved, not deployed).

    Returns the provider the simulator releases through and the two version numbers.
    """
    if not isinstance(name, str) or not name:
        raise ValidationError(f"release_pair: name must be a model name, got {name!r}.", fix="Use e.g. 'fraud'.")
    stable = _register(registry, name, world["stable"], world, f"{name}-run-1")
    _approve(registry, name, stable)
    registry.deploy(name, actor="deployer", reason="initial release")
    clock.advance(timedelta(hours=2))
    candidate = _register(registry, name, world["candidate"], world, f"{name}-run-2")
    _approve(registry, name, candidate)
    clock.advance(timedelta(hours=2))
    return RegistryModelProvider(registry, name), stable, candidate


def guardrails(*, segment_threshold: float, window_min: int, min_samples: int = 20,
               consecutive: int = 1, action: str = "abort") -> list[Guardrail]:
    """The rollback triggers: error rate, p99 latency and the per-segment mean-score regression
    (which fails after ``consecutive`` breaches in a row).

    The segment guardrail's ``segment_threshold`` and ``window_min`` have no default: they are
    the settings a release chooses (exercise 5.1 asks for them).
    """
    if isinstance(window_min, bool) or not isinstance(window_min, int) or window_min < 5 or window_min % 5:
        raise ValidationError(f"guardrails: window_min must be a multiple of 5 (minutes), got {window_min!r}.",
                              fix="Use a whole number of minutes divisible by 5, e.g. window_min=15.")
    return [Guardrail(name="errors", metric="error_rate", threshold=0.02, window=15 * _M, min_samples=30,
                      action=action),
            Guardrail(name="p99", metric="latency_p99", threshold=150.0, window=15 * _M, min_samples=30,
                      action=action),
            Guardrail(name="segments", metric="segment_regression", statistic="mean_score",
                      threshold=float(segment_threshold), window=window_min * _M, compare_to="stable",
                      min_samples=min_samples, consecutive=consecutive, inconclusive_limit=10_000,
                      action=action)]


def bad_fault() -> SegmentRegression:
    """The candidate's defect: inverted scores on the high-value segment, from the rollout start."""
    return SegmentRegression(segment=BAD_SEGMENT, start=START + WARMUP)


def make_sim(world: dict[str, Any], models: Any, *, strategy: Any, guardrails: Sequence[Guardrail] = (),
             faults: Sequence[Any] = (), seed: int = 0, **kw: Any) -> RolloutSimulator:
    """A simulator over the world's traffic with the in-memory user-feature source."""
    return RolloutSimulator(traffic=kw.pop("traffic", world["traffic"]), models=models, strategy=strategy,
                            features=kw.pop("features", None) or InMemoryFeatureSource(world["features"],
                                                                                        key_column="key"),
                            feature_columns=world["feature_columns"], fill_values=world["fill_values"],
                            guardrails=list(guardrails), faults=list(faults), warmup=kw.pop("warmup", WARMUP),
                            seed=_seed(seed), **kw)


def run_canary(world: dict[str, Any], models: Any, *, steps: Sequence[float], segment_threshold: float,
               window_min: int, bake_min: int = BAKE_MIN, budget: RiskBudget | None = None, bad: bool = True,
               consecutive: int = 1, seed: int = 0) -> RolloutResult:
    """One canary of the candidate (with the segment defect when ``bad``); the plain function the widget calls.

    ``steps``, ``segment_threshold`` and ``window_min`` are the release's settings (no defaults);
    every step bakes ``bake_min`` minutes (the chapter's :data:`BAKE_MIN`).
    """
    if isinstance(bake_min, bool) or not isinstance(bake_min, int) or bake_min < 5 or bake_min % 5:
        raise ValidationError(f"run_canary: bake_min must be a multiple of 5 (minutes), got {bake_min!r}.",
                              fix=f"Use a whole number of minutes divisible by 5, e.g. bake_min={BAKE_MIN}.")
    strategy = CanaryStrategy(steps=tuple(steps), bake_time=bake_min * _M, risk_budget=budget)
    sim = make_sim(world, models, strategy=strategy,
                   guardrails=guardrails(segment_threshold=segment_threshold, window_min=window_min,
                                         consecutive=consecutive),
                   faults=[bad_fault()] if bad else [], seed=seed)
    return sim.run()


def memory_models(world: dict[str, Any]) -> Any:
    """The world's stable (deployed) and candidate (approved) scorers without a registry."""
    from ..rollout import InMemoryModelProvider

    return InMemoryModelProvider({"1": world["stable"], "2": world["candidate"]},
                                 {"deployed-prod": "1", "approved-prod": "2"})


def routing_report(requests: pd.DataFrame, intervals: pd.DataFrame) -> dict[str, Any]:
    """Stickiness and shares of a run, recomputed from the request and interval tables.

    Within each step (intervals with the same candidate weight) every key must have been
    served by one arm only; the candidate share of each step must lie within 4 binomial
    standard deviations of its weight (keys, not requests, are hashed: the bound uses keys).
    """
    iv = intervals[intervals["status"] == "progressing"][["start", "end", "weight"]]
    rows, flips = [], 0
    for weight, group in iv.groupby("weight", sort=True):
        lo, hi = group["start"].min(), group["end"].max()
        sel = requests[(requests["event_timestamp"] >= lo) & (requests["event_timestamp"] < hi)
                       & requests["arm"].isin(["stable", "candidate"])]
        per_key = sel.groupby("key")["arm"].nunique()
        flips += int((per_key > 1).sum())
        keys_cand = sel.groupby("key")["arm"].first().eq("candidate")
        p, n = float(weight) / 100, max(len(keys_cand), 1)
        share = float(keys_cand.mean()) if len(keys_cand) else 0.0
        rows.append({"weight_pct": float(weight), "keys": int(len(keys_cand)), "requests": int(len(sel)),
                     "candidate_key_share_pct": round(100 * share, 2),
                     "tolerance_pct": round(float(100 * 4 * np.sqrt(p * (1 - p) / n)), 2),
                     "within_tolerance": bool(abs(share - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12)})
    return {"keys_that_changed_arm_within_a_step": flips, "steps": rows}


def segment_coverage(requests: pd.DataFrame, *, window: timedelta, weight: float) -> pd.DataFrame:
    """Candidate requests per segment in one guardrail window at ``weight`` %, measured from a run.

    Uses the requests the candidate served and scales their per-window rate to ``weight``.
    """
    cand = requests[requests["arm"] == "candidate"]
    total = requests.groupby("segment").size()
    span = (requests["event_timestamp"].max() - requests["event_timestamp"].min()) / window
    out = pd.DataFrame({"requests_per_window": (total / span).round(1)})
    out["candidate_per_window_at_weight"] = (out["requests_per_window"] * weight / 100).round(1)
    out["candidate_served_in_run"] = cand.groupby("segment").size().reindex(out.index).fillna(0).astype(int)
    return out.reset_index()


def exposure_from_intervals(intervals: pd.DataFrame, *, fault_start: datetime) -> int:
    """Candidate requests served from ``fault_start`` on (every one of them met the defect on its segment
    only if it was in that segment; this is the arm-level exposure), summed from the interval table."""
    iv = intervals[pd.to_datetime(intervals["start"], utc=True) >= pd.Timestamp(fault_start)]
    return int(iv["n_candidate"].sum())


def exposure_intervals(result: RolloutResult, *, segment: str = BAD_SEGMENT) -> pd.DataFrame:
    """Per analysis interval: candidate requests, those on ``segment`` and those the fault touched."""
    req = result.requests
    iv = result.intervals[["interval", "start", "end", "weight", "n", "n_candidate"]].copy()
    edges = pd.to_datetime(iv["start"], utc=True)
    idx = np.searchsorted(edges.to_numpy(), req["event_timestamp"].to_numpy(), side="right") - 1
    cand = (req["arm"] == "candidate").to_numpy()
    on_seg = cand & (req["segment"] == segment).to_numpy()
    iv["n_candidate_on_segment"] = np.bincount(idx[on_seg], minlength=len(iv))[:len(iv)]
    iv["n_affected"] = np.bincount(idx[req["affected"].to_numpy()], minlength=len(iv))[:len(iv)]
    return iv


def deployment_modes(world: dict[str, Any], result: RolloutResult) -> pd.DataFrame:
    """Batch vs online release of the same bad candidate: exposure, detection and rollback unit.

    Batch: the candidate scores the whole day in one job; every high-value request of the batch
    gets an inverted score, and the rollback is re-publishing the previous batch output.
    Online canary: exposure is what the canary actually served on the segment before the abort.
    """
    req = world["traffic"]
    batch_bad = int((req["segment"] == BAD_SEGMENT).sum())
    r = result.requests
    online_bad = int(((r["arm"] == "candidate") & (r["segment"] == BAD_SEGMENT)).sum())
    return pd.DataFrame([
        {"mode": "batch (nightly scoring job)", "requests_exposed": batch_bad,
         "share_of_segment_pct": 100.0, "rollback_unit": "previous output table (re-publish)",
         "earliest_detection": "after the job: output checks or delayed labels"},
        {"mode": "online (canary)", "requests_exposed": online_bad,
         "share_of_segment_pct": round(100 * online_bad / max(batch_bad, 1), 2),
         "rollback_unit": "routing weight + registry alias",
         "earliest_detection": "first failed guardrail window"},
    ])


def budget_table(steps: Sequence[float], *, bake: timedelta, budget: RiskBudget) -> pd.DataFrame:
    """Percent-hours each canary step below 100 % consumes (``RiskBudget.cost``), cumulated against ``budget``."""
    if not isinstance(budget, RiskBudget):
        raise ValidationError("budget_table: budget must be a RiskBudget.", fix="Use RiskBudget(pct_hours=10).")
    rows, total = [], 0.0
    for s in steps:
        if s >= 100:
            break
        cost = budget.cost(float(s), bake)
        total += cost
        rows.append({"step_pct": float(s), "pct_hours": round(cost, 3), "cumulative": round(total, 3),
                     "within_budget": bool(total <= budget.pct_hours + 1e-9)})
    return pd.DataFrame(rows)


def budget_verdict(result: RolloutResult, budget: RiskBudget, *, steps: Sequence[float],
                   bake: timedelta) -> dict[str, Any]:
    """``rec.check`` arguments for a canary run under ``budget``: stopped by the budget, never over it.

    The percent-hours spent are recomputed from the interval table (weight below 100 % x interval
    length, while progressing); the run must have reached exactly the last step the budget pays
    for in full (``RiskBudget.cost`` per step) and been aborted with a risk-budget reason.
    """
    iv = result.intervals
    live = iv[(iv["status"] == "progressing") & (iv["weight"] < 100)]
    hours = (pd.to_datetime(live["end"], utc=True) - pd.to_datetime(live["start"], utc=True)).dt.total_seconds() / 3600
    spent = float((live["weight"] * hours).sum())
    paid, total = [], 0.0
    for s in steps:
        total += budget.cost(float(s), bake)
        if s >= 100 or total > budget.pct_hours + 1e-9:
            break
        paid.append(float(s))
    reached = float(iv.loc[iv["status"] == "progressing", "weight"].max())
    aborts = result.events[result.events["kind"] == "abort"]
    why = str(aborts["detail"].iloc[0]) if len(aborts) else ""
    passed = (result.status == "aborted" and "risk budget" in why and spent <= budget.pct_hours + 1e-9
              and abs(spent - result.risk_consumed) < 1e-6 and bool(paid) and reached == paid[-1])
    return dict(passed=bool(passed), observed={"status": result.status, "pct_hours_spent": round(spent, 3),
                                               "max_weight": reached, "abort": why[:60]},
                threshold=f"aborted by the budget after the last step it pays for ({paid[-1] if paid else None} %), "
                          f"spent <= {budget.pct_hours:g} percent-hours",
                detail="the canary consumed percent-hours interval by interval and was stopped by the risk budget",
                look_at="RiskBudget.cost and CanaryStrategy(risk_budget=...)")


def explore_canary(world: dict[str, Any], *, first_step: float, segment_threshold: float, window_min: int,
                   bake_min: int = BAKE_MIN, seed: int = 0) -> tuple[dict[str, Any], list[Any]]:
    """Run the bad candidate's canary with these settings (in-memory models, no registry writes).

    Returns a summary (status, minutes to the abort, candidate requests on the bad segment,
    percent-hours consumed) and two figures: the traffic split and the segment guardrail.
    The widget is a thin wrapper over this.
    """
    from ..rollout import plot_guardrails, plot_traffic_split

    steps = tuple(s for s in (first_step, 25, 50, 100) if s >= first_step)
    steps = tuple(sorted(set(steps)))
    models = memory_models(world)
    r = run_canary(world, models, steps=steps, bake_min=bake_min, segment_threshold=segment_threshold,
                   window_min=window_min, seed=seed)
    ab = r.events[r.events["kind"] == "abort"]
    req = r.requests
    summary = {"steps": list(steps), "status": r.status,
               "minutes_to_abort": None if ab.empty else
               round((ab["time"].iloc[0] - pd.Timestamp(START + WARMUP)).total_seconds() / 60, 1),
               "bad_segment_candidate_requests": int(((req["arm"] == "candidate")
                                                      & (req["segment"] == BAD_SEGMENT)).sum()),
               "pct_hours": round(r.risk_consumed, 2)}
    return summary, [plot_traffic_split(r, title=f"canary {list(steps)} %: {r.status}"),
                     plot_guardrails(r, ["segments"])]
