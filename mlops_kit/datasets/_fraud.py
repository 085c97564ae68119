"""The fraud mechanisms: scattered fraud, account-takeover bursts and merchant breaches.

Each mechanism leaves a trace that a point-in-time feature can see, except the breaches:

- **scattered fraud** is likelier at risky merchants (visible through the merchant's past,
  already-known chargebacks), in risky categories, for high risk tiers, abroad and for
  amounts far above the user's usual amount;
- **account-takeover bursts** are several transactions within hours (velocity), far above
  the user's usual amount, in online categories;
- **merchant breaches** are a few days of fraud at one merchant; their chargebacks arrive
  after the breach is over, so only a leaky feature (labels not yet known) sees them.

From ``concept_drift_from`` on, the mechanism changes: different merchants and categories
are risky, and bursts become slow, small, card-present spending.
All arrays are produced at once (no Python loop per row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _catalog as C


@dataclass
class Batch:
    """Columns of a batch of transactions as integer codes and numbers."""

    user: np.ndarray
    merchant: np.ndarray
    category: np.ndarray
    channel: np.ndarray
    country: np.ndarray
    amount: np.ndarray
    ts: np.ndarray
    fraud: np.ndarray

    @staticmethod
    def empty() -> "Batch":
        z = np.zeros(0, dtype=np.int64)
        return Batch(z, z, z, z, z, np.zeros(0), z, np.zeros(0, dtype=bool))

    @staticmethod
    def concat(batches: list["Batch"]) -> "Batch":
        return Batch(*(np.concatenate([getattr(b, name) for b in batches])
                       for name in ("user", "merchant", "category", "channel", "country",
                                    "amount", "ts", "fraud")))


def episode_sizes(total: int, base: int, mean_extra: float, rng: np.random.Generator) -> np.ndarray:
    """Episode sizes (each >= 1, mostly ``base + Poisson(mean_extra)``) summing to ``total``."""
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    sizes = base + rng.poisson(mean_extra, size=total // max(base, 1) + 1)
    cumulative = np.cumsum(sizes)
    count = int(np.searchsorted(cumulative, total)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(cumulative[count - 1]) - total
    return sizes.astype(np.int64)


def pick_in_category(categories: np.ndarray, merchant_category: np.ndarray,
                     popularity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each wanted category, a merchant of that category drawn by popularity.

    A category without merchants (tiny worlds) falls back to any merchant.
    """
    order = np.argsort(merchant_category, kind="stable")
    sorted_cat = merchant_category[order]
    weights = np.cumsum(popularity[order])
    lo = np.searchsorted(sorted_cat, categories, side="left")
    hi = np.searchsorted(sorted_cat, categories, side="right")
    empty = hi == lo
    lo = np.where(empty, 0, lo)
    hi = np.where(empty, len(order), hi)
    base = np.where(lo > 0, weights[np.maximum(lo - 1, 0)], 0.0)
    top = weights[hi - 1]
    target = base + rng.random(len(categories)) * (top - base)
    index = np.clip(np.searchsorted(weights, target, side="right"), lo, hi - 1)
    return order[index]


def scattered_fraud(batch: Batch, amount_z: np.ndarray, concept: np.ndarray, target: int,
                    world: "WorldParts", rng: np.random.Generator) -> np.ndarray:
    """Mark about ``target`` of the batch's transactions as fraud, by propensity."""
    if target <= 0 or len(batch.ts) == 0:
        return np.zeros(len(batch.ts), dtype=bool)
    risk = np.where(concept, world.merchant_risk_drifted[batch.merchant],
                    world.merchant_risk[batch.merchant])
    category = np.where(concept, C.CATEGORY_FRAUD_DRIFTED[batch.category],
                        C.CATEGORY_FRAUD[batch.category])
    foreign = batch.country != world.user_country[batch.user]
    weight = (risk * category * C.RISK_TIER_FRAUD[world.user_tier[batch.user]]
              * np.exp(0.9 * amount_z) * np.where(foreign, 3.0, 1.0))
    probability = np.minimum(weight * (target / weight.sum()), 0.9)
    return rng.random(len(batch.ts)) < probability


def bursts(total: int, world: "WorldParts", rng: np.random.Generator) -> Batch:
    """Account-takeover bursts: ``total`` fraudulent transactions in episodes of ~6."""
    if total <= 0:
        return Batch.empty()
    sizes = episode_sizes(total, 2, 4.0, rng)
    n_episodes = len(sizes)
    span = world.end_us - world.start_us
    weights = world.user_activity * C.RISK_TIER_FRAUD[world.user_tier]
    victims = rng.choice(len(weights), size=n_episodes, p=weights / weights.sum())
    starts = world.start_us + rng.integers(span // 20, span - span // 20, size=n_episodes)
    drifted = starts >= world.concept_us
    episode = np.repeat(np.arange(n_episodes), sizes)
    d = drifted[episode]
    gaps = rng.exponential(1.0, size=total) * np.where(d, 3 * C.US_PER_HOUR, 15 * 60 * C.US_PER_SECOND)
    running = np.cumsum(gaps)
    before = np.concatenate([[0.0], running[np.cumsum(sizes)[:-1] - 1]])
    offsets = (running - np.repeat(before, sizes)).astype(np.int64)
    ts = np.minimum(starts[episode] + offsets, world.end_us - 1)
    user = victims[episode]
    category = np.where(d, rng.choice(C.BURST_CATEGORIES_DRIFTED, size=total),
                        rng.choice(C.BURST_CATEGORIES, size=total))
    merchant = pick_in_category(category, world.merchant_category, world.merchant_popularity, rng)
    category = world.merchant_category[merchant]
    factor = np.where(d, rng.uniform(0.2, 0.8, size=total), rng.uniform(3.0, 8.0, size=total))
    online = rng.random(total) < np.where(d, 0.05, 0.9)
    channel = np.where(online, 1, np.where(rng.random(total) < 0.6, 2, 0))
    foreign = rng.random(total) < np.where(d, 0.1, 0.5)
    country = np.where(foreign, rng.integers(0, len(C.COUNTRIES), size=total), world.user_country[user])
    return Batch(user, merchant, category, channel, country, world.user_amount[user] * factor, ts,
                 np.ones(total, dtype=bool))


def breaches(total: int, world: "WorldParts", rng: np.random.Generator) -> Batch:
    """Merchant breaches: a few days of card-present fraud at one merchant each."""
    if total <= 0:
        return Batch.empty()
    sizes = episode_sizes(total, 5, 7.0, rng)
    n_episodes = len(sizes)
    span = world.end_us - world.start_us
    pop = world.merchant_popularity
    merchants = rng.choice(len(pop), size=n_episodes, p=pop / pop.sum())
    lengths = rng.integers(C.US_PER_DAY, 4 * C.US_PER_DAY, size=n_episodes)
    lengths = np.minimum(lengths, max(span // 4, 1))
    starts = world.start_us + rng.integers(span // 20, max(span - lengths.max(), span // 20 + 1),
                                           size=n_episodes)
    episode = np.repeat(np.arange(n_episodes), sizes)
    ts = starts[episode] + (rng.random(total) * lengths[episode]).astype(np.int64)
    ts = np.minimum(ts, world.end_us - 1)
    activity = world.user_activity
    user = rng.choice(len(activity), size=total, p=activity / activity.sum())
    merchant = merchants[episode]
    category = world.merchant_category[merchant]
    amount = world.user_amount[user] * C.CATEGORY_AMOUNT[category] * rng.lognormal(0.3, 0.5, size=total)
    channel = np.where(rng.random(total) < 0.5, 0, 2)
    return Batch(user, merchant, category, channel, world.user_country[user], amount, ts,
                 np.ones(total, dtype=bool))


@dataclass
class WorldParts:
    """Hidden per-user and per-merchant parameters shared by the generators."""

    start_us: int
    end_us: int
    concept_us: int
    covariate_us: int
    user_activity: np.ndarray
    user_amount: np.ndarray
    user_tier: np.ndarray
    user_country: np.ndarray
    merchant_category: np.ndarray
    merchant_popularity: np.ndarray
    merchant_risk: np.ndarray
    merchant_risk_drifted: np.ndarray
