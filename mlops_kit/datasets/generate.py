"""``generate_world(scenario, seed)``: the seeded card-payments world, built with numpy arrays.

Independent random streams (one per component, spawned from the seed) keep the parts
stable: switching on duplicates or an outage changes only the ingestion times, not who
bought what. Nothing loops in Python per row, so 10 million transactions take seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from numbers import Integral

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _catalog as C
from ._fraud import Batch, WorldParts, breaches, bursts, scattered_fraud
from ._profiles import build_profiles
from .._time import UTC
from .scenario import Scenario
from .world import World
from ..errors import ValidationError

__all__ = ["generate_world"]

_NEVER = np.iinfo(np.int64).max


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise ValidationError(f"generate_world: seed must be a non-negative integer, got {seed!r}.",
                              fix="Pass e.g. seed=0.", seed=seed)
    return int(seed)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(value: datetime) -> int:
    """Microseconds since the epoch of a tz-aware datetime."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def generate_world(scenario: Scenario | None = None, seed: int = 0) -> World:
    """Generate the world described by ``scenario`` (default: ``Scenario.default()``).

    Parameters
    ----------
    scenario:
        The world's parameters and switches.
    seed:
        Non-negative integer; the same seed and scenario give identical tables.

    Returns
    -------
    World
        ``users``, ``merchants``, ``transactions``, ``labels`` and ``profiles``.

    Examples
    --------
    >>> world = generate_world(Scenario.small(), seed=1)
    >>> len(world.labels) == world.scenario.sizes.transactions
    True
    """
    if scenario is None:
        scenario = Scenario.default()
    if not isinstance(scenario, Scenario):
        raise ValidationError(f"generate_world: scenario must be a Scenario, got {type(scenario).__name__}.",
                              fix="Pass Scenario.default() or another Scenario.")
    seed = _check_seed(seed)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_users, rng_merchants, rng_txn, rng_fraud, rng_ingest, rng_profiles = streams
    sizes = scenario.sizes
    start_us, end_us = _us(scenario.start), _us(scenario.end)

    users, parts_u = _users(sizes.users, start_us, rng_users)
    merchants, parts_m = _merchants(sizes.merchants, start_us, rng_merchants)
    parts = WorldParts(
        start_us=start_us, end_us=end_us,
        concept_us=_us(scenario.concept_drift_from) if scenario.concept_drift_from else _NEVER,
        covariate_us=_us(scenario.covariate_drift_from) if scenario.covariate_drift_from else _NEVER,
        **parts_u, **parts_m)

    n = sizes.transactions
    fraud_total = int(round(scenario.base_fraud_rate * n))
    n_burst = min(int(round(fraud_total * C.BURST_SHARE)), n // 2)
    n_breach = min(int(round(fraud_total * C.BREACH_SHARE)), (n - n_burst) // 2)
    n_normal = n - n_burst - n_breach
    normal = _normal(n_normal, fraud_total - n_burst - n_breach, scenario, parts, rng_txn, rng_fraud)
    batch = Batch.concat([normal, bursts(n_burst, parts, rng_fraud), breaches(n_breach, parts, rng_fraud)])
    order = np.argsort(batch.ts, kind="stable")
    batch = Batch(*(getattr(batch, f)[order] for f in
                    ("user", "merchant", "category", "channel", "country", "amount", "ts", "fraud")))
    batch.amount = np.maximum(np.round(batch.amount, 2), 0.5)
    txn_id = np.arange(1, n + 1, dtype=np.int64)

    rows, ingested = _ingestion(batch.ts, scenario, rng_ingest)
    transactions = pd.DataFrame({
        "transaction_id": txn_id[rows],
        "user_id": batch.user[rows].astype(np.int64),
        "merchant_id": batch.merchant[rows].astype(np.int64),
        "amount": batch.amount[rows],
        "merchant_category": C.strings(batch.category[rows], C.CATEGORIES),
        "channel": C.strings(batch.channel[rows], C.CHANNELS),
        "country": C.strings(batch.country[rows], C.COUNTRIES),
        "event_timestamp": C.timestamps(batch.ts[rows]),
        "ingested_at": C.timestamps(ingested),
    })
    transactions = _schema_change(transactions, scenario, batch, rows)

    delay_days = scenario.chargeback_delay_median_days * np.exp(
        scenario.chargeback_delay_sigma * rng_fraud.standard_normal(n))
    delay = np.where(batch.fraud, np.maximum(delay_days * C.US_PER_DAY, C.US_PER_HOUR),
                     scenario.label_maturity_days * C.US_PER_DAY).astype(np.int64)
    label_us = batch.ts + delay
    labels = pd.DataFrame({"transaction_id": txn_id, "is_fraud": batch.fraud.astype(bool),
                           "label_timestamp": C.timestamps(label_us)})

    profiles = build_profiles(
        signup_us=C.to_micros(users["signup_at"]), tier=parts_u["user_tier"],
        credit_limit=_credit_limits(users, rng_profiles), fraud_user=batch.user[batch.fraud],
        fraud_label_us=label_us[batch.fraud], start_us=start_us, end_us=end_us,
        change_rate_30d=scenario.profile_change_rate, rng=rng_profiles)
    return World(scenario=scenario, seed=seed, users=users, merchants=merchants,
                 transactions=transactions, labels=labels, profiles=profiles)


def _users(n: int, start_us: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    segment = rng.choice(len(C.SEGMENTS), size=n, p=C.SEGMENT_SHARE)
    country = rng.choice(len(C.COUNTRIES), size=n, p=C.COUNTRY_SHARE)
    tier = rng.choice(len(C.RISK_TIERS), size=n, p=C.RISK_TIER_SHARE)
    signup = start_us - rng.integers(30 * C.US_PER_DAY, 1000 * C.US_PER_DAY, size=n)
    signup -= signup % C.US_PER_SECOND
    activity = rng.gamma(1.5, 1.0, size=n) + 0.05
    amount = C.SEGMENT_AMOUNT[segment] * rng.lognormal(0.0, 0.35, size=n)
    frame = pd.DataFrame({"user_id": np.arange(n, dtype=np.int64),
                          "segment": C.strings(segment, C.SEGMENTS),
                          "home_country": C.strings(country, C.COUNTRIES),
                          "signup_at": C.timestamps(signup)})
    return frame, {"user_activity": activity / activity.sum(), "user_amount": amount,
                   "user_tier": tier, "user_country": country}


def _credit_limits(users: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    segment = users["segment"].map({s: i for i, s in enumerate(C.SEGMENTS)}).to_numpy(dtype=np.int64)
    return np.round(C.SEGMENT_LIMIT[segment] * rng.lognormal(0.0, 0.3, size=len(users)), -2)


def _merchants(m: int, start_us: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    category = rng.choice(len(C.CATEGORIES), size=m, p=C.CATEGORY_SHARE)
    if m >= len(C.CATEGORIES):
        category[: len(C.CATEGORIES)] = np.arange(len(C.CATEGORIES))
    country = rng.choice(len(C.COUNTRIES), size=m, p=C.COUNTRY_SHARE)
    popularity = rng.lognormal(0.0, 1.0, size=m)
    risky = rng.random(m) < 0.08
    risk = rng.lognormal(0.0, 0.5, size=m) * np.where(risky, 6.0, 1.0)
    onboarded = start_us - rng.integers(60 * C.US_PER_DAY, 2000 * C.US_PER_DAY, size=m)
    onboarded -= onboarded % C.US_PER_SECOND
    frame = pd.DataFrame({"merchant_id": np.arange(m, dtype=np.int64),
                          "merchant_category": C.strings(category, C.CATEGORIES),
                          "country": C.strings(country, C.COUNTRIES),
                          "onboarded_at": C.timestamps(onboarded)})
    return frame, {"merchant_category": category, "merchant_popularity": popularity,
                   "merchant_risk": risk, "merchant_risk_drifted": rng.permutation(risk)}


def _normal(n: int, fraud_target: int, scenario: Scenario, w: WorldParts,
            rng: np.random.Generator, rng_fraud: np.random.Generator) -> Batch:
    """Everyday spending, with scattered fraud marked by propensity."""
    user = rng.choice(len(w.user_activity), size=n, p=w.user_activity)
    day = rng.integers(0, scenario.days, size=n)
    hour = rng.choice(24, size=n, p=C.HOUR_PROFILE / C.HOUR_PROFILE.sum())
    ts = w.start_us + day * C.US_PER_DAY + hour * C.US_PER_HOUR + rng.integers(0, C.US_PER_HOUR, size=n)
    drifted = ts >= w.covariate_us
    popularity = w.merchant_popularity
    merchant = rng.choice(len(popularity), size=n, p=popularity / popularity.sum())
    if drifted.any():
        tilted = popularity * C.CATEGORY_DRIFT_TILT[w.merchant_category]
        merchant[drifted] = rng.choice(len(popularity), size=int(drifted.sum()), p=tilted / tilted.sum())
    category = w.merchant_category[merchant]
    online_p = np.minimum(C.CATEGORY_ONLINE[category] * np.where(drifted, 1.4, 1.0), 1.0)
    online = rng.random(n) < online_p
    channel = np.where(online, 1, np.where(rng.random(n) < 0.5, 0, 2))
    foreign = rng.random(n) < 0.04
    country = np.where(foreign, rng.integers(0, len(C.COUNTRIES), size=n), w.user_country[user])
    amount_z = rng.standard_normal(n)
    amount = (w.user_amount[user] * C.CATEGORY_AMOUNT[category] * np.exp(0.5 * amount_z)
              * np.where(drifted, 1.5, 1.0))
    batch = Batch(user, merchant, category, channel, country, amount, ts, np.zeros(n, dtype=bool))
    batch.fraud = scattered_fraud(batch, amount_z, ts >= w.concept_us, fraud_target, w, rng_fraud)
    return batch


def _ingestion(event_us: np.ndarray, scenario: Scenario,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row index into the transactions (duplicates repeat one) and each row's ingestion time."""
    n = len(event_us)
    delay = (rng.exponential(scenario.ingest_delay_seconds * C.US_PER_SECOND, size=n) + 1).astype(np.int64)
    late = rng.random(n) < scenario.late_share
    low, high = scenario.late_delay_hours
    late_delay = (np.exp(rng.uniform(np.log(low), np.log(high), size=n)) * C.US_PER_HOUR).astype(np.int64)
    ingested = event_us + np.where(late, late_delay, delay)
    n_dup = int(round(scenario.duplicate_share * n))
    dup_rows = np.sort(rng.choice(n, size=n_dup, replace=False)) if n_dup else np.zeros(0, np.int64)
    redelivery = (rng.exponential(600 * C.US_PER_SECOND, size=n_dup) + 1).astype(np.int64)
    rows = np.concatenate([np.arange(n, dtype=np.int64), dup_rows])
    ingested = np.concatenate([ingested, ingested[dup_rows] + redelivery])
    for lo, hi in scenario.outages:  # a handful of windows, in time order
        lo_us, hi_us = _us(lo), _us(hi)
        inside = (ingested >= lo_us) & (ingested < hi_us)
        backlog = (rng.exponential(120 * C.US_PER_SECOND, size=int(inside.sum())) + 1).astype(np.int64)
        ingested[inside] = hi_us + backlog
    order = np.lexsort((ingested, rows))
    return rows[order], ingested[order]


def _schema_change(frame: pd.DataFrame, scenario: Scenario, batch: Batch, rows: np.ndarray) -> pd.DataFrame:
    """Apply the scenario's schema change to the transactions table (a copy)."""
    name = scenario.schema_change_field
    if scenario.schema_change == "rename":
        return frame.rename(columns={name: f"{name}_v2"})
    if scenario.schema_change == "retype":
        frame = frame.copy()
        if name == "amount":
            text = pc.cast(pa.array(frame["amount"].to_numpy()), pa.string())
            frame["amount"] = pd.Series(pd.array(text, dtype="str"))
        else:
            codes = {"merchant_category": batch.category, "channel": batch.channel,
                     "country": batch.country}[name]
            frame[name] = codes[rows].astype(np.int64)
    return frame
