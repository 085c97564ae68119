"""Fixed vocabularies and the hidden parameters of the world (categories, channels, tiers).

These are the "physics" of the simulated card-payments world. They are module constants
(not scenario fields) so that every scenario shares the same vocabulary and a model
trained on one preset can score another.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

US_PER_SECOND = 1_000_000
US_PER_HOUR = 3_600 * US_PER_SECOND
US_PER_DAY = 24 * US_PER_HOUR

CATEGORIES = ("grocery", "restaurants", "fuel", "travel", "electronics", "online_retail",
              "gift_cards", "entertainment")
#: share of merchants in each category
CATEGORY_SHARE = np.array([0.24, 0.22, 0.10, 0.06, 0.08, 0.16, 0.04, 0.10])
#: typical amount relative to the user's usual amount
CATEGORY_AMOUNT = np.array([1.0, 0.7, 1.2, 4.0, 3.0, 1.4, 1.5, 0.9])
#: probability that a purchase in the category is online
CATEGORY_ONLINE = np.array([0.05, 0.10, 0.0, 0.60, 0.45, 0.95, 0.70, 0.30])
#: relative fraud propensity of scattered fraud per category, before and after concept drift
CATEGORY_FRAUD = np.array([0.4, 0.4, 0.6, 1.6, 2.6, 1.8, 3.2, 0.8])
CATEGORY_FRAUD_DRIFTED = np.array([1.8, 1.4, 2.2, 0.6, 0.5, 0.7, 0.8, 2.0])
#: categories targeted by account-takeover bursts before / after concept drift
BURST_CATEGORIES = np.array([3, 4, 5, 6])
BURST_CATEGORIES_DRIFTED = np.array([0, 1, 2, 7])
#: merchant-mix tilt applied from ``covariate_drift_from`` (online and electronics grow)
CATEGORY_DRIFT_TILT = np.array([0.7, 0.8, 0.6, 1.0, 2.0, 2.5, 1.5, 1.0])

CHANNELS = ("in_store", "online", "contactless")
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "BR", "IN")
COUNTRY_SHARE = np.array([0.40, 0.12, 0.10, 0.09, 0.07, 0.06, 0.05, 0.04, 0.04, 0.03])

SEGMENTS = ("retail", "premium", "business")
SEGMENT_SHARE = np.array([0.75, 0.15, 0.10])
SEGMENT_AMOUNT = np.array([35.0, 80.0, 150.0])
SEGMENT_LIMIT = np.array([3_000.0, 10_000.0, 25_000.0])

RISK_TIERS = ("low", "medium", "high")
RISK_TIER_SHARE = np.array([0.70, 0.22, 0.08])
RISK_TIER_FRAUD = np.array([1.0, 2.0, 5.0])

ACCOUNT_STATUSES = ("active", "restricted")

#: relative traffic per hour of day (UTC)
HOUR_PROFILE = np.array([0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.4, 1.5, 1.5, 1.6,
                         1.8, 1.7, 1.5, 1.5, 1.6, 1.8, 2.0, 2.0, 1.7, 1.2, 0.8, 0.4])

#: composition of fraud: account-takeover bursts, merchant breaches, scattered fraud
BURST_SHARE = 0.40
BREACH_SHARE = 0.30


def strings(codes: np.ndarray, vocabulary: tuple[str, ...]) -> pd.Series:
    """Turn integer codes into a pandas ``str`` column (fast, through an Arrow dictionary)."""
    dictionary = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)),
                                                pa.array(list(vocabulary), type=pa.string()))
    return pd.Series(pd.array(dictionary.cast(pa.string()), dtype="str"))


def timestamps(micros: np.ndarray) -> pd.Series:
    """Turn int64 microseconds since the epoch into a ``datetime64[us, UTC]`` column."""
    values = np.asarray(micros, dtype=np.int64).view("datetime64[us]")
    return pd.Series(values).dt.tz_localize("UTC")


def to_micros(series: pd.Series) -> np.ndarray:
    """Microseconds since the epoch of a tz-aware column (NaT becomes int64 min)."""
    return np.asarray(series.astype("datetime64[us, UTC]").array.asi8, dtype=np.int64)
