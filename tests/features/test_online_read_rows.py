"""``read_rows`` against a plain-dict oracle: one key, many keys, duplicates, unknown keys,
composite keys, batches larger than one statement, feature subsets in any order, and a
table that does not exist yet. Runs once per engine (SQLite, Redis)."""

from __future__ import annotations

import random

from mlops_kit.features import Entity, FeatureView, Field

from .helpers import USER, view

NO_CREATED = -(2**63)
PAIR = Entity(name="pair", join_keys=["user_id", "shop"])


def _expected(stored: dict, features: list[str], keys: list[tuple], names: list[str]):
    ts = [stored[k][0] if k in stored else None for k in keys]
    values = {f: [stored[k][1][names.index(f)] if k in stored else None for k in keys] for f in features}
    return ts, values


def test_read_rows_matches_a_dict_of_written_rows(online_store):
    rng = random.Random(19)
    fv = view(created=None, entities=(USER,))
    names = ["amount", "count"]
    stored: dict[tuple, tuple] = {}
    batch = []
    for uid in rng.sample(range(5_000), 1_200):
        row = (float(rng.randint(-9, 9)) if rng.random() < 0.9 else None, rng.randint(0, 10**12))
        stored[(uid,)] = (rng.randint(0, 10**15), row)
        batch.append((uid, stored[(uid,)][0], NO_CREATED, *row))
    assert online_store.write_rows(fv, {"user_id": "int64"}, batch) == len(batch)
    known = list(stored)
    for size in [1] * 300 + [2, 3, 100, 100, 499, 500, 501, 1_300]:
        keys = [rng.choice(known) if rng.random() < 0.8 else (rng.randint(5_000, 6_000),)
                for _ in range(size)]
        if size > 2:
            keys[-1] = keys[0]  # a duplicate key reads the same row twice
        features = rng.choice([names, names[::-1], ["count"], []])
        assert online_store.read_rows(fv, features, keys) == _expected(stored, features, keys, names)


def test_read_rows_composite_string_keys_and_missing_table(online_store):
    fv = FeatureView(name="pairs", entities=[PAIR], schema=[Field(name="label", dtype="string"),
                                                            Field(name="n", dtype="int64")])
    absent = FeatureView(name="never_written", entities=[USER], schema=[Field(name="x", dtype="float64")])
    assert online_store.read_rows(absent, ["x"], [(1,)]) == ([None], {"x": [None]})
    assert online_store.read_rows(absent, ["x"], [(1,), (2,)]) == ([None, None], {"x": [None, None]})
    assert online_store.read_rows(fv, ["n"], []) == ([], {"n": []})
    rows = [(1, "a", 10, NO_CREATED, "x", 1), (1, "b", 20, NO_CREATED, None, 2), (2, "a", 30, NO_CREATED, "é", 3)]
    assert online_store.write_rows(fv, {"user_id": "int64", "shop": "string"}, rows) == 3
    assert online_store.read_rows(fv, ["label", "n"], [(1, "b")]) == ([20], {"label": [None], "n": [2]})
    assert online_store.read_rows(fv, ["n"], [(2, "b")]) == ([None], {"n": [None]})
    keys = [(2, "a"), (1, "a"), (3, "a"), (1, "a"), (1, "b")]
    assert online_store.read_rows(fv, ["n", "label"], keys) == (
        [30, 10, None, 10, 20], {"n": [3, 1, None, 1, 2], "label": ["é", "x", None, "x", None]})
    # the table now exists: a view read before its first write is served once written
    assert online_store.write_rows(absent, {"user_id": "int64"}, [(1, 5, NO_CREATED, 0.5)]) == 1
    assert online_store.read_rows(absent, ["x"], [(1,)]) == ([5], {"x": [0.5]})


def test_a_key_of_another_type_is_unknown(online_store):
    fv = view(created=None, entities=(USER,))
    assert online_store.write_rows(fv, {"user_id": "int64"}, [(7, 1, NO_CREATED, 1.0, 2)]) == 1
    assert online_store.read_rows(fv, ["amount"], [("7",)]) == ([None], {"amount": [None]})
    assert online_store.read_rows(fv, ["amount"], [("7",), (7,)]) == ([None, 1], {"amount": [None, 1.0]})


def test_take_rows_reads_positions_across_row_groups(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_kit.features.materialize import _take_rows

    rng = np.random.default_rng(5)
    n = 10_000
    table = pa.table({"a": np.arange(n) * 3, "s": [f"v{i}" if i % 7 else None for i in range(n)]})
    path = tmp_path / "rg.parquet"
    pq.write_table(table, path, row_group_size=997)  # 11 row groups, the last one short
    for rows in (rng.choice(n, 300, replace=False), np.array([n - 1, 0, 996, 997, 998]), np.arange(5)):
        got = _take_rows(path, ["s", "a"], rows.astype(np.int64))
        assert got.column("a").to_pylist() == [3 * int(r) for r in rows]
        assert got.column("s").to_pylist() == [f"v{r}" if r % 7 else None for r in rows]


def test_materialize_same_values_when_a_column_shadows_duckdb_virtual_columns(tmp_path):
    import pandas as pd

    from mlops_kit.features import FeatureStore

    from .helpers import at

    frames, offline = {}, []
    for name, col in (("plain", "x"), ("shadow", "file_row_number")):
        store = FeatureStore(tmp_path / name)
        store.apply([FeatureView(name="v", entities=[USER], created_timestamp_column="created", schema=[
            Field(name=col, dtype="int64"), Field(name="t", dtype="timestamp"), Field(name="b", dtype="bool")])])
        offline = []
        for part in range(3):  # three ingests (files), winners spread over them
            ids = [i % 40 for i in range(part, 120, 3)]
            df = pd.DataFrame({
                "user_id": ids, "event_timestamp": [at(part + (i % 5) / 10) for i in range(len(ids))],
                "created": [at(9) for _ in ids], col: [part * 1000 + i for i in range(len(ids))],
                "t": [at(-i) for i in range(len(ids))], "b": [i % 2 == 0 for i in range(len(ids))]})
            store.ingest("v", df)
            offline += list(zip(df.user_id, df.event_timestamp, df[col], df.t, df.b))
        report = store.materialize(at(0), at(2.25)).views["v"]
        got = store.get_online_features([f"v:{col}", "v:t", "v:b"], [{"user_id": i} for i in range(45)],
                                        at=at(3), include_timestamps=True)
        frames[name] = (report.rows_scanned, report.rows_written, got.pop(col), got)
        store.close()
    assert frames["plain"] == frames["shadow"]
    best: dict[int, tuple] = {}  # oracle: latest event ts in the window, later ingest wins a tie
    for row in offline:
        if at(0) <= row[1] < at(2.25) and (row[0] not in best or row[1] >= best[row[0]][1]):
            best[row[0]] = row
    scanned = sum(at(0) <= r[1] < at(2.25) for r in offline)
    expected = [best.get(i) for i in range(45)]
    assert frames["plain"][:3] == (scanned, len(best), [r and r[2] for r in expected])
    assert frames["plain"][3]["t"] == [r and r[3] for r in expected]
    assert frames["plain"][3]["b"] == [r and r[4] for r in expected]
    assert frames["plain"][3]["v__event_timestamp"] == [r and r[1] for r in expected]
