"""Chapter 2 lab, the time rules: windowed counts over event or ingestion time, late events and
the serving replay (section 2, and the window primitive section 1 builds on).

The notebook reaches these through ``ch02`` (which re-exports them). Every function takes its
data and time explicitly; nothing reads the wall clock.

>>> from datetime import timedelta
>>> import pandas as pd
>>> ev = pd.DataFrame({"user_id": [1, 1, 1], "t": pd.to_datetime(
...     ["2024-01-01", "2024-01-05", "2024-01-08"], utc=True)})
>>> q = pd.DataFrame({"user_id": [1], "as_of": pd.to_datetime(["2024-01-08"], utc=True)})
>>> window_counts(ev, q, time_column="t", window=timedelta(days=7)).tolist()
[2]
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from ..datasets import World, entity_frame, naive_user_transaction_stats, user_transaction_stats
from ..errors import ValidationError

__all__ = ["WINDOW", "window_counts", "transactions", "late_events", "sample_payments", "serving_replay",
           "time_semantics"]

#: The window of the chapter's "7-day transaction count".
WINDOW = timedelta(days=7)


def window_counts(events: pd.DataFrame, queries: pd.DataFrame, *, time_column: str, window: timedelta,
                  key: str = "user_id", closed: str = "left", known_by: str | None = None) -> np.ndarray:
    """Per query row ``(key, as_of)``: how many events of that key fall in the window.

    ``closed="left"`` counts ``as_of - window <= t < as_of``; ``"right"`` counts
    ``as_of - window < t <= as_of``. With ``known_by`` (a column of ``events``) only events
    with ``known_by <= as_of`` count.
    """
    if closed not in ("left", "right"):
        raise ValidationError(f"window_counts: closed must be 'left' or 'right', got {closed!r}.",
                              fix="Use closed='left' for [as_of - window, as_of).")
    for name, frame, cols in (("events", events, [key, time_column] + ([known_by] if known_by else [])),
                              ("queries", queries, [key, "as_of"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValidationError(f"window_counts: {name} lacks columns {missing}.",
                                  fix=f"Pass a frame with columns {cols}.")
    out = np.zeros(len(queries), dtype=np.int64)
    q_time = queries["as_of"].to_numpy("datetime64[us]")
    q_key = queries[key].to_numpy()
    width = np.timedelta64(int(window / timedelta(microseconds=1)), "us")
    groups = {k: np.flatnonzero(q_key == k) for k in np.unique(q_key)} if len(q_key) else {}
    by_key = dict(tuple(events.groupby(key, sort=False)))
    side_hi, side_lo = ("left", "left") if closed == "left" else ("right", "right")
    for k, rows in groups.items():
        ev = by_key.get(k)
        if ev is None:
            continue
        times = ev[time_column].to_numpy("datetime64[us]")
        t = q_time[rows]
        if known_by is None:
            times = np.sort(times)
            out[rows] = (np.searchsorted(times, t, side=side_hi)
                         - np.searchsorted(times, t - width, side=side_lo))
        else:
            known = ev[known_by].to_numpy("datetime64[us]")[None, :]
            times, at = times[None, :], t[:, None]
            inside = (times >= at - width) & (times < at) if closed == "left" else \
                (times > at - width) & (times <= at)
            out[rows] = np.count_nonzero(inside & (known <= at), axis=1)
    return out


def transactions(world: World) -> pd.DataFrame:
    """The transaction log every count reads (one row per transaction: event and ingestion time)."""
    return world.transactions.drop_duplicates("transaction_id", keep="first")


def late_events(world: World) -> pd.DataFrame:
    """Per transaction: ``delay_h`` (ingested_at - event_timestamp, hours) and ``late`` (> 1 h)."""
    txn = transactions(world)
    delay = (txn["ingested_at"] - txn["event_timestamp"]) / pd.Timedelta(hours=1)
    return pd.DataFrame({"transaction_id": txn["transaction_id"].to_numpy(), "delay_h": delay.to_numpy(),
                         "late": (delay > 1.0).to_numpy()})


def sample_payments(world: World, *, sample: int, seed: int) -> pd.DataFrame:
    """``sample`` payments drawn with ``seed``: ``transaction_id, user_id, as_of`` (the payment's time)."""
    rows = entity_frame(world, request_features=False)
    if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= len(rows):
        raise ValidationError(f"sample_payments: sample must be an int in 1..{len(rows)}, got {sample!r}.",
                              fix="Pass e.g. sample=2000.")
    take = np.sort(np.random.default_rng(seed).choice(len(rows), size=sample, replace=False))
    picked = rows.iloc[take][["transaction_id", "user_id", "event_timestamp"]].reset_index(drop=True)
    return picked.rename(columns={"event_timestamp": "as_of"})


def serving_replay(world: World, rows: pd.DataFrame, *, window: timedelta = WINDOW,
                   time_column: str = "event_timestamp") -> np.ndarray:
    """What the scoring service counted for each row, replayed row by row from its event log.

    For row ``(user_id, T)`` (``T`` in ``time_column``) the service holds the events ingested
    by ``T`` and counts those whose event time lies in ``[T - window, T)``.
    """
    txn = transactions(world)
    logs = {k: (g["event_timestamp"].to_numpy("datetime64[us]"), g["ingested_at"].to_numpy("datetime64[us]"))
            for k, g in txn.groupby("user_id", sort=False)}
    width = np.timedelta64(int(window / timedelta(microseconds=1)), "us")
    out = []
    for user, at in zip(rows["user_id"].to_numpy(), rows[time_column].to_numpy("datetime64[us]")):
        event, ingested = logs.get(user, (np.array([], "datetime64[us]"),) * 2)
        out.append(int(np.count_nonzero((ingested <= at) & (event >= at - width) & (event < at))))
    return np.asarray(out, dtype=np.int64)


def time_semantics(world: World, *, sample: int, seed: int) -> pd.DataFrame:
    """The 7-day count of sampled transactions, three ways, beside the serving replay.

    Columns: ``transaction_id, user_id, event_timestamp, serving`` (the replay),
    ``event_time_complete`` (event time over the complete log, as a later backfill sees it),
    ``ingestion_time`` (window over ingestion time) and ``known_at_t`` (event time, only
    events ingested by T: the kit's ``user_transaction_stats``).
    """
    honest, naive = user_transaction_stats(world), naive_user_transaction_stats(world)
    rows = entity_frame(world, request_features=False)
    if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= len(rows):
        raise ValidationError(f"time_semantics: sample must be an int in 1..{len(rows)}, got {sample!r}.",
                              fix="Pass e.g. sample=1500.")
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(rows), size=sample, replace=False))
    picked = rows.iloc[take][["transaction_id", "user_id", "event_timestamp"]].reset_index(drop=True)
    keys = ["user_id", "event_timestamp"]
    out = picked.merge(honest[keys + ["txn_count_7d"]].drop_duplicates(keys), on=keys, how="left")
    out = out.rename(columns={"txn_count_7d": "known_at_t"})
    out = out.merge(naive[keys + ["txn_count_7d"]].drop_duplicates(keys), on=keys, how="left")
    out = out.rename(columns={"txn_count_7d": "event_time_complete"})
    q = out.rename(columns={"event_timestamp": "as_of"})
    out["ingestion_time"] = window_counts(transactions(world), q, time_column="ingested_at", window=WINDOW)
    out["serving"] = serving_replay(world, out)
    return out[["transaction_id", "user_id", "event_timestamp", "serving", "event_time_complete",
                "ingestion_time", "known_at_t"]]
