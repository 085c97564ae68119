"""Differential test: one materialization into SQLite and into Redis, then 10,000 seeded random
reads around the TTL edges must give identical results, and both must match a brute-force
oracle written from the specification (latest row per entity over the materialized windows by
(event ts, created ts, ingest order); expired when its event ts is before ``at - ttl``)."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pandas as pd

from mlops_kit.features import Entity, FeatureStore, FeatureView, Field

from .helpers import T0

US = timedelta(microseconds=1)
FIELDS = [Field(name="i", dtype="int64"), Field(name="f", dtype="float64"), Field(name="b", dtype="bool"),
          Field(name="s", dtype="string"), Field(name="t", dtype="timestamp")]
USER = Entity(name="user", join_keys=["user_id"])
PAIR = Entity(name="pair", join_keys=["user_id", "shop"])
VIEWS = [FeatureView(name="a", entities=[USER], schema=FIELDS, ttl=timedelta(hours=3),
                     created_timestamp_column="created"),
         FeatureView(name="c", entities=[PAIR], schema=FIELDS, ttl=timedelta(minutes=90))]
SHOPS = ["s1", "é:2", "", "x\"y"]


def _frames(seed: int, has_created: bool, composite: bool) -> list[pd.DataFrame]:
    """Three ingests: base rows, then corrections (same event ts, later created) and late rows."""
    rng = np.random.default_rng(seed)
    frames = []
    for part in range(3):
        n = 1_500 if part == 0 else 400
        users = rng.integers(0, 150, n)
        minutes = rng.integers(0, 48 * 60 // 7, n) * 7  # coarse grid: many (key, ts) ties
        ts = pd.Series(T0 + pd.to_timedelta(minutes, unit="min")).astype("datetime64[us, UTC]")
        late = pd.to_timedelta(rng.integers(0, 600, n) * (part + 1), unit="min")
        null = lambda: rng.random(n) < 0.15  # noqa: E731
        ivals = pd.array(rng.integers(-(2**62), 2**62, n), dtype="Int64")
        ivals[null()] = pd.NA
        fvals = rng.normal(size=n)
        fvals[null()] = np.nan
        bvals = pd.array(rng.random(n) < 0.5, dtype="boolean")
        bvals[null()] = pd.NA
        svals = pd.Series(rng.choice(["", "α", "b:c", "日本", "z" * 40], n), dtype=object)
        svals[null()] = None
        tvals = pd.Series(T0 + pd.to_timedelta(rng.integers(-10**9, 10**9, n), unit="us")).astype(
            "datetime64[us, UTC]")
        tvals[null()] = pd.NaT
        df = pd.DataFrame({"user_id": users.astype("int64"), "event_timestamp": ts, "i": ivals, "f": fvals,
                           "b": bvals, "s": svals, "t": tvals})
        if composite:
            df.insert(1, "shop", pd.Series(rng.choice(SHOPS, n), dtype=object))
        if has_created:
            df["created"] = (ts + late).astype("datetime64[us, UTC]")
        frames.append(df)
    return frames


def _py(value):
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def _oracle(frames, view, windows):
    """Latest row per key over the windows, by (ts, created, ingest position), from plain loops."""
    best: dict[tuple, tuple] = {}
    pos = 0
    names = [f.name for f in FIELDS]
    for df in frames:
        for rec in df.to_dict("records"):
            pos += 1
            ts = rec["event_timestamp"].to_pydatetime()
            if not any(lo <= ts < hi for lo, hi in windows):
                continue
            key = tuple(rec[k] for k in view.join_keys)
            created = rec["created"].to_pydatetime() if view.created_timestamp_column else None
            rank = (ts, created or ts.min.replace(tzinfo=ts.tzinfo), pos)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, {n: _py(rec[n]) for n in names})
    return {k: (v[0][0], v[1]) for k, v in best.items()}


def test_sqlite_and_redis_serve_identical_values(tmp_path, redis_server):
    redis_server.flush()
    rng = random.Random(20240101)
    windows = [(T0 + timedelta(hours=20), T0 + timedelta(hours=40)), (T0, T0 + timedelta(hours=12)),
               (T0 + timedelta(hours=8), T0 + timedelta(hours=24)), (T0 + timedelta(hours=44), T0 + timedelta(hours=48))]
    stores = {name: FeatureStore(tmp_path / name, online_store=url, clock=lambda: T0)
              for name, url in (("sqlite", "sqlite"), ("redis", redis_server.url))}
    data = {v.name: _frames(7 + k, v.created_timestamp_column is not None, len(v.join_keys) == 2)
            for k, v in enumerate(VIEWS)}
    reports = {}
    for name, store in stores.items():
        store.apply(VIEWS)
        for v in VIEWS:
            for df in data[v.name]:
                store.ingest(v.name, df)
        reports[name] = [store.materialize(lo, hi).to_dict() for lo, hi in windows]
    assert reports["sqlite"] == reports["redis"]
    assert stores["redis"].online.count(VIEWS[1]) == stores["sqlite"].online.count(VIEWS[1]) > 100

    reads = 0
    for v in VIEWS:
        oracle = _oracle(data[v.name], v, windows)
        known = sorted(oracle, key=repr)
        refs = [f"{v.name}:{f.name}" for f in FIELDS]
        for _ in range(5_000):
            keys = [rng.choice(known) for _ in range(rng.randint(1, 3))]
            if rng.random() < 0.1:
                keys.append((999, "s1") if len(v.join_keys) == 2 else (999,))
            edge = oracle[keys[0]][0] + v.ttl
            at = edge + rng.choice([-US, 0 * US, US, timedelta(minutes=rng.uniform(-200, 200))])
            entity_rows = [dict(zip(v.join_keys, k)) for k in keys]
            got = {n: s.get_online_features(refs, entity_rows, at=at, include_timestamps=True)
                   for n, s in stores.items()}
            assert got["sqlite"] == got["redis"], (v.name, keys, at)
            for j, key in enumerate(keys):
                ts, values = oracle.get(key, (None, None))
                fresh = ts is not None and ts >= at - v.ttl
                assert got["redis"][f"{v.name}__event_timestamp"][j] == (ts if fresh else None)
                for f in FIELDS:
                    assert got["redis"][f.name][j] == (values[f.name] if fresh else None), (key, f.name)
            reads += 1
    assert reads == 10_000
    for store in stores.values():
        store.close()
