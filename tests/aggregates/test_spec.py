"""Declarations: validation with fix-it errors, fingerprints and the JSON round trip."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

import mlops_kit.aggregates as agg
from mlops_kit.aggregates import AggregateSpec, RollingAggregate
from mlops_kit.errors import DefinitionError, MlopsKitError


def ra(**overrides):
    fields = dict(name="amount_sum_7d", column="amount", function="sum",
                  window=timedelta(days=7), entity_key="user_id")
    fields.update(overrides)
    return RollingAggregate(**fields)


def test_exports_match_public_names():
    public = {n for n in dir(agg) if not n.startswith("_")}
    modules = {"_compare", "_compute", "_runner", "_source", "_spec", "_state"}
    assert set(agg.__all__) == public - modules


@pytest.mark.parametrize("overrides, field, text", [
    ({"function": "median"}, "function", "one of count, sum, mean"),
    ({"window": timedelta(0)}, "window", "positive"),
    ({"window": -timedelta(days=1)}, "window", "positive"),
    ({"window": timedelta(hours=36)}, "window", "whole number of days"),
    ({"window": 7}, "window", "timedelta"),
    ({"column": "amount; drop"}, "column", "identifier"),
    ({"entity_key": ""}, "entity_key", "identifier"),
    ({"name": "event_timestamp"}, "name", "collides"),
    ({"name": "user_id"}, "name", "collides"),
])
def test_rolling_aggregate_refuses_bad_fields(overrides, field, text):
    with pytest.raises(DefinitionError) as info:
        ra(**overrides)
    assert info.value.details["field"] == field
    assert text in str(info.value)
    assert info.value.fix
    assert isinstance(info.value, MlopsKitError)


def test_window_of_24_hours_is_one_day_and_frozen():
    a = ra(window=timedelta(hours=24))
    assert a.window_days == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.window = timedelta(days=2)
    with pytest.raises(TypeError):
        RollingAggregate("x", "amount", "sum", timedelta(days=1), "user_id")  # keyword-only


def test_spec_validation():
    with pytest.raises(DefinitionError, match="empty"):
        AggregateSpec(name="s", aggregates=[])
    with pytest.raises(DefinitionError, match="duplicate"):
        AggregateSpec(name="s", aggregates=[ra(), ra()])
    with pytest.raises(DefinitionError, match="share one entity_key"):
        AggregateSpec(name="s", aggregates=[ra(), ra(name="m", entity_key="merchant_id")])
    with pytest.raises(DefinitionError, match="share one timestamp_field"):
        AggregateSpec(name="s", aggregates=[ra(), ra(name="m", timestamp_field="ts2")])
    with pytest.raises(DefinitionError, match="separate columns"):
        AggregateSpec(name="s", aggregates=[ra()], ingested_field="event_timestamp")
    with pytest.raises(DefinitionError, match="RollingAggregate"):
        AggregateSpec(name="s", aggregates=[{"name": "x"}])
    with pytest.raises(DefinitionError, match="list"):
        AggregateSpec(name="s", aggregates=ra())


def test_spec_properties_and_round_trip():
    spec = AggregateSpec(name="user_txn", aggregates=[
        ra(), ra(name="cnt_30d", function="count", column="transaction_id",
                 window=timedelta(days=30)),
        ra(name="cd_1d", function="count_distinct", column="merchant_id",
           window=timedelta(hours=24))])
    assert isinstance(spec.aggregates, tuple)
    assert spec.max_window_days == 30
    assert spec.entity_key == "user_id"
    assert spec.source_columns() == ["user_id", "event_timestamp", "ingested_at", "amount",
                                     "transaction_id", "merchant_id"]
    again = AggregateSpec.from_dict(spec.to_dict())
    assert again == spec and again.fingerprint == spec.fingerprint
    assert len(spec.fingerprint) == 64
    changed = AggregateSpec(name="user_txn", aggregates=[
        ra(window=timedelta(days=8)), *spec.aggregates[1:]])
    assert changed.fingerprint != spec.fingerprint
    for a in spec.aggregates:
        assert RollingAggregate.from_dict(a.to_dict()) == a


def test_from_dict_refuses_garbage():
    with pytest.raises(DefinitionError):
        RollingAggregate.from_dict({"name": "x"})
    with pytest.raises(DefinitionError):
        RollingAggregate.from_dict({**ra().to_dict(), "window_days": "7"})
    with pytest.raises(DefinitionError):
        RollingAggregate.from_dict({**ra().to_dict(), "colour": "red"})
    with pytest.raises(DefinitionError):
        AggregateSpec.from_dict({"name": "s"})
