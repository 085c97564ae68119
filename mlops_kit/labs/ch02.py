"""Chapter 2 lab: feature store architecture on the seeded card-payments world.

Sections 1 and 3 live here (shared definitions, point-in-time correctness); the time rules of
section 2 (windowed counts, late events, the serving replay) live in ``ch02_time`` and are
re-exported here, so the notebook reaches them as ``ch02.<name>``. Offline/online sync,
definitions as code, governance, the TTL widget and the store's engines live in ``ch02_sync``.
Every function takes its data and time explicitly; nothing reads the wall clock.

>>> disagreement([1, 2, None], [1, 3, None])
{'rows': 3, 'differ': 1, 'share': 0.3333, 'mean_abs_diff': 0.5}
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ..datasets import (MERCHANT_RISK_FEATURES, PROFILE_FEATURES, USER_STATS_FEATURES, Scenario, World,
                        current_profile_features, entity_frame, fit_evaluate, generate_world,
                        leaky_merchant_risk, merchant_risk, user_profile_features, user_transaction_stats)
from ..errors import ValidationError
from ..features import Entity, FeatureStore, FeatureView, Field
from .ch02_time import (WINDOW, late_events, sample_payments, serving_replay, time_semantics, transactions,
                        window_counts)

__all__ = [
    "USER", "MERCHANT", "WINDOW", "make_world", "window_counts", "daily_grid", "team_counts",
    "disagreement", "txn_7d_view", "shared_reads", "shared_7d_frame", "late_events", "transactions",
    "sample_payments", "serving_replay",
    "time_semantics", "training_views", "ingest_training_views", "ingest_corrections",
    "latest_value_join", "pit_training_set", "leakage_violations", "scd2_expected",
    "evaluate_variants", "world_end",
]

USER = Entity(name="user", join_keys=["user_id"], description="a card holder")
MERCHANT = Entity(name="merchant", join_keys=["merchant_id"], description="a card acceptor")


def make_world(*, seed: int, scale: float = 1) -> World:
    """The default world (2,000 users, 50,000 transactions, 60 days) at ``scale``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError(f"make_world: seed must be an int >= 0, got {seed!r}.", fix="Pass e.g. seed=7.")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.1 <= scale <= 20:
        raise ValidationError(f"make_world: scale must be a number in [0.1, 20], got {scale!r}.",
                              fix="Use scale=1 for the notebook.")
    return generate_world(replace(Scenario.default(), scale=scale), seed=seed)


def world_end(world: World) -> datetime:
    """The first instant after the world (``start + days``)."""
    return world.scenario.start + timedelta(days=world.scenario.days)


# -- section 1: one 7-day count, three definitions -------------------------------------------
def daily_grid(world: World, *, days: range | list[int] | None = None) -> pd.DataFrame:
    """``user_id, as_of``: every user at every midnight ``start + d days`` (``d`` in ``days``)."""
    days = list(range(1, world.scenario.days + 1)) if days is None else list(days)
    if not days or min(days) < 1 or max(days) > world.scenario.days:
        raise ValidationError(f"daily_grid: days must lie in 1..{world.scenario.days}, got {days!r}.",
                              fix="Pass e.g. days=[14, 21, 28].")
    users = world.users["user_id"].to_numpy(np.int64)
    stamps = pd.DatetimeIndex([world.scenario.start + timedelta(days=d) for d in days]).as_unit("us")
    return pd.DataFrame({"user_id": np.repeat(users, len(days)),
                         "as_of": np.tile(stamps, len(users))}).sort_values(
        ["as_of", "user_id"], kind="stable").reset_index(drop=True)


def team_counts(world: World, grid: pd.DataFrame, *, window: timedelta = WINDOW) -> pd.DataFrame:
    """The 7-day count three ways, on ``grid`` rows (``user_id, as_of``).

    ``team_a``: the training team's backfill, by event time over the complete log,
    ``[as_of - 7d, as_of)``. ``team_b``: the serving team's counter, by ingestion time,
    ``(as_of - 7d, as_of]``. ``shared``: the one definition both should use: by event time,
    ``[as_of - 7d, as_of)``, counting only events already ingested at ``as_of``.
    """
    txn = transactions(world)
    out = grid[["user_id", "as_of"]].copy()
    out["team_a"] = window_counts(txn, grid, time_column="event_timestamp", window=window)
    out["team_b"] = window_counts(txn, grid, time_column="ingested_at", window=window, closed="right")
    out["shared"] = window_counts(txn, grid, time_column="event_timestamp", window=window,
                                  known_by="ingested_at")
    return out


def disagreement(a: Any, b: Any) -> dict[str, Any]:
    """Rows where two value columns differ (nulls equal nulls): count, share, mean |a - b|."""
    x, y = pd.Series(a).reset_index(drop=True), pd.Series(b).reset_index(drop=True)
    if len(x) != len(y) or len(x) == 0:
        raise ValidationError(f"disagreement: need two non-empty columns of equal length, got {len(x)} "
                              f"and {len(y)}.", fix="Compare values for the same rows.")
    both_null = x.isna() & y.isna()
    differ = ~both_null & (x.isna() | y.isna() | (x.astype("float64") != y.astype("float64")))
    gap = (x.astype("float64") - y.astype("float64")).abs()
    return {"rows": int(len(x)), "differ": int(differ.sum()), "share": round(float(differ.mean()), 4),
            "mean_abs_diff": round(float(gap.mean()), 4) if gap.notna().any() else 0.0}


def txn_7d_view(*, window_days: int = 7, version: int = 1, ttl: timedelta = timedelta(days=3)) -> FeatureView:
    """The shared ``user_txn_count`` view: one row per user and midnight."""
    return FeatureView(
        name="user_txn_count", entities=[USER], schema=[Field(name="txn_count", dtype="int64")],
        ttl=ttl, created_timestamp_column="created_timestamp", version=version, owner="risk-features",
        description=f"transactions in the {window_days} days before each midnight, by event time, "
                    "counting only transactions ingested by then",
        tags={"window": f"{window_days}d", "time": "event", "team": "risk-features"})


def shared_7d_frame(world: World, *, window: timedelta = WINDOW) -> pd.DataFrame:
    """Rows to ingest into ``user_txn_count``: the shared definition at every user-midnight."""
    grid = daily_grid(world)
    txn = transactions(world)
    counts = window_counts(txn, grid, time_column="event_timestamp", window=window, known_by="ingested_at")
    return pd.DataFrame({"user_id": grid["user_id"], "event_timestamp": grid["as_of"],
                         "txn_count": counts, "created_timestamp": grid["as_of"]})


def shared_reads(store: FeatureStore, teams: pd.DataFrame, *, read_after: timedelta = timedelta(hours=1)) -> pd.DataFrame:
    """Both teams read the shared view: training offline (point-in-time), serving online.

    For each ``as_of`` of ``teams`` the nightly job materializes the last day up to
    ``as_of + read_after``; then the training read (``get_historical_features``) and the
    serving read (``get_online_features``) both happen at that instant. Adds the columns
    ``shared_offline`` and ``shared_online``.
    """
    out = teams.copy()
    out["shared_offline"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["shared_online"] = pd.array([pd.NA] * len(out), dtype="Int64")
    for as_of, rows in out.groupby("as_of", sort=True):
        at = pd.Timestamp(as_of) + read_after
        store.materialize(at - timedelta(days=1), at.to_pydatetime(), views=["user_txn_count"])
        users = [int(u) for u in rows["user_id"]]
        entity = pd.DataFrame({"user_id": users, "event_timestamp": [at] * len(users)})
        entity["event_timestamp"] = entity["event_timestamp"].astype("datetime64[us, UTC]")
        offline = store.get_historical_features(entity, ["user_txn_count:txn_count"])["txn_count"]
        online = store.get_online_features(["user_txn_count:txn_count"], [{"user_id": u} for u in users],
                                           at=at.to_pydatetime())["txn_count"]
        out.loc[rows.index, "shared_offline"] = offline.to_numpy()
        out.loc[rows.index, "shared_online"] = pd.array(online, dtype="Int64")
    return out



# -- section 3: point-in-time correctness ---------------------------------------------------
def training_views(*, merchant_ttl: timedelta = timedelta(days=2)) -> dict[str, FeatureView]:
    """The three training views; merchant and profile rows carry their own timestamps as features."""
    stats = FeatureView(name="user_activity", entities=[USER], ttl=timedelta(days=30),
                        schema=[Field(name=f, dtype="int64" if "count" in f else "float64")
                                for f in USER_STATS_FEATURES],
                        created_timestamp_column="created_timestamp", owner="risk-features",
                        description="user activity just before each transaction")
    risk = FeatureView(name="merchant_risk", entities=[MERCHANT], ttl=merchant_ttl,
                       schema=[Field(name="txn_count_30d", dtype="int64"),
                               Field(name="chargeback_count_30d", dtype="int64"),
                               Field(name="fraud_rate_30d", dtype="float64"),
                               Field(name="risk_ts", dtype="timestamp"),
                               Field(name="risk_created", dtype="timestamp")],
                       created_timestamp_column="created_timestamp", owner="merchant-risk",
                       description="daily merchant risk from chargebacks received by each midnight")
    profile = FeatureView(name="user_profile", entities=[USER], ttl=None,
                          schema=[Field(name="account_status", dtype="string"),
                                  Field(name="credit_limit", dtype="float64"),
                                  Field(name="risk_tier", dtype="string"),
                                  Field(name="profile_ts", dtype="timestamp"),
                                  Field(name="profile_created", dtype="timestamp")],
                          created_timestamp_column="created_timestamp", owner="customer-data",
                          description="SCD2 profile versions, one row per valid_from")
    return {v.name: v for v in (stats, risk, profile)}


def _with_stamps(frame: pd.DataFrame, ts: str, created: str) -> pd.DataFrame:
    out = frame.copy()
    out[ts] = out["event_timestamp"]
    out[created] = out["created_timestamp"]
    return out


def ingest_training_views(store: FeatureStore, world: World) -> dict[str, int]:
    """Apply the training views and ingest the honest tables; returns rows per view."""
    views = training_views()
    store.apply(list(views.values()))
    rows = {"user_activity": store.ingest("user_activity", user_transaction_stats(world))["rows"],
            "merchant_risk": store.ingest("merchant_risk", _with_stamps(
                merchant_risk(world), "risk_ts", "risk_created"))["rows"],
            "user_profile": store.ingest("user_profile", _with_stamps(
                user_profile_features(world), "profile_ts", "profile_created"))["rows"]}
    return rows


def ingest_corrections(store: FeatureStore, world: World, *, written_at: datetime) -> int:
    """A late backfill: merchant risk recomputed with every chargeback, written at ``written_at``."""
    fixed = leaky_merchant_risk(world)
    fixed["created_timestamp"] = pd.Timestamp(written_at).tz_convert("UTC")
    fixed["created_timestamp"] = fixed["created_timestamp"].astype("datetime64[us, UTC]")
    return store.ingest("merchant_risk", _with_stamps(fixed, "risk_ts", "risk_created"))["rows"]


def _features() -> list[str]:
    views = training_views()
    return [f"{name}:{f}" for name, v in views.items() for f in v.feature_names]


def pit_training_set(store: FeatureStore, world: World, *, filter_by_created_timestamp: bool) -> pd.DataFrame:
    """Entity rows (one per transaction) joined point-in-time through the store."""
    return store.get_historical_features(entity_frame(world), _features(),
                                         filter_by_created_timestamp=filter_by_created_timestamp)


def latest_value_join(store: FeatureStore, world: World) -> pd.DataFrame:
    """The classic leak: join each row to the *current* merchant risk and profile.

    User activity still comes point-in-time; the merchant and profile values are the latest
    row per key of the leaky tables (risk recomputed with every chargeback, today's profile).
    """
    rows = store.get_historical_features(entity_frame(world), [f"user_activity:{f}" for f in USER_STATS_FEATURES],
                                         filter_by_created_timestamp=True)
    risk = _with_stamps(leaky_merchant_risk(world), "risk_ts", "risk_created")
    risk = risk.sort_values("event_timestamp", kind="stable").groupby("merchant_id").tail(1)
    prof = _with_stamps(current_profile_features(world), "profile_ts", "profile_created")
    keep_r = ["merchant_id", *MERCHANT_RISK_FEATURES, "risk_ts", "risk_created"]
    keep_p = ["user_id", *PROFILE_FEATURES, "profile_ts", "profile_created"]
    out = rows.merge(risk[keep_r], on="merchant_id", how="left").merge(prof[keep_p], on="user_id", how="left")
    return out


def leakage_violations(frame: pd.DataFrame, *, entity_ts: str = "event_timestamp",
                       stamps: tuple[str, ...] = ("risk_ts", "risk_created", "profile_ts",
                                                  "profile_created")) -> dict[str, int]:
    """Rows whose feature row was stamped or created after the row's own time, per column.

    Nulls (no feature row) are not violations. ``"rows"`` counts rows with any violation.
    """
    missing = [c for c in (entity_ts, *stamps) if c not in frame.columns]
    if missing:
        raise ValidationError(f"leakage_violations: the training frame lacks {missing}.",
                              fix="Keep the feature timestamps in the training sample.")
    t = pd.to_datetime(frame[entity_ts], utc=True)
    bad = pd.Series(False, index=frame.index)
    out: dict[str, int] = {}
    for col in stamps:
        after = pd.to_datetime(frame[col], utc=True) > t
        out[col] = int(after.sum())
        bad |= after
    out["rows"] = int(bad.sum())
    return out


def scd2_expected(profiles: pd.DataFrame, rows: pd.DataFrame, *, column: str = "account_status") -> pd.Series:
    """The SCD2 truth for each row: the profile version with ``valid_from <= T < valid_to``.

    A plain interval lookup (no as-of join); ``valid_to`` null means "still current".
    """
    left = pd.DataFrame({"row": np.arange(len(rows)), "user_id": rows["user_id"].to_numpy(),
                         "at": pd.to_datetime(rows["event_timestamp"], utc=True).to_numpy()})
    hist = profiles[["user_id", "valid_from", "valid_to", column]]
    both = left.merge(hist, on="user_id", how="inner")
    lo = pd.to_datetime(both["valid_from"], utc=True)
    hi = pd.to_datetime(both["valid_to"], utc=True)
    at = pd.to_datetime(both["at"], utc=True)
    hit = both[(lo <= at) & (hi.isna() | (at < hi))].drop_duplicates("row", keep="last").set_index("row")
    out = hit[column].reindex(range(len(rows))).astype(object)
    return pd.Series(out.to_numpy(), index=rows.index, dtype=object)


def evaluate_variants(variants: dict[str, pd.DataFrame], honest: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Train on each variant's first half, test offline on the next quarter (same variant) and
    in "production" on the last quarter with honest point-in-time features."""
    ts = honest["event_timestamp"]
    cut1, cut2 = ts.quantile(0.5), ts.quantile(0.75)
    rows = []
    for name, frame in variants.items():
        t = frame["event_timestamp"]
        model = fit_evaluate(frame[t < cut1], frame[(t >= cut1) & (t < cut2)], model="logistic", seed=seed)
        prod = honest[ts >= cut2]
        rows.append({"training_set": name, "offline_auc": round(model.auc, 4),
                     "production_auc": round(model.auc_on(prod), 4)})
    out = pd.DataFrame(rows)
    out["gap"] = (out["offline_auc"] - out["production_auc"]).round(4)
    return out
