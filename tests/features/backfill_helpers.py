"""Builders for the backfill tests: a small live view and hand-made partition frames."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from mlops_kit.features import FeatureStore

from .helpers import T0, USER, view

DAY = timedelta(days=1)
HOURS = (0, 6, 12, 18)
USERS = (1, 2, 3)


def day_rows(lo, hi, bump: float = 0.0, seed: int | None = None) -> pd.DataFrame:
    """Rows for every user at hours 0/6/12/18 of each day in [lo, hi): amount = 10*u + hour + bump."""
    rows = []
    day = lo
    while day < hi:
        for hour in HOURS:
            for u in USERS:
                ts = day + timedelta(hours=hour)
                rows.append((u, ts, ts + timedelta(hours=1), 10.0 * u + hour + bump, u))
        day += DAY
    frame = pd.DataFrame({
        "user_id": pd.Series([r[0] for r in rows], dtype="int64"),
        "event_timestamp": pd.Series([r[1] for r in rows], dtype="datetime64[us, UTC]"),
        "created": pd.Series([r[2] for r in rows], dtype="datetime64[us, UTC]"),
        "amount": pd.Series([r[3] for r in rows], dtype="float64"),
        "count": pd.Series([r[4] for r in rows], dtype="Int64"),
    })
    if seed is not None:  # a different row order on every call: the writer must not care
        frame = frame.iloc[np.random.default_rng(seed).permutation(len(frame))].reset_index(drop=True)
    return frame


def live_store(root, days: int = 5, clock=None) -> FeatureStore:
    """A store whose view ``user_stats`` v1 holds ``day_rows`` for ``days`` days from T0."""
    store = FeatureStore(root, clock=clock or (lambda: T0 + timedelta(days=60)))
    store.apply([USER, view(ttl=None)])
    store.ingest("user_stats", day_rows(T0, T0 + days * DAY))
    return store


def canon(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by key and time, plain dtypes, fresh index (for frame comparisons)."""
    out = frame[["user_id", "event_timestamp", "created", "amount", "count"]].copy()
    out["count"] = out["count"].astype("Int64")
    out["user_id"] = out["user_id"].astype("int64")
    for col in ("event_timestamp", "created"):
        out[col] = pd.to_datetime(out[col], utc=True).astype("datetime64[us, UTC]")
    return out.sort_values(["user_id", "event_timestamp"]).reset_index(drop=True)


def no_sleep(log: list | None = None):
    def sleep(seconds: float) -> None:
        if log is not None:
            log.append(seconds)
    return sleep


def bumped(lo, hi) -> pd.DataFrame:
    """A corrected computation: every amount 0.5 higher."""
    return day_rows(lo, hi, bump=0.5)
