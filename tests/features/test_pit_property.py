"""Property test: get_historical_features equals the brute-force oracle on random cases.

Each example builds one or two fresh views (random TTL, timestamp column names, with or
without a created column) in a shared store, ingests random rows in one or two batches
(dense time grid with ±1 µs jitter: many ties, TTL edges, late rows, duplicates), and
compares a request of random entity rows (duplicates, keys with no history) against the
oracle, value by value, plus the LateDataWarning count.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import warnings
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit.errors import LateDataWarning
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field

from .oracle import brute_force_join

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
_COUNTER = itertools.count()
EXAMPLES = max(300, settings.default.max_examples)


@pytest.fixture(scope="module")
def shared_store():
    with tempfile.TemporaryDirectory() as root:
        yield FeatureStore(root)


def _time(minute: int, jitter: int) -> datetime:
    return T0 + timedelta(minutes=minute, microseconds=jitter)


times = st.builds(_time, st.integers(0, 40), st.sampled_from([-1, 0, 0, 0, 1]))
ttls = st.sampled_from([None, timedelta(0), timedelta(minutes=5), timedelta(minutes=15),
                        timedelta(minutes=15, microseconds=1)])
values = st.one_of(st.none(), st.floats(-100, 100, allow_nan=False))
feature_rows = st.lists(
    st.tuples(st.integers(0, 3), times, st.integers(-10, 30), values, st.integers(-5, 5)),
    min_size=0, max_size=25)
view_specs = st.fixed_dictionaries({
    "ttl": ttls, "ts_col": st.sampled_from(["event_timestamp", "ts_b"]),
    "created": st.booleans(), "batches": st.lists(feature_rows, min_size=1, max_size=2)})
entity_rows = st.lists(st.tuples(st.integers(0, 5), times), min_size=1, max_size=30)


def _check(store, specs, entities, filter_created, composite):
    key_cols = ["k", "k2"] if composite else ["k"]
    entity = Entity(name=f"e{'2' if composite else '1'}", join_keys=key_cols)
    views, oracle_rows = [], []
    for spec in specs:
        name = f"pv{next(_COUNTER)}"
        created = "created_at" if spec["created"] else None
        fv = FeatureView(name=name, entities=[entity], ttl=spec["ttl"], timestamp_field=spec["ts_col"],
                         created_timestamp_column=created,
                         schema=[Field(name="x", dtype="float64"), Field(name="n", dtype="int64")])
        store.apply([fv])
        rows, pos = [], 0
        for batch in spec["batches"]:
            frame = {c: [] for c in key_cols + [spec["ts_col"], "x", "n"] + ([created] if created else [])}
            for key, ts, created_offset, x, n in batch:
                created_ts = ts + timedelta(minutes=created_offset)
                frame["k"].append(key)
                if composite:
                    frame["k2"].append(key % 2)
                frame[spec["ts_col"]].append(ts)
                frame["x"].append(x)
                frame["n"].append(n)
                if created:
                    frame[created].append(created_ts)
                rows.append({"key": (key, key % 2) if composite else (key,), "ts": ts,
                             "created": created_ts if created else None, "pos": pos,
                             "values": {"x": x, "n": n}})
                pos += 1
            df = pd.DataFrame(frame)
            df["x"] = df["x"].astype("float64")
            df["n"] = df["n"].astype("int64")
            df["k"] = df["k"].astype("int64")
            if composite:
                df["k2"] = df["k2"].astype("int64")
            for col in [spec["ts_col"]] + ([created] if created else []):
                df[col] = pd.to_datetime(df[col], utc=True)
            store.ingest(name, df)
        views.append(fv)
        oracle_rows.append(rows)
    keys = [(k, k % 2) if composite else (k,) for k, _ in entities]
    edf = pd.DataFrame({"k": [k for k, _ in entities],
                        "event_timestamp": pd.to_datetime([t for _, t in entities], utc=True),
                        "tag": range(len(entities))})
    if composite:
        edf["k2"] = edf["k"] % 2
    refs = [f"{v.name}:{f}" for v in views for f in ("x", "n")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = store.get_historical_features(edf, refs, full_feature_names=True,
                                            filter_by_created_timestamp=filter_created)
    assert list(out["tag"]) == list(range(len(entities)))
    late_any = [False] * len(entities)
    for fv, rows in zip(views, oracle_rows):
        expected, late = brute_force_join(list(zip(keys, [t for _, t in entities])), rows, fv.ttl,
                                          ["x", "n"], filter_created)
        late_any = [a or b for a, b in zip(late_any, late)]
        for i, exp in enumerate(expected):
            got_x, got_n = out[f"{fv.name}__x"].iloc[i], out[f"{fv.name}__n"].iloc[i]
            if exp["x"] is None:
                assert pd.isna(got_x), (fv, i)
            else:
                assert math.isclose(got_x, exp["x"]), (fv, i, got_x, exp)
            if exp["n"] is None:
                assert pd.isna(got_n), (fv, i)
            else:
                assert got_n == exp["n"], (fv, i, got_n, exp)
    late_warnings = [w for w in caught if issubclass(w.category, LateDataWarning)]
    n_late = sum(late_any)
    if n_late and not filter_created:
        assert len(late_warnings) == 1 and str(late_warnings[0].message).startswith(f"{n_late} of ")
    else:
        assert not late_warnings


@settings(max_examples=EXAMPLES)
@given(specs=st.lists(view_specs, min_size=1, max_size=2), entities=entity_rows,
       filter_created=st.booleans())
def test_matches_brute_force(shared_store, specs, entities, filter_created):
    _check(shared_store, specs, entities, filter_created, composite=False)


@settings(max_examples=max(200, settings.default.max_examples // 2))
@given(specs=st.lists(view_specs, min_size=1, max_size=1), entities=entity_rows,
       filter_created=st.booleans())
def test_matches_brute_force_composite_keys(shared_store, specs, entities, filter_created):
    _check(shared_store, specs, entities, filter_created, composite=True)
