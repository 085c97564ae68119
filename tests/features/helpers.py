"""Small builders shared by the feature-store tests (frames and definitions only)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from mlops_kit.features import Entity, FeatureView, Field

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
USER = Entity(name="user", join_keys=["user_id"])
US = timedelta(microseconds=1)


def at(hours: float = 0, **kw) -> datetime:
    return T0 + timedelta(hours=hours, **kw)


def view(name: str = "user_stats", *, ttl=timedelta(hours=2), created: str | None = "created",
         ts: str = "event_timestamp", version: int = 1, entities=(USER,), **kw) -> FeatureView:
    return FeatureView(name=name, entities=list(entities), ttl=ttl, timestamp_field=ts,
                       created_timestamp_column=created, version=version,
                       schema=[Field(name="amount", dtype="float64"), Field(name="count", dtype="int64")],
                       **kw)


def rows(data: list[tuple], *, ts: str = "event_timestamp", created: str | None = "created",
         key: str = "user_id") -> pd.DataFrame:
    """Frame from ``(key, ts, created, amount, count)`` tuples (created skipped if None)."""
    frame = pd.DataFrame({
        key: pd.Series([r[0] for r in data], dtype="int64"),
        ts: pd.Series([r[1] for r in data], dtype="datetime64[us, UTC]"),
        "amount": pd.Series([r[3] for r in data], dtype="float64"),
        "count": pd.Series([r[4] for r in data], dtype="Int64"),
    })
    if created:
        frame[created] = pd.Series([r[2] for r in data], dtype="datetime64[us, UTC]")
    return frame


def entities(data: list[tuple], key: str = "user_id") -> pd.DataFrame:
    return pd.DataFrame({key: pd.Series([d[0] for d in data], dtype="int64"),
                         "event_timestamp": pd.Series([d[1] for d in data], dtype="datetime64[us, UTC]")})


def snapshot(path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (to prove nothing was written)."""
    from pathlib import Path

    root = Path(path)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
