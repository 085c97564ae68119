"""Point-in-time join rules at their edges, against hand-computed values."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pandas as pd
import pytest

from mlops_kit.errors import LateDataWarning, NotFoundError, SchemaError, TimezoneError, ValidationError
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field

from .helpers import US, USER, at, entities, rows, view


@pytest.fixture
def store(workspace, offline_engine):
    """A store on each offline engine (DuckDB, Spark): every rule below holds on both."""
    return FeatureStore(workspace, offline_engine=offline_engine)


def _get(store, edf, refs=("user_stats:amount",), **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LateDataWarning)
        return store.get_historical_features(edf, list(refs), **kw)


def test_ttl_edges_inclusive_and_one_microsecond(store):
    store.apply([view(ttl=timedelta(hours=2))])
    store.ingest("user_stats", rows([(1, at(0), at(0), 10.0, 1)]))
    edf = entities([(1, at(0) - US), (1, at(0)), (1, at(2) - US), (1, at(2)), (1, at(2) + US)])
    assert _get(store, edf)["amount"].tolist()[1:4] == [10.0, 10.0, 10.0]
    out = _get(store, edf)["amount"]
    assert pd.isna(out.iloc[0]) and pd.isna(out.iloc[4])


@pytest.mark.parametrize("ttl", [None, timedelta(0)])
def test_no_ttl_means_no_lower_bound(store, ttl):
    store.apply([view(ttl=ttl)])
    store.ingest("user_stats", rows([(1, at(0), at(0), 10.0, 1)]))
    assert _get(store, entities([(1, at(24 * 365))]))["amount"].tolist() == [10.0]


def test_ties_on_feature_ts_go_to_latest_created(store):
    store.apply([view()])
    store.ingest("user_stats", rows([(1, at(0), at(0.2), 2.0, 2), (1, at(0), at(0.1), 1.0, 1)]))
    store.ingest("user_stats", rows([(1, at(0), at(0.05), 3.0, 3)]))
    assert _get(store, entities([(1, at(1))]))["amount"].tolist() == [2.0]


def test_exact_tie_goes_to_last_ingested(store):
    store.apply([view(created=None)])
    store.ingest("user_stats", rows([(1, at(0), None, 1.0, 1), (1, at(0), None, 2.0, 2)], created=None))
    assert _get(store, entities([(1, at(1))]))["amount"].tolist() == [2.0]
    store.ingest("user_stats", rows([(1, at(0), None, 3.0, 3)], created=None))
    assert _get(store, entities([(1, at(1))]))["amount"].tolist() == [3.0]


def test_duplicates_order_and_input_columns_kept(store):
    store.apply([view()])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1), (2, at(1), at(1), 2.0, 2)]))
    edf = entities([(2, at(1.5)), (1, at(0.5)), (2, at(1.5)), (9, at(1)), (1, at(0.5))])
    edf["label"] = ["a", "b", "c", "d", "e"]
    edf.index = [50, 40, 30, 20, 10]
    out = _get(store, edf, ["user_stats:amount", "user_stats:count"])
    assert out["label"].tolist() == ["a", "b", "c", "d", "e"]
    assert out["amount"].tolist()[:3] == [2.0, 1.0, 2.0] and out["amount"].iloc[4] == 1.0
    assert pd.isna(out["amount"].iloc[3]) and out["count"].isna().tolist() == [False, False, False, True, False]
    assert list(out.columns) == ["user_id", "event_timestamp", "label", "amount", "count"]
    assert str(out["count"].dtype) == "Int64"


def test_null_on_winner_stays_null(store):
    store.apply([view()])
    store.ingest("user_stats", rows([(1, at(0), at(0), 5.0, 5), (1, at(1), at(1), None, None)]))
    out = _get(store, entities([(1, at(1.5))]), ["user_stats:amount", "user_stats:count"])
    assert pd.isna(out["amount"].iloc[0]) and pd.isna(out["count"].iloc[0])


def test_late_rows_warn_with_count_and_filter_excludes_them(store):
    store.apply([view(ttl=None)])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1), (1, at(1), at(5), 2.0, 2),
                                     (2, at(1), at(1), 7.0, 7)]))
    edf = entities([(1, at(2)), (1, at(6)), (2, at(2)), (1, at(1))])
    with pytest.warns(LateDataWarning, match=r"^2 of 4 entity rows"):
        leaky = store.get_historical_features(edf, ["user_stats:amount"])
    assert leaky["amount"].tolist() == [2.0, 2.0, 7.0, 2.0]
    honest = _get(store, edf, filter_by_created_timestamp=True)
    assert honest["amount"].tolist() == [1.0, 2.0, 7.0, 1.0]


def test_created_filter_respects_ttl_on_fallback(store):
    store.apply([view(ttl=timedelta(hours=1))])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1), (1, at(1.5), at(9), 2.0, 2)]))
    out = _get(store, entities([(1, at(2)), (1, at(1))]), filter_by_created_timestamp=True)
    assert pd.isna(out["amount"].iloc[0]) and out["amount"].iloc[1] == 1.0


def test_two_views_different_ttls_and_timestamp_columns(store):
    short = view("short", ttl=timedelta(hours=1), ts="ts_a", created=None)
    long = FeatureView(name="long", entities=[USER], ttl=timedelta(days=2), timestamp_field="ts_b",
                       schema=[Field(name="score", dtype="float64")])
    store.apply([short, long])
    store.ingest("short", rows([(1, at(0), None, 1.0, 1)], ts="ts_a", created=None))
    store.ingest("long", pd.DataFrame({"user_id": [1], "ts_b": [at(0)], "score": [0.5]}).astype(
        {"ts_b": "datetime64[us, UTC]"}))
    out = _get(store, entities([(1, at(0.5)), (1, at(3)), (1, at(49))]),
               ["short:amount", "long:score"], full_feature_names=True)
    assert out["short__amount"].tolist()[0] == 1.0 and out["short__amount"].isna().tolist()[1:] == [True, True]
    assert out["long__score"].tolist()[:2] == [0.5, 0.5] and pd.isna(out["long__score"].iloc[2])


def test_composite_keys(store):
    pair = Entity(name="pair", join_keys=["user_id", "merchant_id"])
    fv = FeatureView(name="pair_stats", entities=[pair], schema=[Field(name="n", dtype="int64")])
    store.apply([fv])
    store.ingest("pair_stats", pd.DataFrame({"user_id": [1, 1], "merchant_id": ["a", "b"],
                                             "event_timestamp": [at(0), at(0)], "n": [10, 20]}))
    edf = pd.DataFrame({"user_id": [1, 1, 2], "merchant_id": ["b", "a", "a"],
                        "event_timestamp": [at(1)] * 3})
    assert _get(store, edf, ["pair_stats:n"])["n"].tolist()[:2] == [20, 10]


def test_bare_name_clash_and_refusals(store):
    store.apply([view("a"), view("b")])
    store.ingest("a", rows([(1, at(0), at(0), 1.0, 1)]))
    edf = entities([(1, at(1))])
    with pytest.raises(ValidationError, match="clash"):
        store.get_historical_features(edf, ["a:amount", "b:amount"])
    assert list(_get(store, edf, ["a:amount", "b:amount"], full_feature_names=True).columns)[-2:] == \
        ["a__amount", "b__amount"]
    with pytest.raises(NotFoundError, match="no feature 'nope'"):
        store.get_historical_features(edf, ["a:nope"])
    with pytest.raises(NotFoundError, match="unknown feature view 'zzz'"):
        store.get_historical_features(edf, ["zzz:amount"])
    naive = edf.assign(event_timestamp=edf["event_timestamp"].dt.tz_localize(None))
    with pytest.raises(TimezoneError, match="tz_localize"):
        store.get_historical_features(naive, ["a:amount"])
    with pytest.raises(SchemaError, match="missing columns \\['user_id'\\]"):
        store.get_historical_features(edf.drop(columns="user_id"), ["a:amount"])
    with pytest.raises(SchemaError, match="int64 keys"):
        store.get_historical_features(edf.astype({"user_id": "string"}), ["a:amount"])


def test_versions_are_read_independently(store):
    store.apply([view(), view(ttl=None, version=2)])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]), version=1)
    store.ingest("user_stats", rows([(1, at(0), at(0), 2.0, 2)]))
    edf = entities([(1, at(10))])
    assert _get(store, edf)["amount"].tolist() == [2.0]
    assert pd.isna(_get(store, edf, ["user_stats@v1:amount"])["amount"].iloc[0])
    with pytest.raises(ValidationError, match="two versions"):
        store.get_historical_features(edf, ["user_stats@v1:amount", "user_stats@v2:count"])


def test_view_without_rows_gives_nulls(store):
    store.apply([view()])
    out = _get(store, entities([(1, at(0))]))
    assert out["amount"].isna().all() and len(out) == 1


def test_tie_across_ingests_is_detected(store):
    store.apply([view()])
    store.ingest("user_stats", rows([(1, at(0), at(0.5), 1.0, 1), (2, at(0), at(0), 5.0, 5)]))
    assert not store.meta.has_ties("user_stats", 1)
    store.ingest("user_stats", rows([(1, at(0), at(0.1), 2.0, 2)]))  # older correction, same ts
    assert store.meta.has_ties("user_stats", 1)
    assert _get(store, entities([(1, at(1))]))["amount"].tolist() == [1.0]
    store.materialize(at(0), at(1))
    assert store.get_online_features(["user_stats:amount"], [{"user_id": 1}], at=at(1))["amount"] == [1.0]


def test_empty_entity_df(store):
    store.apply([view()])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    out = _get(store, entities([]))
    assert len(out) == 0 and list(out.columns) == ["user_id", "event_timestamp", "amount"]


def test_files_outside_the_entity_window_are_pruned_without_changing_answers(store):
    store.apply([view(ttl=timedelta(hours=2))])
    store.ingest("user_stats", rows([(1, at(0), at(0), 1.0, 1)]))
    store.ingest("user_stats", rows([(1, at(24 * 5), at(24 * 5), 5.0, 5)]))
    store.ingest("user_stats", rows([(1, at(24 * 9), at(24 * 9), 9.0, 9)]))
    fv = store.get_feature_view("user_stats")
    t = int(at(24 * 5 + 1).timestamp()) * 1_000_000
    assert [p.parent.name for p in store._files_for(fv, t, t)] == ["date=2024-01-06"]
    out = _get(store, entities([(1, at(24 * 5 + 1)), (1, at(24 * 5 + 3))]))
    assert out["amount"].iloc[0] == 5.0 and pd.isna(out["amount"].iloc[1])


@pytest.mark.parametrize("before", [True, False])
def test_duckdb_join_restores_the_connections_insertion_order_setting(workspace, before):
    store = FeatureStore(workspace)
    store.apply([view(ttl=timedelta(hours=2))])
    store.ingest("user_stats", rows([(1, at(0), at(0), 10.0, 1), (2, at(0), at(0), 20.0, 1)]))
    store.duckdb.execute(f"SET preserve_insertion_order = {str(before).lower()}")
    out = _get(store, entities([(2, at(1)), (1, at(1)), (2, at(1))]))
    assert out["amount"].tolist() == [20.0, 10.0, 20.0]          # input order, whatever the setting
    setting = store.duckdb.sql("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    assert setting is before
