"""The Spark PIT benchmark's world: size parsing and a seeded, chunked store (``pit_join_spark``)."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_kit.features import Entity, FeatureStore, FeatureView, Field

T0 = pd.Timestamp("2024-01-01", tz="UTC")
SPAN_US = 30 * 86_400 * 10**6
FEATURES = [f"f{i}" for i in range(5)]


def parse_count(text: str) -> int:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text.strip())
    if found is None:
        raise SystemExit(f"--sizes: {text!r} is not a row count (write e.g. 100k, 1M or 2500).")
    scale = {"": 1, "k": 10**3, "m": 10**6}[found.group(2).lower()]
    return int(float(found.group(1)) * scale)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        if part.count(":") != 1:
            raise SystemExit(f"--sizes: {part!r} is not ENTITY_ROWS:FEATURE_ROWS (e.g. 100k:1M).")
        left, right = part.split(":")
        sizes.append((parse_count(left), parse_count(right)))
    return sizes


def label(n: int) -> str:
    return f"{n // 10**6}M" if n >= 10**6 and n % 10**6 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


# -- data ---------------------------------------------------------------------------------------
def feature_chunk(n_entities: int, n_rows: int, seed: int, chunk: int) -> pd.DataFrame:
    """Chunk ``chunk`` of the feature rows (its own seeded stream, so chunking is reproducible)."""
    rng = np.random.default_rng([seed, chunk])
    ts = T0 + pd.to_timedelta(rng.integers(0, SPAN_US, n_rows), unit="us")
    df = pd.DataFrame({"user_id": rng.integers(0, n_entities, n_rows).astype("int64"),
                       "event_timestamp": ts.astype("datetime64[us, UTC]")})
    df["created"] = df["event_timestamp"] + pd.to_timedelta(rng.integers(0, 3_600 * 10**6, n_rows), unit="us")
    for name in FEATURES:
        df[name] = rng.normal(size=n_rows)
    return df


def entity_rows(n_entities: int, n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 10**9])
    ts = T0 + pd.to_timedelta(rng.integers(0, SPAN_US, n_rows), unit="us")
    return pd.DataFrame({"user_id": rng.integers(0, n_entities, n_rows).astype("int64"),
                         "event_timestamp": ts.astype("datetime64[us, UTC]")})


def build_store(root: Path, n_entities: int, n_features: int, seed: int, chunk_rows: int) -> dict:
    store = FeatureStore(root)
    user = Entity(name="user", join_keys=["user_id"])
    store.apply([FeatureView(name="user_stats", entities=[user], ttl=timedelta(hours=48),
                             schema=[Field(name=c, dtype="float64") for c in FEATURES],
                             created_timestamp_column="created")])
    gen_s = ingest_s = 0.0
    chunks = max(1, -(-n_features // chunk_rows))
    for chunk in range(chunks):
        t = time.perf_counter()
        df = feature_chunk(n_entities, min(chunk_rows, n_features - chunk * chunk_rows), seed, chunk)
        gen_s += time.perf_counter() - t
        t = time.perf_counter()
        store.ingest("user_stats", df)
        ingest_s += time.perf_counter() - t
        del df
    files = store.offline_files("user_stats")
    store.close()
    return {"generate_s": gen_s, "ingest_s": ingest_s, "chunks": chunks, "files": len(files),
            "parquet_mb": sum(f.stat().st_size for f in files) / 2**20}


# -- memory -------------------------------------------------------------------------------------
