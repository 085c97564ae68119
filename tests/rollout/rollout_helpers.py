"""Builders shared by the rollout tests: a seeded world, a simulator factory, independent scoring."""

from __future__ import annotations

from datetime import datetime, timedelta

from mlops_kit._time import UTC
from mlops_kit.rollout import (CanaryStrategy, Guardrail, InMemoryFeatureSource, InMemoryModelProvider,
                               RolloutSimulator, demo_world)

START = datetime(2025, 3, 1, tzinfo=UTC)


def build_world():
    """60k requests over 6 h (about 830 per 5-minute interval), labels after ~10 min."""
    return demo_world(60_000, seed=11, n_users=6_000, start=START, duration=timedelta(hours=6),
                      label_delay=timedelta(minutes=10), label_never_share=0.05)


def provider(world):
    return InMemoryModelProvider({"1": world["stable"], "2": world["candidate"]},
                                 {"deployed-prod": "1", "approved-prod": "2"})


def standard_guardrails(**over):
    m = timedelta(minutes=1)
    g = [
        Guardrail(name="errors", metric="error_rate", threshold=0.02, window=15 * m, min_samples=30),
        Guardrail(name="p99", metric="latency_p99", threshold=150.0, window=15 * m, min_samples=30),
        Guardrail(name="segments", metric="segment_regression", statistic="positive_rate", threshold=0.10,
                  window=30 * m, compare_to="stable", min_samples=15, inconclusive_limit=1000),
    ]
    return g


def make_sim(world, *, strategy=None, guardrails=None, **kw):
    kw.setdefault("warmup", timedelta(hours=1))
    kw.setdefault("seed", 5)
    return RolloutSimulator(
        traffic=kw.pop("traffic", world["traffic"]), models=kw.pop("models", None) or provider(world),
        strategy=strategy or CanaryStrategy(), features=kw.pop("features", None)
        or InMemoryFeatureSource(world["features"], key_column="key"),
        feature_columns=world["feature_columns"], fill_values=world["fill_values"],
        guardrails=standard_guardrails() if guardrails is None else guardrails, **kw)


def independent_scores(world, model, req):
    """Score the served requests directly: traffic amount + the user's features (pandas merge)."""
    X = req[["key", "event_timestamp"]].merge(world["traffic"][["key", "event_timestamp", "amount_log"]],
                                               on=["key", "event_timestamp"], how="left")
    X = X.drop_duplicates(["key", "event_timestamp"]).merge(world["features"], on="key", how="left")
    X = req[["key", "event_timestamp"]].merge(X, on=["key", "event_timestamp"], how="left")
    return model.predict_proba(X[world["feature_columns"]])[:, 1]
