"""The user profile table as a slowly changing dimension (type 2).

Each user starts with one row at sign-up. Profile events then arrive over time: credit
limit changes, risk reviews, account status changes and, after a fraud chargeback
becomes known, a restriction (status ``restricted``, risk tier ``high``). Every event
closes the current row (``valid_to``) and opens a new one carrying the full state.
The state is carried forward with array operations, never a loop per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _catalog as C

#: delay between a fraud chargeback and the account restriction it triggers
RESTRICTION_DELAY_US = 2 * C.US_PER_HOUR
#: share of users with a known fraud chargeback whose account gets restricted
RESTRICTION_SHARE = 0.95


def build_profiles(*, signup_us: np.ndarray, tier: np.ndarray, credit_limit: np.ndarray,
                   fraud_user: np.ndarray, fraud_label_us: np.ndarray, start_us: int,
                   end_us: int, change_rate_30d: float, rng: np.random.Generator) -> pd.DataFrame:
    """Return the SCD2 profile table (one row per user and state, ordered by user and time)."""
    n_users = len(signup_us)
    days = (end_us - start_us) / C.US_PER_DAY
    # random profile events: credit change (0), risk review (1), status change (2)
    counts = rng.poisson(change_rate_30d * days / 30.0, size=n_users)
    ev_user = np.repeat(np.arange(n_users), counts)
    n_events = len(ev_user)
    ev_ts = start_us + rng.integers(0, end_us - start_us, size=n_events)
    kind = rng.choice(3, size=n_events, p=[0.5, 0.35, 0.15])
    ev_mult = np.where(kind == 0, rng.uniform(1.1, 1.5, size=n_events), 1.0)
    ev_tier = np.where(kind == 1, rng.choice(3, size=n_events, p=C.RISK_TIER_SHARE), -1)
    ev_status = np.where(kind == 2, rng.choice(2, size=n_events, p=[0.5, 0.5]), -1)

    # the first known fraud chargeback of a user restricts the account (most of the time)
    order = np.argsort(fraud_label_us, kind="stable")
    victims, first = np.unique(fraud_user[order], return_index=True)
    restricted = rng.random(len(victims)) < RESTRICTION_SHARE
    victims = victims[restricted]
    r_ts = fraud_label_us[order][first][restricted] + RESTRICTION_DELAY_US

    user = np.concatenate([np.arange(n_users), ev_user, victims])
    ts = np.concatenate([signup_us, ev_ts, r_ts])
    mult = np.concatenate([np.ones(n_users), ev_mult, np.ones(len(victims))])
    tiers = np.concatenate([tier, ev_tier, np.full(len(victims), 2)])
    status = np.concatenate([np.zeros(n_users, dtype=np.int64), ev_status, np.ones(len(victims), dtype=np.int64)])
    source = np.concatenate([np.zeros(n_users), np.ones(n_events), np.full(len(victims), 2)])
    idx = np.lexsort((source, ts, user))
    user, ts, mult, tiers, status = user[idx], ts[idx], mult[idx], tiers[idx], status[idx]

    n = len(user)
    first_row = np.ones(n, dtype=bool)
    first_row[1:] = user[1:] != user[:-1]
    position = np.arange(n)
    carry_tier = np.maximum.accumulate(np.where(tiers >= 0, position, 0))
    carry_status = np.maximum.accumulate(np.where(status >= 0, position, 0))
    log_mult = np.cumsum(np.log(mult))
    group_start = np.maximum.accumulate(np.where(first_row, position, 0))
    limit = np.round(credit_limit[user] * np.exp(log_mult - log_mult[group_start]), -2)

    valid_to = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    same_next = np.zeros(n, dtype=bool)
    same_next[:-1] = ~first_row[1:]
    valid_to[:-1] = np.where(same_next[:-1], ts[1:], valid_to[:-1])
    frame = pd.DataFrame({
        "user_id": user.astype(np.int64),
        "account_status": C.strings(status[carry_status], C.ACCOUNT_STATUSES),
        "credit_limit": limit.astype(np.float64),
        "risk_tier": C.strings(tiers[carry_tier], C.RISK_TIERS),
        "valid_from": C.timestamps(ts),
        "valid_to": C.timestamps(valid_to),
    })
    return frame
