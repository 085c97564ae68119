"""Materialization and online reads: windows, no regression, watermarks, TTL on read.

Every test taking ``online_workspace`` or ``online_store`` runs once per engine (SQLite, Redis).
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from mlops_kit._time import FixedClock
from mlops_kit.errors import TimezoneError, ValidationError
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field

from .helpers import at, rows, snapshot, view

REF = ["user_stats:amount"]


@pytest.fixture
def store(online_workspace):
    s = FeatureStore(online_workspace, clock=FixedClock(at(100)))
    s.apply([view(ttl=timedelta(hours=2))])
    return s


def test_materialize_takes_latest_in_half_open_window(store):
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1), (1, at(1), at(1), 2.0, 2),
                                     (1, at(2), at(2), 3.0, 3), (2, at(0.5), at(0.5), 7.0, 7)]))
    report = store.materialize(at(0), at(2))
    part = report.views["user_stats"]
    assert (part.rows_scanned, part.rows_written, part.entities) == (3, 2, 2)
    got = store.get_online_features(REF, [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}], at=at(1.5),
                                    include_timestamps=True)
    assert got == {"user_id": [1, 2, 3], "amount": [2.0, 7.0, None],
                   "user_stats__event_timestamp": [at(1), at(0.5), None]}
    assert store.watermark("user_stats") == at(2)


def test_materialize_never_regresses(store):
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1), (1, at(5), at(5), 5.0, 5)]))
    store.materialize(at(4), at(6))
    report = store.materialize(at(0), at(1))
    assert report.views["user_stats"].rows_written == 0
    assert store.get_online_features(REF, [{"user_id": 1}], at=at(5))["amount"] == [5.0]
    assert store.watermark("user_stats") == at(6)


def test_same_timestamp_newer_created_replaces(store):
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    store.materialize(at(0), at(1))
    store.ingest("user_stats", rows([(1, at(0), at(3), 9.0, 9)]))
    store.materialize(at(0), at(1))
    assert store.get_online_features(REF, [{"user_id": 1}], at=at(0.5))["amount"] == [9.0]


def test_incremental_continues_from_watermark(store):
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1), (2, at(3), at(3), 2.0, 2)]))
    first = store.materialize_incremental(at(1)).views["user_stats"]
    assert (first.start, first.end, first.rows_scanned) == (at(0), at(1), 1)
    store.ingest("user_stats", rows([(1, at(4), at(4), 4.0, 4)]))
    second = store.materialize_incremental(at(5)).views["user_stats"]
    assert (second.start, second.rows_scanned, second.rows_written, second.watermark) == (at(1), 2, 2, at(5))
    assert store.get_online_features(REF, [{"user_id": 1}, {"user_id": 2}], at=at(5))["amount"] == [4.0, 2.0]
    assert store.materialize_incremental(at(5)).rows_scanned == 0
    reopened = FeatureStore(store.workspace)
    assert reopened.watermark("user_stats") == at(5)


def test_ttl_enforced_on_read_with_edges(store):
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    store.materialize(at(0), at(1))
    read = lambda when: store.get_online_features(REF, [{"user_id": 1}], at=when)["amount"]  # noqa: E731
    assert read(at(2)) == [1.0] and read(at(2) - timedelta(microseconds=1)) == [1.0]
    assert read(at(2) + timedelta(microseconds=1)) == [None]
    assert store.get_online_features(REF, [{"user_id": 1}])["amount"] == [None]  # clock: at(100)


def test_types_composite_and_string_keys(online_workspace):
    store = FeatureStore(online_workspace)
    pair = Entity(name="pair", join_keys=["user_id", "merchant"])
    fv = FeatureView(name="p", entities=[pair], schema=[
        Field(name="flag", dtype="bool"), Field(name="seen", dtype="timestamp"),
        Field(name="label", dtype="string"), Field(name="n", dtype="int64")])
    store.apply([fv])
    store.ingest("p", pd.DataFrame({
        "user_id": [1, 1], "merchant": ["m1", "m2"], "event_timestamp": [at(0), at(0)],
        "flag": [True, False], "seen": [at(-1), at(-2)], "label": ["x", None], "n": [3, 4]}))
    store.materialize(at(0), at(1))
    got = store.get_online_features(["p:flag", "p:seen", "p:label", "p:n"],
                                    [{"user_id": 1, "merchant": "m2"}, {"user_id": 1, "merchant": "m1"},
                                     {"user_id": 2, "merchant": "m1"}], at=at(1))
    assert got == {"user_id": [1, 1, 2], "merchant": ["m2", "m1", "m1"], "flag": [False, True, None],
                   "seen": [at(-2), at(-1), None], "label": [None, "x", None], "n": [4, 3, None]}


def test_many_keys_in_batches(store):
    n = 1_234
    store.ingest("user_stats", rows([(i, at(0), at(0), float(i), i) for i in range(n)]))
    store.materialize(at(0), at(1))
    got = store.get_online_features(REF, [{"user_id": i} for i in range(n + 5)][::-1], at=at(1))
    assert got["amount"] == [None] * 5 + [float(i) for i in range(n)][::-1]


def test_online_refusals_write_nothing(store):
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    store.materialize(at(0), at(1))
    before = snapshot(store.workspace.root)
    with pytest.raises(ValidationError, match="no value for join key 'user_id'"):
        store.get_online_features(REF, [{"user": 1}], at=at(1))
    with pytest.raises(ValidationError, match="entity_rows must be a list of dicts"):
        store.get_online_features(REF, {"user_id": 1}, at=at(1))
    with pytest.raises(TimezoneError, match="naive"):
        store.get_online_features(REF, [{"user_id": 1}], at=at(1).replace(tzinfo=None))
    with pytest.raises(ValidationError, match="start .* is after end"):
        store.materialize(at(2), at(1))
    with pytest.raises(TimezoneError):
        store.materialize_incremental(at(2).replace(tzinfo=None))
    assert snapshot(store.workspace.root) == before


def test_online_store_guard_directly(online_store):
    online = online_store
    fv = view(created=None)
    keys = {"user_id": "int64"}
    assert online.write_rows(fv, keys, [(1, 100, -(2**63), 1.0, 1)]) == 1
    assert online.write_rows(fv, keys, [(1, 50, -(2**63), 0.5, 0)]) == 0
    assert online.write_rows(fv, keys, [(1, 150, -(2**63), 2.0, 2)]) == 1
    ts, values = online.read_rows(fv, ["amount"], [(1,), (2,)])
    assert ts == [150, None] and values == {"amount": [2.0, None]}
    assert online.count(fv) == 1
    # equal event ts: a not-earlier created ts replaces (and counts), an earlier one does not
    assert online.write_rows(fv, keys, [(1, 150, 10, 3.0, 3), (1, 150, 9, 4.0, 4), (1, 150, 10, 5.0, 5)]) == 2
    assert online.read_rows(fv, ["amount", "count"], [(1,)]) == ([150], {"amount": [5.0], "count": [5]})
    assert online.write_rows(fv, keys, []) == 0 and online.count(fv) == 1


def test_key_values_normalized_or_refused(store):
    import numpy as np

    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    store.materialize(at(0), at(1))
    assert store.get_online_features(REF, [{"user_id": np.int64(1)}], at=at(1))["amount"] == [1.0]
    with pytest.raises(ValidationError, match=r"entity_rows\[0\]\['user_id'\] must be an int or str"):
        store.get_online_features(REF, [{"user_id": 1.5}], at=at(1))


def test_materialize_selects_views_and_versions(store):
    store.apply([view(ttl=None, version=2)])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]), version=1)
    store.ingest("user_stats", rows([(1, at(0), at(0), 2.0, 2)]))
    assert store.materialize(at(0), at(1), views=["user_stats@v1"]).rows_written == 1
    assert store.watermark("user_stats", 1) == at(1) and store.watermark("user_stats") is None
    assert store.get_online_features(["user_stats@v1:amount"], [{"user_id": 1}], at=at(1))["amount"] == [1.0]
    assert store.get_online_features(["user_stats:amount"], [{"user_id": 1}], at=at(1))["amount"] == [None]
    with pytest.raises(ValidationError, match="not 'view' or 'view@vN'"):
        store.materialize(at(0), at(1), views=["user_stats@latest"])


def test_close_flushes_usage_counts(tmp_path):
    """Usage counted in memory by the read hook reaches the catalog when the store closes."""
    from datetime import datetime, timedelta, timezone

    import pandas as pd

    from mlops_kit.features import Entity, FeatureStore, FeatureView, Field
    from mlops_kit.governance import Governance

    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(name="u", entities=[user], schema=[Field(name="x", dtype="float64")],
                       ttl=timedelta(days=1), owner="team")
    with FeatureStore(tmp_path / "ws", clock=lambda: t0 + timedelta(hours=1)) as store:
        store.apply([user, view])
        store.ingest("u", pd.DataFrame({"user_id": [1], "x": [0.5],
                                        "event_timestamp": pd.to_datetime([t0], utc=True)}))
        store.materialize(t0, t0 + timedelta(hours=1))
        for _ in range(3):
            assert store.get_online_features(features=["u:x"], entity_rows=[{"user_id": 1}])["x"] == [0.5]
    assert Governance(tmp_path / "ws").usage("u")["online_reads"] == 3


def test_apply_registers_views_in_the_catalog(tmp_path):
    from datetime import timedelta

    from mlops_kit.features import Entity, FeatureStore, FeatureView, Field
    from mlops_kit.governance import Governance

    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(name="spend", entities=[user], schema=[Field(name="x", dtype="float64")],
                       ttl=timedelta(days=1), owner="payments-ml", tags={"domain": "payments"})
    with FeatureStore(tmp_path / "ws") as store:
        store.apply([user, view])
    entry = Governance(tmp_path / "ws").entry("spend")
    assert (entry.name, entry.version, entry.owner, entry.state) == ("spend", 1, "payments-ml", "active")
