"""Honest feature pipelines: the source tables a feature store ingests.

Every table has an entity key, ``event_timestamp`` (the instant the values describe) and
``created_timestamp`` (when the row was computed). A row's values use only what was
known at its ``event_timestamp``: transactions already *ingested*, chargebacks already
*received*, profile changes already *in effect*. So ``created_timestamp`` equals
``event_timestamp`` and a point-in-time join over these tables leaks nothing.

- ``user_transaction_stats``: one row per transaction, the user's activity just before it;
- ``merchant_risk``: one row per merchant and day (as of midnight UTC);
- ``user_profile_features``: one row per profile version (SCD2 ``valid_from``).

``entity_frame`` gives the training rows and ``time_split`` a time-based split.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import _catalog as C
from ._windows import grouped_prefix, window_sum
from .._time import ensure_utc
from ..errors import ValidationError
from .world import World, require_columns

__all__ = ["user_transaction_stats", "merchant_risk", "user_profile_features", "entity_frame",
           "deduplicate", "time_split", "Split", "USER_STATS_FEATURES", "MERCHANT_RISK_FEATURES",
           "PROFILE_FEATURES", "REQUEST_FEATURES", "SOURCE_SCHEMAS"]

USER_STATS_FEATURES = ("txn_count_1h", "txn_count_24h", "amount_sum_24h", "txn_count_7d",
                       "amount_avg_7d", "amount_avg_30d")
MERCHANT_RISK_FEATURES = ("txn_count_30d", "chargeback_count_30d", "fraud_rate_30d")
PROFILE_FEATURES = ("account_status", "credit_limit", "risk_tier")
#: columns of the transaction itself, known when it is scored
REQUEST_FEATURES = ("amount", "merchant_category", "channel", "country")
#: what a feature view over each source table needs: entity key, timestamps, feature dtypes
SOURCE_SCHEMAS: dict[str, dict] = {
    "user_transaction_stats": {
        "entity": "user_id", "timestamp_field": "event_timestamp",
        "created_timestamp_column": "created_timestamp",
        "features": {"txn_count_1h": "int64", "txn_count_24h": "int64", "amount_sum_24h": "float64",
                     "txn_count_7d": "int64", "amount_avg_7d": "float64", "amount_avg_30d": "float64"}},
    "merchant_risk": {
        "entity": "merchant_id", "timestamp_field": "event_timestamp",
        "created_timestamp_column": "created_timestamp",
        "features": {"txn_count_30d": "int64", "chargeback_count_30d": "int64",
                     "fraud_rate_30d": "float64"}},
    "user_profile_features": {
        "entity": "user_id", "timestamp_field": "event_timestamp",
        "created_timestamp_column": "created_timestamp",
        "features": {"account_status": "string", "credit_limit": "float64", "risk_tier": "string"}},
}
_TXN_COLUMNS = ("transaction_id", "user_id", "merchant_id", "amount", "merchant_category",
                "channel", "country", "event_timestamp", "ingested_at")


def _check_world(world: World) -> None:
    if not isinstance(world, World):
        raise ValidationError(f"expected a World, got {type(world).__name__}.",
                              fix="Pass the result of generate_world(...) or load_world(...).")
    require_columns(world.transactions, _TXN_COLUMNS, table="transactions")


def deduplicate(transactions: pd.DataFrame) -> pd.DataFrame:
    """Keep the first delivery of each ``transaction_id`` (duplicates are redeliveries)."""
    require_columns(transactions, ("transaction_id", "ingested_at"), table="transactions")
    ordered = transactions.sort_values(["transaction_id", "ingested_at"], kind="stable")
    return ordered.drop_duplicates("transaction_id", keep="first").reset_index(drop=True)


def _txn_arrays(world: World) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    txn = deduplicate(world.transactions)
    return txn, C.to_micros(txn["event_timestamp"]), C.to_micros(txn["ingested_at"])


def user_stats_frame(world: World, *, respect_ingestion: bool) -> pd.DataFrame:
    """User activity just before each transaction (``respect_ingestion=False`` is the leaky
    variant that also counts transactions not yet ingested)."""
    _check_world(world)
    txn, event, ingested = _txn_arrays(world)
    user = txn["user_id"].to_numpy()
    amount = txn["amount"].to_numpy(dtype=np.float64)
    values = np.column_stack([np.ones(len(txn)), amount])
    available = ingested if respect_ingestion else None

    def window(width_us: int) -> np.ndarray:
        return window_sum(user, event, available, values, user, event, width_us)

    h1, d1, d7, d30 = (window(w) for w in (C.US_PER_HOUR, C.US_PER_DAY, 7 * C.US_PER_DAY,
                                            30 * C.US_PER_DAY))
    with np.errstate(invalid="ignore", divide="ignore"):
        avg7 = np.where(d7[:, 0] > 0.5, d7[:, 1] / np.maximum(d7[:, 0], 1), np.nan)
        avg30 = np.where(d30[:, 0] > 0.5, d30[:, 1] / np.maximum(d30[:, 0], 1), np.nan)
    frame = pd.DataFrame({
        "user_id": user.astype(np.int64),
        "event_timestamp": txn["event_timestamp"].reset_index(drop=True),
        "txn_count_1h": np.rint(h1[:, 0]).astype(np.int64),
        "txn_count_24h": np.rint(d1[:, 0]).astype(np.int64),
        "amount_sum_24h": np.round(d1[:, 1], 2),
        "txn_count_7d": np.rint(d7[:, 0]).astype(np.int64),
        "amount_avg_7d": np.round(avg7, 4),
        "amount_avg_30d": np.round(avg30, 4),
    })
    frame["created_timestamp"] = frame["event_timestamp"]
    return frame.sort_values(["event_timestamp", "user_id"], kind="stable").reset_index(drop=True)


def user_transaction_stats(world: World) -> pd.DataFrame:
    """Per transaction: the user's activity in the hour/day/week/month before it.

    Only transactions with ``ingested_at <= event_timestamp`` of the row count (what the
    scoring service had seen). Columns: ``user_id, event_timestamp, txn_count_1h,
    txn_count_24h, amount_sum_24h, txn_count_7d, amount_avg_7d, amount_avg_30d,
    created_timestamp``; averages are null when the window is empty.

    Examples
    --------
    >>> from mlops_kit.datasets import Scenario, generate_world
    >>> stats = user_transaction_stats(generate_world(Scenario.small(), seed=0))
    >>> bool((stats["created_timestamp"] == stats["event_timestamp"]).all())
    True
    """
    return user_stats_frame(world, respect_ingestion=True)


def _daily_grid(world: World) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    n_merchants = len(world.merchants)
    days = world.scenario.days
    start_us = C.to_micros(pd.Series([pd.Timestamp(world.scenario.start)]))[0]
    as_of = start_us + np.arange(1, days + 1, dtype=np.int64) * C.US_PER_DAY
    merchant = np.repeat(world.merchants["merchant_id"].to_numpy(np.int64), days)
    when = np.tile(as_of, n_merchants)
    return merchant, when, C.timestamps(when)


def merchant_risk_frame(world: World, *, honest: bool) -> pd.DataFrame:
    """Daily merchant risk; ``honest=False`` counts labels before they were known (leaky)."""
    _check_world(world)
    txn, event, ingested = _txn_arrays(world)
    labels = world.labels.set_index("transaction_id")
    fraud = labels["is_fraud"].reindex(txn["transaction_id"]).to_numpy(dtype=np.float64)
    label_us = C.to_micros(labels["label_timestamp"].reindex(txn["transaction_id"]).reset_index(drop=True))
    merchant = txn["merchant_id"].to_numpy(np.int64)
    q_merchant, q_time, q_stamp = _daily_grid(world)
    width = 30 * C.US_PER_DAY
    if honest:
        count = window_sum(merchant, event, ingested, np.ones(len(txn)), q_merchant, q_time, width)
        known = window_sum(merchant, event, np.maximum(ingested, label_us), fraud, q_merchant, q_time, width)
        is_cb = fraud > 0
        received = (_prefix_le(merchant[is_cb], label_us[is_cb], q_merchant, q_time)
                    - _prefix_le(merchant[is_cb], label_us[is_cb], q_merchant, q_time - width))
    else:
        count = window_sum(merchant, event, None, np.ones(len(txn)), q_merchant, q_time, width)
        known = window_sum(merchant, event, None, fraud, q_merchant, q_time, width)
        received = known
    count, known, received = (np.rint(x[:, 0]).astype(np.int64) for x in (count, known, received))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, known / np.maximum(count, 1), np.nan)
    frame = pd.DataFrame({"merchant_id": q_merchant, "event_timestamp": q_stamp,
                          "txn_count_30d": count, "chargeback_count_30d": received,
                          "fraud_rate_30d": np.round(rate, 6)})
    frame["created_timestamp"] = frame["event_timestamp"]
    return frame.sort_values(["event_timestamp", "merchant_id"], kind="stable").reset_index(drop=True)


def _prefix_le(g: np.ndarray, t: np.ndarray, g_query: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    return grouped_prefix(g, t, np.ones(len(t)), g_query, t_query, inclusive=True)


def merchant_risk(world: World) -> pd.DataFrame:
    """Per merchant and day (as of 00:00 UTC): activity and fraud known at that instant.

    ``txn_count_30d``: transactions in the last 30 days already ingested;
    ``chargeback_count_30d``: fraud chargebacks received in the last 30 days;
    ``fraud_rate_30d``: share of the last 30 days' transactions with a chargeback already
    received (null when there were none). Labels count only once ``label_timestamp`` has
    passed. Columns: ``merchant_id, event_timestamp, txn_count_30d, chargeback_count_30d,
    fraud_rate_30d, created_timestamp``.
    """
    return merchant_risk_frame(world, honest=True)


def user_profile_features(world: World) -> pd.DataFrame:
    """Profile versions as feature rows: one per SCD2 row, stamped at its ``valid_from``.

    Columns: ``user_id, event_timestamp, account_status, credit_limit, risk_tier,
    created_timestamp``.
    """
    if not isinstance(world, World):
        raise ValidationError(f"expected a World, got {type(world).__name__}.",
                              fix="Pass the result of generate_world(...) or load_world(...).")
    profiles = world.profiles
    frame = pd.DataFrame({"user_id": profiles["user_id"].to_numpy(np.int64),
                          "event_timestamp": profiles["valid_from"].reset_index(drop=True)})
    for name in PROFILE_FEATURES:
        frame[name] = profiles[name].reset_index(drop=True)
    frame["created_timestamp"] = frame["event_timestamp"]
    return frame.sort_values(["event_timestamp", "user_id"], kind="stable").reset_index(drop=True)


def entity_frame(world: World, *, request_features: bool = True) -> pd.DataFrame:
    """Training rows: one per transaction (first delivery), with its label.

    Columns: ``transaction_id, user_id, merchant_id, event_timestamp, is_fraud,
    label_timestamp`` and, with ``request_features``, the transaction's own ``amount,
    merchant_category, channel, country`` (known when it is scored). Ordered by time.
    """
    _check_world(world)
    txn = deduplicate(world.transactions)
    cols = ["transaction_id", "user_id", "merchant_id", "event_timestamp"]
    frame = txn[cols + (list(REQUEST_FEATURES) if request_features else [])]
    frame = frame.merge(world.labels, on="transaction_id", how="left", validate="one_to_one")
    ordered = cols + ["is_fraud", "label_timestamp"] + (list(REQUEST_FEATURES) if request_features else [])
    frame = frame[ordered].sort_values(["event_timestamp", "transaction_id"], kind="stable")
    return frame.reset_index(drop=True)


class Split(NamedTuple):
    """A time-based split: rows before ``cutoff`` train, rows at or after it test."""

    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: datetime


def time_split(frame: pd.DataFrame, *, cutoff: datetime | None = None, test_share: float = 0.3,
               known_labels_only: bool = False) -> Split:
    """Split training rows by ``event_timestamp`` (never at random: that leaks the future).

    Parameters
    ----------
    frame:
        Rows with ``event_timestamp`` (and ``label_timestamp`` for ``known_labels_only``).
    cutoff:
        Tz-aware instant; default: the time leaving ``test_share`` of the rows after it.
    test_share:
        Used only without ``cutoff``; in (0, 1).
    known_labels_only:
        Drop training rows whose label was not yet known at the cutoff, as a model
        trained at the cutoff could not have used them.
    """
    require_columns(frame, ("event_timestamp",), table="frame")
    if cutoff is None:
        if isinstance(test_share, bool) or not isinstance(test_share, (int, float)) \
                or not 0 < test_share < 1:
            raise ValidationError(f"time_split: test_share must be in (0, 1), got {test_share!r}.",
                                  fix="Pass e.g. test_share=0.3, or an explicit cutoff.")
        cutoff = frame["event_timestamp"].sort_values().iloc[
            min(int(len(frame) * (1 - test_share)), len(frame) - 1)].to_pydatetime()
    cutoff = ensure_utc(cutoff, name="time_split cutoff")
    stamp = pd.Timestamp(cutoff)
    before = frame["event_timestamp"] < stamp
    train, test = frame[before], frame[~before]
    if known_labels_only:
        require_columns(frame, ("label_timestamp",), table="frame")
        train = train[train["label_timestamp"] <= stamp]
    if len(train) == 0 or len(test) == 0:
        raise ValidationError(f"time_split: cutoff {cutoff.isoformat()} leaves an empty side "
                              f"({len(train)} train rows, {len(test)} test rows).",
                              fix="Choose a cutoff inside the data's time range.")
    return Split(train.reset_index(drop=True), test.reset_index(drop=True), cutoff)
