"""Definitions: validation messages, fingerprints, round trips, apply and versions."""

from __future__ import annotations

from datetime import timedelta

import pytest

import mlops_kit.features as features_pkg
from mlops_kit.errors import DefinitionConflictError, DefinitionError, NotFoundError
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field

from .helpers import USER, view


def test_exports_match_public_names():
    public = {n for n in dir(features_pkg) if not n.startswith("_")}
    modules = {"definitions", "materialize", "metadata", "offline", "online", "parity", "pit",
               "serving", "store", "validation", "config", "doctor", "backfill", "backfill_promote", "backfill_records",
               "backfill_validate", "backfill_write", "spark_engine", "retrieval", "spark_faults",
               "spark_materialize", "spark_retrieval"}
    assert set(features_pkg.__all__) == public - modules


def test_negative_ttl_message_names_object_field_value_and_fix():
    with pytest.raises(DefinitionError) as err:
        view(ttl=timedelta(days=-1))
    msg = str(err.value)
    assert "FeatureView 'user_stats'" in msg and "ttl" in msg and "-1 day" in msg
    assert "ttl=timedelta(days=7)" in msg


@pytest.mark.parametrize("kwargs, needle", [
    ({"name": "1bad"}, "name must be an identifier"),
    ({"version": 0}, "version must be a positive integer"),
    ({"sensitivity": "secret"}, "sensitivity must be one of"),
    ({"tags": {"a": 1}}, "tags must be a dict of str to str"),
    ({"created": "event_timestamp"}, "must differ from timestamp_field"),
    ({"entities": []}, "entities must be a non-empty list of Entity"),
])
def test_invalid_view_fields(kwargs, needle):
    with pytest.raises(DefinitionError, match=needle):
        view(**kwargs)


def test_field_and_entity_validation():
    with pytest.raises(DefinitionError, match="dtype must be one of"):
        Field(name="x", dtype="float32")
    with pytest.raises(DefinitionError, match="join_keys must be a non-empty list"):
        Entity(name="user", join_keys="user_id")
    with pytest.raises(DefinitionError, match="duplicates"):
        Entity(name="user", join_keys=["a", "a"])
    with pytest.raises(DefinitionError, match="declares join key 'user_id' as 'float64'"):
        FeatureView(name="v", entities=[USER], schema=[Field(name="user_id", dtype="float64"),
                                                       Field(name="x", dtype="float64")])
    with pytest.raises(DefinitionError, match="declares no feature"):
        FeatureView(name="v", entities=[USER], schema=[Field(name="user_id", dtype="int64")])


def test_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        Entity("user", ["user_id"])  # type: ignore[misc]
    fv = view()
    with pytest.raises(AttributeError):
        fv.ttl = None  # type: ignore[misc]


def test_round_trip_and_fingerprint():
    fv = view(ttl=timedelta(hours=2, microseconds=7), tags={"team": "risk"}, owner="ana")
    again = FeatureView.from_dict(fv.to_dict())
    assert again == fv and again.fingerprint == fv.fingerprint
    assert Entity.from_dict(USER.to_dict()) == USER
    assert view(ttl=timedelta(hours=3)).fingerprint != fv.fingerprint
    assert len(fv.fingerprint) == 64


def test_ttl_none_and_zero_mean_unbounded():
    assert not view(ttl=None).ttl_active and not view(ttl=timedelta(0)).ttl_active
    assert view(ttl=timedelta(microseconds=1)).ttl_active


def test_apply_idempotent_conflict_and_versions(workspace):
    store = FeatureStore(workspace)
    assert store.apply([view()]) == ["user", "user_stats@v1"]
    assert store.apply([view()]) == []
    with pytest.raises(DefinitionConflictError, match="Bump the version"):
        store.apply([view(ttl=timedelta(hours=5))])
    store.apply([view(ttl=timedelta(hours=5), version=2)])
    assert store.get_feature_view("user_stats").version == 2
    assert store.get_feature_view("user_stats", 1).ttl == timedelta(hours=2)
    assert [(v.name, v.version) for v in store.list_feature_views()] == [("user_stats", 1), ("user_stats", 2)]
    reopened = FeatureStore(workspace.root)
    assert reopened.get_feature_view("user_stats", 2) == view(ttl=timedelta(hours=5), version=2)
    with pytest.raises(NotFoundError, match="unknown feature view 'nope'"):
        reopened.get_feature_view("nope")


def test_conflict_inside_one_apply_writes_nothing(workspace):
    store = FeatureStore(workspace)
    with pytest.raises(DefinitionConflictError):
        store.apply([view(), view(ttl=None)])
    assert store.list_feature_views() == []
