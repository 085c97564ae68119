"""Seeded transaction tables and an independent brute-force reference for the aggregates."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

START = datetime(2024, 3, 1, tzinfo=timezone.utc)


def make_transactions(seed: int, *, n: int = 400, days: int = 12, users: int = 15,
                      merchants: int = 6, late_share: float = 0.1, start: datetime = START,
                      null_share: float = 0.0) -> pd.DataFrame:
    """Transactions with event time, a processing time (some rows hours to days late)."""
    rng = np.random.default_rng(seed)
    start_us = int(start.timestamp() * 1_000_000)
    offsets = rng.integers(0, days * 86_400_000_000, size=n)
    # a few rows exactly on midnight, the window edge
    edge = rng.random(n) < 0.05
    offsets[edge] = rng.integers(0, days, size=int(edge.sum())) * 86_400_000_000
    event = pd.to_datetime(start_us + offsets, unit="us", utc=True).astype("datetime64[us, UTC]")
    lag_s = rng.integers(1, 600, size=n)
    late = rng.random(n) < late_share
    lag_s[late] = rng.integers(3_600, 4 * 86_400, size=int(late.sum()))
    ingested = event + pd.to_timedelta(lag_s, unit="s")
    amount = np.round(rng.gamma(2.0, 30.0, size=n), 2)
    if null_share:
        amount[rng.random(n) < null_share] = np.nan
    return pd.DataFrame({
        "transaction_id": np.arange(n, dtype=np.int64),
        "user_id": rng.integers(0, users, size=n).astype(np.int64),
        "merchant_id": rng.integers(0, merchants, size=n).astype(np.int64),
        "amount": amount,
        "event_timestamp": event,
        "ingested_at": ingested.astype("datetime64[us, UTC]"),
    })


def brute_force(df: pd.DataFrame, aggregates: list[dict], *, entity: str, last_day) -> pd.DataFrame:
    """One row per (entity, day): a plain loop over days and entities, from raw timestamps.

    ``aggregates`` are dicts with name, column, function and window (timedelta).
    """
    if df.empty:
        return pd.DataFrame(columns=[entity, "event_timestamp", *[a["name"] for a in aggregates]])
    wmax = max(a["window"] for a in aggregates)
    first = df["event_timestamp"].min().floor("D")
    last = pd.Timestamp(last_day).tz_localize("UTC")
    rows = []
    day = first
    while day <= last:
        end = day + pd.Timedelta(days=1)
        for key in sorted(df[entity].unique()):
            mine = df[df[entity] == key]
            ts = mine["event_timestamp"]
            if not ((ts >= end - wmax) & (ts < end)).any():
                continue
            row = {entity: key, "event_timestamp": end}
            for a in aggregates:
                inside = mine[(ts >= end - a["window"]) & (ts < end)][a["column"]].dropna()
                values = [float(v) for v in inside]
                fn = a["function"]
                if fn == "count":
                    row[a["name"]] = len(values)
                elif fn == "count_distinct":
                    row[a["name"]] = len(set(values))
                elif fn == "sum":
                    row[a["name"]] = sum(values)
                elif fn == "mean":
                    row[a["name"]] = sum(values) / len(values) if values else np.nan
                elif fn == "min":
                    row[a["name"]] = min(values) if values else np.nan
                elif fn == "max":
                    row[a["name"]] = max(values) if values else np.nan
            rows.append(row)
        day = end
    return pd.DataFrame(rows)
