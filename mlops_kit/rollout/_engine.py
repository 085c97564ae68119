"""Serving one analysis interval of requests with arrays: route, fetch, fault, score, time.

This is the data plane of the simulator. One call handles every request of one interval with
numpy operations; there is no Python loop over requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import RolloutError
from .faults import Fault, LatencyModel
from .sources import score_model

__all__ = ["Batch", "LOG_COLUMNS", "new_log", "serve_interval"]

STABLE, CANDIDATE, FALLBACK = 0, 1, 2
NEVER = np.iinfo(np.int64).max

LOG_COLUMNS = {
    "arm": np.int8, "version": np.int16, "score": float, "decision": bool, "latency": float,
    "error": bool, "missing": bool, "fetch_error": bool, "sh_score": float, "sh_decision": bool,
    "sh_latency": float, "affected": bool, "label": np.int8,
}


def new_log(n: int, t_ns: np.ndarray, label_t: np.ndarray, seg: np.ndarray) -> dict[str, np.ndarray]:
    """Preallocate the request log: one array per column, one row per request."""
    log = {}
    for name, dtype in LOG_COLUMNS.items():
        fill = np.nan if dtype is float else 0
        log[name] = np.full(n, fill, dtype=dtype)
    log["t"], log["label_t"], log["seg"] = t_ns, label_t, seg
    return log


@dataclass
class Batch:
    """The mutable arrays of one interval that faults read and modify."""

    n: int
    t_ns: np.ndarray
    seg: np.ndarray
    segment_names: list[str]
    label: np.ndarray
    arm: np.ndarray
    X: dict[str, np.ndarray] = field(default_factory=dict)
    fetched: tuple[str, ...] = ()
    fetch_error: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    latency: np.ndarray | None = None
    affected_features: np.ndarray | None = None
    affected_other: np.ndarray | None = None


def _apply(faults: Sequence[Fault], stage: str, batch: Batch, rng: np.random.Generator) -> None:
    for f in faults:
        if f.stage == stage:
            mask = f.active(batch.t_ns)
            if mask.any():
                f.apply(batch, mask, rng)


def _features(ctx: Any, batch: Batch, lo: int, hi: int, version: Any, at: Any, i: int) -> tuple:
    """Assemble the feature matrix for one feature version and apply feature-stage faults."""
    source = ctx.sources.get(version)
    if source is None:
        raise RolloutError(f"flag feature_version={version!r} names no feature source.",
                           fix=f"Use one of {sorted(map(str, ctx.sources))}.")
    X = {c: ctx.request_values[c][lo:hi].copy() for c in ctx.request_columns}
    fetched: tuple[str, ...] = ()
    if ctx.fetched_columns:
        frame, _ = source.fetch(ctx.keys[lo:hi], at)
        if len(frame) != batch.n:
            raise RolloutError(f"feature source returned {len(frame)} rows for {batch.n} keys.",
                               fix="fetch(keys, at) must return one row per key, in order.")
        for c in ctx.fetched_columns:
            if c not in frame.columns:
                X[c] = np.full(batch.n, np.nan)
            else:
                X[c] = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan).copy()
        fetched = tuple(ctx.fetched_columns)
    sub = Batch(n=batch.n, t_ns=batch.t_ns, seg=batch.seg, segment_names=batch.segment_names,
                label=batch.label, arm=batch.arm, X=X, fetched=fetched,
                fetch_error=np.zeros(batch.n, dtype=bool),
                affected_features=np.zeros(batch.n, dtype=bool), affected_other=batch.affected_other)
    _apply(ctx.faults, "features", sub, np.random.default_rng([ctx.seed, i, 1]))
    missing = np.zeros(batch.n, dtype=bool)
    for c in ctx.feature_columns:
        nan = np.isnan(X[c])
        missing |= nan
        if nan.any():
            X[c][nan] = ctx.fill_values.get(c, 0.0)
    return X, missing, sub.fetch_error, sub.affected_features


def _score(model: Any, X: Mapping[str, np.ndarray], cols: Sequence[str], rows: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({c: X[c][rows] for c in cols})
    try:
        return score_model(model, frame)
    except RolloutError:
        raise
    except Exception as exc:  # a model failure is reported with context, not swallowed
        raise RolloutError(f"model {type(model).__name__} failed on {len(frame)} rows: {exc}",
                           fix="Check that the model accepts the feature columns "
                               f"{list(cols)}.") from exc


def _decide(scores: np.ndarray, flags: Mapping[str, Any]) -> np.ndarray:
    return np.clip(scores + flags.get("score_offset", 0.0), 0.0, 1.0) >= flags.get("threshold", 0.5)


def serve_interval(ctx: Any, log: dict[str, np.ndarray], lo: int, hi: int, i: int, at: Any,
                   state: Any) -> dict[str, Any]:
    """Serve rows [lo, hi) under ``state``; write them into ``log``; return interval totals."""
    n = hi - lo
    rng = np.random.default_rng([ctx.seed, i, 0])
    arm = np.zeros(n, dtype=np.int8)
    batch = Batch(n=n, t_ns=ctx.t_ns[lo:hi], seg=ctx.seg[lo:hi], segment_names=ctx.segment_names,
                  label=ctx.label[lo:hi].copy(), arm=arm, affected_other=np.zeros(n, dtype=bool))
    _apply(ctx.faults, "traffic", batch, rng)
    fallback = bool(state.fallback)
    if fallback:
        arm[:] = FALLBACK
    elif state.weight > 0:
        codes = ctx.router.assign_codes(weights={"candidate": state.weight, "stable": 100 - state.weight},
                                        segments=ctx.segment_labels[lo:hi] if ctx.router.overrides else None,
                                        buckets=ctx.buckets[lo:hi])
        arm[codes == 0] = CANDIDATE
    shadowed = np.zeros(n, dtype=bool)
    if state.shadow_fraction > 0 and not fallback:
        shadowed = (ctx.shadow_buckets[lo:hi] < round(state.shadow_fraction * 10_000)) & (arm == STABLE)
    cand_flags = {**state.flags, **state.candidate_flags}
    versions = {state.flags.get("feature_version")}
    if (arm == CANDIDATE).any() or shadowed.any():
        versions.add(cand_flags.get("feature_version"))
    feats = {v: _features(ctx, batch, lo, hi, v, at, i) for v in sorted(versions, key=str)}
    X_s, missing, fetch_error, aff_f = feats[state.flags.get("feature_version")]
    X_c = feats[cand_flags.get("feature_version")][0] if len(feats) > 1 else X_s
    cols = ctx.feature_columns
    scores = {k: np.full(n, np.nan) for k in ("stable", "candidate", "fallback")}
    for name, rows_mask, model, X in (("stable", arm == STABLE, state.stable_model, X_s),
                                      ("candidate", (arm == CANDIDATE) | shadowed, state.candidate_model, X_c),
                                      ("fallback", arm == FALLBACK, ctx.fallback_model, X_s)):
        rows = np.flatnonzero(rows_mask)
        if len(rows):
            scores[name][rows] = _score(model, X, cols, rows)
    batch.scores = scores
    _apply(ctx.faults, "scores", batch, rng)
    served = np.where(arm == CANDIDATE, scores["candidate"], np.where(arm == FALLBACK, scores["fallback"],
                                                                      scores["stable"]))
    error = fetch_error & (arm != FALLBACK)
    served[error] = np.nan
    decision = np.where(arm == CANDIDATE, _decide(served, cand_flags), _decide(served, state.flags))
    decision[error] = False
    lat: LatencyModel = ctx.latency
    latency = lat.base_ms * rng.lognormal(0.0, lat.sigma, n)
    fetch = np.where(fetch_error, lat.timeout_ms, lat.fetch_ms * rng.lognormal(0.0, lat.fetch_sigma, n))
    latency += np.where(arm == FALLBACK, 0.0, fetch) + np.where(arm == CANDIDATE, lat.candidate_extra_ms, 0.0)
    sh_latency = np.full(n, np.nan)
    if shadowed.any():
        k = int(shadowed.sum())
        sh_latency[shadowed] = (lat.base_ms * rng.lognormal(0.0, lat.sigma, k) + fetch[shadowed]
                                + lat.candidate_extra_ms)
    batch.latency = latency
    _apply(ctx.faults, "latency", batch, rng)
    sh_score = np.where(shadowed & ~fetch_error, scores["candidate"], np.nan)
    sh_decision = shadowed & _decide(np.nan_to_num(sh_score), cand_flags)
    w = slice(lo, hi)
    log["arm"][w], log["score"][w], log["decision"][w] = arm, served, decision
    log["latency"][w], log["error"][w], log["missing"][w] = latency, error, missing
    log["fetch_error"][w], log["sh_score"][w], log["sh_decision"][w] = fetch_error, sh_score, sh_decision
    log["sh_latency"][w], log["label"][w] = sh_latency, batch.label
    log["affected"][w] = (aff_f & (arm != FALLBACK)) | batch.affected_other
    log["version"][w] = np.choose(arm, [state.stable_code, state.candidate_code, ctx.fallback_code])
    agree = (log["decision"][w][shadowed] == sh_decision[shadowed]) if shadowed.any() else np.zeros(0)
    delta = np.abs(scores["candidate"][shadowed] - scores["stable"][shadowed]) if shadowed.any() else np.zeros(0)
    return {"n": n, "n_stable": int((arm == STABLE).sum()), "n_candidate": int((arm == CANDIDATE).sum()),
            "n_fallback": int((arm == FALLBACK).sum()), "n_errors": int(error.sum()),
            "n_shadow": int(shadowed.sum()),
            "agreement": float(agree.mean()) if len(agree) else np.nan,
            "mean_abs_score_delta": float(delta.mean()) if len(delta) else np.nan}
