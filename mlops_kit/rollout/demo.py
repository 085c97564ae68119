"""A small seeded traffic world for rollout drills when the full data world is not needed.

``demo_world`` returns request traffic (keys, times, segments, a request-time ``amount``,
fraud labels that arrive after a delay), a per-user feature table for an online feature
source, and two honest :class:`LinearScorer` models (a stable one and a slightly better
candidate), all determined by the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .._time import UTC, ensure_utc
from ..errors import DefinitionError, ValidationError

__all__ = ["LinearScorer", "demo_world", "DEMO_SEGMENTS", "DEMO_FEATURES"]

DEMO_SEGMENTS = ("card_present", "ecommerce", "high_value", "new_account")
DEMO_FEATURES = ("amount_log", "user_risk", "user_txn_7d")
_TRUE = {"amount_log": 0.9, "user_risk": 2.2, "user_txn_7d": -0.35}
_BIAS = -6.0


@dataclass(frozen=True, kw_only=True)
class LinearScorer:
    """Logistic score ``sigmoid(bias + sum(w_f * x_f))`` with ``predict_proba`` like a classifier."""

    weights: Mapping[str, float]
    bias: float = 0.0
    columns: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.weights, Mapping) or not self.weights:
            raise DefinitionError(f"LinearScorer: weights must be a non-empty mapping, got {self.weights!r}.",
                                  fix="Use e.g. weights={'amount_log': 0.9}.")
        object.__setattr__(self, "columns", tuple(self.weights))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Return an (n, 2) array: P(legit), P(fraud)."""
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValidationError(f"LinearScorer: input lacks columns {missing}.", fix="Pass every weighted column.")
        z = np.full(len(X), float(self.bias))
        for c, w in self.weights.items():
            z += w * X[c].to_numpy(dtype=float)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class labels at the 0.5 threshold."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def demo_world(n_requests: int = 50_000, *, seed: int = 0, n_users: int = 5_000,
               start: datetime = datetime(2025, 3, 1, tzinfo=UTC), duration: timedelta = timedelta(hours=12),
               label_delay: timedelta = timedelta(minutes=20), label_never_share: float = 0.1
               ) -> dict[str, Any]:
    """Seeded requests, a user feature table and two models.

    Returns
    -------
    dict
        ``traffic`` (key, event_timestamp, segment, amount_log, label, label_timestamp),
        ``features`` (key, user_risk, user_txn_7d), ``stable`` and ``candidate`` LinearScorers,
        ``feature_columns`` and ``fill_values``.
    """
    for name, v, low in (("n_requests", n_requests, 1), ("n_users", n_users, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValidationError(f"demo_world: {name} must be an integer >= {low}, got {v!r}.", fix=f"Use {name}=1000.")
    start = ensure_utc(start, name="start")
    if not isinstance(duration, timedelta) or duration <= timedelta(0):
        raise ValidationError(f"demo_world: duration must be a positive timedelta, got {duration!r}.",
                              fix="Use e.g. duration=timedelta(hours=12).")
    if not isinstance(label_delay, timedelta) or label_delay < timedelta(0):
        raise ValidationError(f"demo_world: label_delay must be a timedelta >= 0, got {label_delay!r}.",
                              fix="Use e.g. label_delay=timedelta(minutes=20).")
    if not 0 <= label_never_share < 1:
        raise ValidationError(f"demo_world: label_never_share must be in [0, 1), got {label_never_share!r}.",
                              fix="Use e.g. 0.1.")
    rng = np.random.default_rng(seed)
    seg_of_user = rng.choice(len(DEMO_SEGMENTS), size=n_users, p=[0.45, 0.35, 0.08, 0.12])
    user_risk = rng.normal(0.0, 1.0, n_users) + np.where(seg_of_user == 3, 0.8, 0.0)
    user_txn = rng.poisson(6.0, n_users).astype(float)
    users = rng.integers(0, n_users, n_requests)
    offs = np.sort(rng.integers(0, int(duration / timedelta(microseconds=1)), n_requests))
    ts = pd.Timestamp(start) + pd.to_timedelta(offs, unit="us")
    amount_log = rng.normal(3.5, 1.0, n_requests) + np.where(seg_of_user[users] == 2, 1.5, 0.0)
    z = (_BIAS + _TRUE["amount_log"] * amount_log + _TRUE["user_risk"] * user_risk[users]
         + _TRUE["user_txn_7d"] * user_txn[users])
    label = (rng.random(n_requests) < 1 / (1 + np.exp(-z))).astype(np.int8)
    delay = rng.exponential(label_delay / timedelta(microseconds=1), n_requests)
    lts = ts + pd.to_timedelta(delay.astype(np.int64), unit="us")
    lts = lts.where(rng.random(n_requests) >= label_never_share)
    traffic = pd.DataFrame({
        "key": users.astype(np.int64), "event_timestamp": ts.astype("datetime64[us, UTC]"),
        "segment": np.asarray(DEMO_SEGMENTS, dtype=object)[seg_of_user[users]],
        "amount_log": amount_log, "label": label, "label_timestamp": lts.astype("datetime64[us, UTC]")})
    features = pd.DataFrame({"key": np.arange(n_users, dtype=np.int64), "user_risk": user_risk,
                             "user_txn_7d": user_txn})
    noisy = {k: v * f for (k, v), f in zip(_TRUE.items(), (0.93, 0.9, 1.1))}
    return {"traffic": traffic, "features": features,
            "stable": LinearScorer(weights=noisy, bias=_BIAS + 0.1),
            "candidate": LinearScorer(weights=dict(_TRUE), bias=_BIAS),
            "feature_columns": list(DEMO_FEATURES),
            "fill_values": {"amount_log": 3.5, "user_risk": 0.0, "user_txn_7d": 6.0}}
