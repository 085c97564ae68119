"""Chapter 3 lab, operations: cost of full vs incremental refresh, privacy controls, lifecycle.

* :func:`cost_experiment` writes the world's transactions partitioned by event date, builds
  rolling aggregates, lands one more day of data (new rows plus late rows for earlier days)
  and runs ``compare_full_vs_incremental``;
* :func:`feature_store` builds the chapter's governed feature store (an internal activity
  view in two versions, a sensitive credit view and a restricted card-holder view);
* :func:`try_read` reads offline features as a principal and reports the outcome (the
  refused read included) instead of raising;
* :func:`privacy_summary` measures what hashing, bucketing and rare-category suppression
  leave of a column;
* :func:`backfill_store` gives a store whose live view is wrong inside a window (a currency
  bug) and :func:`window_error` measures how many rows a reader still gets wrong.
"""

from __future__ import annotations

import shutil
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..aggregates import (AggregateSpec, RollingAggregate, compare_full_vs_incremental, full_refresh,
                          read_aggregates, scan_partitions, write_partitioned)
from ..datasets import SOURCE_SCHEMAS, deduplicate, user_transaction_stats
from ..errors import AccessDeniedError, DeprecatedFeatureWarning, ValidationError
from ..features import Entity, FeatureStore, FeatureView, Field

__all__ = ["AGG_SPEC", "cost_experiment", "USER", "feature_views", "feature_store", "try_read",
           "privacy_summary", "entity_rows", "FX_BUG", "AMOUNT_FEATURES", "backfill_store", "window_error"]

AGG_SPEC = AggregateSpec(name="user_txn_daily", aggregates=[
    RollingAggregate(name="txn_count_1d", column="transaction_id", function="count", window=timedelta(days=1),
                     entity_key="user_id"),
    RollingAggregate(name="amount_sum_7d", column="amount", function="sum", window=timedelta(days=7),
                     entity_key="user_id"),
    RollingAggregate(name="amount_max_7d", column="amount", function="max", window=timedelta(days=7),
                     entity_key="user_id"),
    RollingAggregate(name="merchants_7d", column="merchant_id", function="count_distinct",
                     window=timedelta(days=7), entity_key="user_id"),
])
_SOURCE_COLUMNS = ["transaction_id", "user_id", "merchant_id", "amount", "event_timestamp", "ingested_at"]


def cost_experiment(world: Any, root: str | Path, *, first_cut_day: int = 50, sample_users: int = 60,
                    seed: int = 0) -> dict[str, Any]:
    """Full refresh vs incremental update after one more day of data lands (late rows included).

    Day 1: every transaction ingested before ``start + first_cut_day`` is written partitioned
    by event date and the aggregates are built. Day 2: what was ingested during the next day
    arrives (that day's rows and late rows for earlier days, appended as new files beside the
    old ones). Then the incremental table is brought up to date and a full rebuild is made
    from scratch, and their outputs are compared value by value.

    Returns ``{"report": DataFrame (one row per mode), "landed": {"new_rows", "late_rows",
    "late_partitions"}, "inventory": DataFrame (day, rows), "full_sample", "incremental_sample":
    the outputs of ``sample_users`` users}``.
    """
    if isinstance(first_cut_day, bool) or not isinstance(first_cut_day, int) \
            or not 8 <= first_cut_day < world.scenario.days:
        raise ValidationError(f"cost_experiment: first_cut_day must be an integer in [8, {world.scenario.days}), "
                              f"got {first_cut_day!r}.", fix="Use e.g. first_cut_day=50.")
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    source, inc_dir, full_dir = root / "source", root / "incremental", root / "full"
    txn = deduplicate(world.transactions)[_SOURCE_COLUMNS]
    cut1 = world.scenario.start + timedelta(days=first_cut_day)
    cut2 = cut1 + timedelta(days=1)
    first = txn[txn["ingested_at"] < cut1]
    landed = txn[(txn["ingested_at"] >= cut1) & (txn["ingested_at"] < cut2)]
    write_partitioned(first, source)
    full_refresh(source, AGG_SPEC, inc_dir, as_of=cut1, threads=2)
    write_partitioned(landed, source)
    report = compare_full_vs_incremental(source, AGG_SPEC, incremental_dir=inc_dir, full_dir=full_dir,
                                         as_of=cut2, threads=2)
    late = landed[landed["event_timestamp"] < cut1]
    inventory = pd.DataFrame([{"day": day.isoformat(), "rows": info.rows, "files": len(info.files)}
                              for day, info in sorted(scan_partitions(source, ingested_field="ingested_at").items())])
    users = np.random.default_rng(seed).choice(np.sort(txn["user_id"].unique()), size=sample_users, replace=False)

    def sample(table_dir: Path) -> pd.DataFrame:
        out = read_aggregates(table_dir)
        cols = ["user_id", "event_timestamp", *AGG_SPEC.feature_names]
        return out[out["user_id"].isin(users)][cols].sort_values(["user_id", "event_timestamp"], ignore_index=True)

    return {"report": report, "inventory": inventory,
            "landed": {"new_rows": int(len(landed) - len(late)), "late_rows": int(len(late)),
                       "late_partitions": sorted({str(t.date()) for t in late["event_timestamp"]})},
            "full_sample": sample(full_dir), "incremental_sample": sample(inc_dir)}


# -- governed feature store --------------------------------------------------------------------------
USER = Entity(name="user", join_keys=["user_id"], description="a card holder")


def feature_views() -> dict[str, FeatureView]:
    """The chapter's views: activity v1 and v2 (internal), credit (sensitive), holder (restricted)."""
    stats = SOURCE_SCHEMAS["user_transaction_stats"]
    activity = [Field(name=n, dtype=t) for n, t in stats["features"].items()]
    common = dict(entities=[USER], created_timestamp_column="created_timestamp", owner="fraud-features",
                  tags={"domain": "payments", "entity": "user"})
    return {
        "activity_v1": FeatureView(name="user_activity", schema=activity, ttl=timedelta(days=30), version=1,
                                   description="card holder activity before each transaction (counts, sums, "
                                               "averages over 1h to 30d)", sensitivity="internal", **common),
        "activity_v2": FeatureView(name="user_activity", schema=activity, ttl=timedelta(days=7), version=2,
                                   description="card holder activity before each transaction; 7-day TTL so "
                                               "stale users read as missing", sensitivity="internal", **common),
        "credit": FeatureView(name="user_credit", schema=[Field(name="credit_limit", dtype="float64"),
                                                          Field(name="risk_tier", dtype="string")],
                              ttl=None, version=1, description="credit limit and risk tier (SCD2 history)",
                              sensitivity="sensitive", **common),
        "holder": FeatureView(name="card_holder", schema=[Field(name="home_country", dtype="string"),
                                                          Field(name="segment", dtype="string")],
                              ttl=None, version=1, description="card holder's home country and card programme "
                                                              "(quasi-identifiers)", sensitivity="restricted",
                              **{**common, "owner": "customer-data"}),
    }


def feature_store(workspace: Any, world: Any, *, clock: Any) -> tuple[FeatureStore, dict[str, FeatureView]]:
    """Apply the views, ingest the world's rows and register the views in the catalog."""
    store = FeatureStore(workspace, clock=clock)
    views = feature_views()
    store.apply(list(views.values()))
    stats = user_transaction_stats(world)
    store.ingest("user_activity", stats, version=1)
    store.ingest("user_activity", stats, version=2)
    start = pd.Timestamp(world.scenario.start)
    # history before the world starts is stamped at its start (one partition, not one per day of
    # the past); the original time stays the created timestamp, so the latest version wins
    credit = world.profiles[["user_id", "valid_from", "credit_limit", "risk_tier"]].rename(
        columns={"valid_from": "created_timestamp"})
    credit["event_timestamp"] = credit["created_timestamp"].clip(lower=start)
    store.ingest("user_credit", credit)
    holder = world.users[["user_id", "home_country", "segment"]].copy()
    holder["created_timestamp"] = world.users["signup_at"]
    holder["event_timestamp"] = holder["created_timestamp"].clip(lower=start)
    store.ingest("card_holder", holder)
    for view in views.values():  # the catalog knows every view from the start (search, consumers)
        store.governance.register(view)
    return store, views


def entity_rows(world: Any, *, n: int, at: datetime, seed: int) -> pd.DataFrame:
    """``n`` users (seeded) asking for features at ``at``."""
    users = np.random.default_rng(seed).choice(world.users["user_id"].to_numpy(), size=n, replace=False)
    return pd.DataFrame({"user_id": np.sort(users).astype("int64"), "event_timestamp": pd.Timestamp(at)})


def try_read(store: FeatureStore, entity_df: pd.DataFrame, features: list[str], *, principal: str | None,
             purpose: str) -> dict[str, Any]:
    """Read offline features as ``principal``; report ``allowed``, rows, warnings or the refusal."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecatedFeatureWarning)
        try:
            frame = store.get_historical_features(entity_df, features, principal=principal, purpose=purpose)
        except AccessDeniedError as exc:
            return {"principal": principal, "allowed": False, "rows": 0, "frame": None,
                    "error": str(exc).split(" Fix:")[0], "denied": exc.details.get("denied", []), "warnings": []}
    notes = [str(w.message) for w in caught if issubclass(w.category, DeprecatedFeatureWarning)]
    return {"principal": principal, "allowed": True, "rows": len(frame), "frame": frame, "error": None,
            "denied": [], "warnings": notes}


def privacy_summary(original: pd.Series, transformed: pd.Series, *, k: int) -> dict[str, Any]:
    """Distinct values, the smallest group and groups under ``k`` before and after a transformation."""
    def stats(series: pd.Series) -> dict[str, int]:
        counts = series.dropna().value_counts()
        return {"distinct": int(counts.size), "smallest_group": int(counts.min()) if counts.size else 0,
                "groups_below_k": int((counts < k).sum())}

    return {"k": k, "before": stats(original), "after": stats(transformed)}



# -- backfill ----------------------------------------------------------------------------------------
#: the wrong currency factor applied to amount features inside the broken window
FX_BUG = 1.1
AMOUNT_FEATURES = ("amount_sum_24h", "amount_avg_7d", "amount_avg_30d")


def backfill_store(workspace: Any, world: Any, *, clock: Any, first_day: int = 45,
                   days: int = 7) -> tuple[FeatureStore, pd.DataFrame, datetime, datetime]:
    """A store whose live ``user_activity`` v1 has amount features 10 % too high in a window.

    Returns ``(store, correct_rows, window_start, window_end)``: the correct rows are what the
    fixed pipeline computes, and the backfill must bring the window back to them.
    """
    if isinstance(first_day, bool) or not isinstance(first_day, int) or not 0 <= first_day < first_day + days \
            <= world.scenario.days:
        raise ValidationError(f"backfill_store: window day {first_day} + {days} is outside the world.",
                              fix=f"Use days inside [0, {world.scenario.days}).")
    store = FeatureStore(workspace, clock=clock)
    store.apply([feature_views()["activity_v1"]])
    good = user_transaction_stats(world)
    lo = world.scenario.start + timedelta(days=first_day)
    hi = lo + timedelta(days=days)
    broken = good.copy()
    inside = (broken["event_timestamp"] >= lo) & (broken["event_timestamp"] < hi)
    for col in AMOUNT_FEATURES:
        broken.loc[inside, col] = (broken.loc[inside, col] * FX_BUG).round(4)
    store.ingest("user_activity", broken)
    return store, good, lo, hi


def window_error(store: FeatureStore, good: pd.DataFrame, start: datetime, end: datetime, *, n: int,
                 seed: int) -> dict[str, Any]:
    """Read ``n`` seeded rows of the window through the live view and compare with the correct values."""
    inside = good[(good["event_timestamp"] >= start) & (good["event_timestamp"] < end)]
    sample = inside.sample(n=min(n, len(inside)), random_state=seed).reset_index(drop=True)
    read = store.get_historical_features(sample[["user_id", "event_timestamp"]],
                                         [f"user_activity:{c}" for c in AMOUNT_FEATURES])
    wrong = np.zeros(len(sample), dtype=bool)
    for col in AMOUNT_FEATURES:
        want = sample[col].to_numpy(dtype=float)
        got = read[col].to_numpy(dtype=float)
        both = ~np.isnan(want)
        wrong |= both & ~np.isclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)
    ratio = (read["amount_avg_7d"] / sample["amount_avg_7d"]).dropna()
    return {"live_version": store.live_version("user_activity"), "rows": int(len(sample)),
            "wrong_rows": int(wrong.sum()), "mean_ratio_avg_7d": round(float(ratio.mean()), 4)}
