"""Ingest: every refused input says why and writes nothing; writes are atomic and partitioned."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from mlops_kit.errors import NotFoundError, SchemaError, TimezoneError, ValidationError
from mlops_kit.features import FeatureStore

from .helpers import at, rows, snapshot, view


@pytest.fixture
def store(workspace):
    s = FeatureStore(workspace)
    s.apply([view()])
    return s


def _good():
    return rows([(1, at(0), at(0), 1.0, 1), (2, at(30), at(30), 2.0, 2)])


def _drop(col):
    return _good().drop(columns=col)


def _set(col, value):
    def make():
        df = _good()
        df[col] = value
        return df
    return make


def _naive():
    df = _good()
    df["event_timestamp"] = df["event_timestamp"].dt.tz_localize(None)
    return df


BAD = [
    ("missing feature", lambda: _drop("amount"), SchemaError, r"missing columns \['amount'\]"),
    ("missing created", lambda: _drop("created"), SchemaError, r"missing columns \['created'\]"),
    ("missing key", lambda: _drop("user_id"), SchemaError, r"missing columns \['user_id'\]"),
    ("null key", _set("user_id", pd.Series([1, None], dtype="Int64")), SchemaError,
     r"join key 'user_id' has 1 null.*dropna"),
    ("float key", _set("user_id", [1.0, 2.0]), SchemaError, r"join key 'user_id' has dtype float64"),
    ("naive ts", _naive, TimezoneError, r"naive timestamps.*tz_localize\('UTC'\)"),
    ("string feature", _set("amount", ["a", "b"]), SchemaError,
     r"column 'amount' has dtype .* not compatible with the declared 'float64'.*astype"),
    ("float into int", _set("count", [1.5, 2.0]), SchemaError, r"'count'.*not compatible.*'int64'"),
    ("null ts", _set("event_timestamp", pd.Series([at(0), None], dtype="datetime64[us, UTC]")),
     SchemaError, r"timestamp column 'event_timestamp' has 1 null"),
    ("not a frame", lambda: [{"user_id": 1}], ValidationError, r"expected a pandas DataFrame"),
]


@pytest.mark.parametrize("label, make, error, message", BAD, ids=[b[0] for b in BAD])
def test_refused_input_writes_nothing(store, label, make, error, message):
    store.ingest("user_stats", _good())
    before = snapshot(store.workspace.offline_dir)
    files = store.offline_files("user_stats")
    with pytest.raises(error, match=message):
        store.ingest("user_stats", make())
    assert snapshot(store.workspace.offline_dir) == before
    assert store.offline_files("user_stats") == files
    assert list(store.workspace.tmp_dir.glob("ingest-*")) == []


def test_unknown_view_refused(store):
    with pytest.raises(NotFoundError, match="unknown feature view 'nope'.*store.apply"):
        store.ingest("nope", _good())
    assert snapshot(store.workspace.offline_dir) == {}


def test_key_dtype_pinned_by_first_ingest(store):
    store.ingest("user_stats", _good())
    df = _good().astype({"user_id": "string"})
    with pytest.raises(SchemaError, match="expected int64"):
        store.ingest("user_stats", df)


def test_layout_partitions_by_event_date(store):
    result = store.ingest("user_stats", _good())
    assert result["rows"] == 2 and result["partitions"] == ["date=2024-01-01", "date=2024-01-02"]
    rel = sorted(str(p.relative_to(store.workspace.offline_dir)) for p in store.offline_files("user_stats"))
    # part-<ingest id>-<writer token>.parquet: one token per ingest, shared by its partitions
    assert [re.sub(r"-[0-9a-f]{8}\.parquet$", ".parquet", r) for r in rel] == [
        "user_stats/v1/date=2024-01-01/part-00000001.parquet",
        "user_stats/v1/date=2024-01-02/part-00000001.parquet"]
    assert len({r.rsplit("-", 1)[1] for r in rel}) == 1
    back = store.read_offline("user_stats")
    assert back["amount"].tolist() == [1.0, 2.0] and "__seq" not in back.columns
    assert store.read_offline("user_stats", start=at(1))["user_id"].tolist() == [2]
    assert store.read_offline("user_stats", end=at(30))["user_id"].tolist() == [1]


def test_failure_between_partitions_leaves_nothing_visible(store):
    store.ingest("user_stats", rows([(5, at(0), at(0), 9.0, 9)]))
    before = snapshot(store.workspace.offline_dir)
    files = store.offline_files("user_stats")

    def fail_second(i):
        if i == 1:
            raise OSError("disk full (injected)")

    with pytest.raises(OSError, match="injected"):
        store.ingest("user_stats", _good(), _before_publish=fail_second)
    assert store.offline_files("user_stats") == files
    assert snapshot(store.workspace.offline_dir) == before
    assert store.read_offline("user_stats")["user_id"].tolist() == [5]
    store.ingest("user_stats", _good())
    assert sorted(store.read_offline("user_stats")["user_id"].tolist()) == [1, 2, 5]


def test_uncommitted_file_is_ignored_by_readers(store):
    store.ingest("user_stats", _good())
    stray = store.workspace.offline_dir / "user_stats/v1/date=2024-01-01/part-99999999.parquet"
    stray.write_bytes(next(iter(store.offline_files("user_stats"))).read_bytes())
    assert len(store.read_offline("user_stats")) == 2


def test_file_names_are_reproducible_and_differ_by_content(tmp_path):
    names = []
    for run, frame in enumerate([_good(), _good(), _good().assign(amount=[7.0, 8.0])]):
        store = FeatureStore(tmp_path / f"ws{run}")
        store.apply([view()])
        store.ingest("user_stats", frame)
        names.append([p.name for p in store.offline_files("user_stats")])
        store.close()
    assert names[0] == names[1]  # same data, same names: evidence listing files is reproducible
    assert names[0] != names[2]  # other bytes, other names, though the ingest id is the same
