"""Scenario: defaults, presets, round trip, and every refused input."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlops_kit.datasets import Scenario
from mlops_kit.errors import DefinitionError, NotFoundError, TimezoneError, ValidationError

UTC = timezone.utc
DATA = Path(__file__).resolve().parents[2] / "data"


def test_default_world_is_notebook_sized_and_switches_are_off():
    s = Scenario.default()
    assert s.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert (s.n_users, s.n_merchants, s.n_transactions, s.days) == (2000, 200, 50000, 60)
    assert s.covariate_drift_from is None and s.concept_drift_from is None
    assert s.schema_change is None and s.outages == () and s.duplicate_share == 0.0
    assert s.end == datetime(2024, 3, 1, tzinfo=UTC)


def test_scale_multiplies_counts():
    assert Scenario.default().with_scale(200).sizes == (400_000, 40_000, 10_000_000)
    assert Scenario.default().with_scale(0.02).sizes == (40, 4, 1000)
    assert Scenario.default().with_scale(1e-6).sizes == (1, 1, 1)  # never zero


def test_frozen_and_keyword_only():
    with pytest.raises(FrozenInstanceError):
        Scenario.default().days = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        Scenario("x")  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(Scenario.presets()))
def test_round_trip_of_every_preset(name):
    s = Scenario.preset(name)
    data = json.loads(json.dumps(s.to_dict()))
    assert Scenario.from_dict(data) == s
    assert s.name == name


@pytest.mark.parametrize("name", sorted(Scenario.presets()))
def test_data_scenario_files_hold_the_presets(name):
    path = DATA / "scenarios" / f"{name}.json"
    assert Scenario.from_json(path) == Scenario.preset(name)
    assert json.loads(path.read_text()) == json.loads(Scenario.preset(name).to_json())


def test_non_utc_offsets_are_normalised_to_utc():
    cet = timezone(timedelta(hours=1))
    s = Scenario(start=datetime(2024, 1, 1, 1, tzinfo=cet))
    assert s.start == datetime(2024, 1, 1, tzinfo=UTC) and s.start.utcoffset() == timedelta(0)


def _raises(error, match, **kwargs):
    with pytest.raises(error, match=match) as info:
        Scenario(**kwargs)
    assert "Fix:" in str(info.value) and info.value.fix
    return info.value


@pytest.mark.parametrize("field", ["n_users", "n_merchants", "n_transactions", "days"])
@pytest.mark.parametrize("value", [0, -5, 2.5, True, "10"])
def test_bad_counts(field, value):
    err = _raises(DefinitionError, field, **{field: value})
    assert err.details["field"] == field


def test_naive_start_is_refused():
    _raises(TimezoneError, "naive", start=datetime(2024, 1, 1))


def test_non_datetime_start_is_refused():
    _raises(ValidationError, "start", start=20240101)


@pytest.mark.parametrize("field", ["late_share", "duplicate_share"])
@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan"), "0.1"])
def test_shares_outside_unit_interval(field, value):
    _raises(DefinitionError, field, **{field: value})


def test_base_fraud_rate_bounds():
    _raises(DefinitionError, "base_fraud_rate", base_fraud_rate=0.0)
    _raises(DefinitionError, "base_fraud_rate", base_fraud_rate=0.9)


def test_unknown_schema_change():
    _raises(DefinitionError, "schema_change", schema_change="drop")
    _raises(DefinitionError, "schema_change_field", schema_change="rename", schema_change_field="user_id")


def test_outage_window_inverted_or_empty():
    t = datetime(2024, 1, 10, tzinfo=UTC)
    _raises(DefinitionError, "inverted", outages=((t, t - timedelta(hours=1)),))
    _raises(DefinitionError, "inverted", outages=((t, t),))
    _raises(TimezoneError, "naive", outages=((datetime(2024, 1, 10), datetime(2024, 1, 11)),))
    _raises(DefinitionError, "overlapping", outages=((t, t + timedelta(hours=5)),
                                                     (t + timedelta(hours=2), t + timedelta(hours=8))))
    _raises(DefinitionError, "outages", outages=((t,),))


def test_drift_dates_must_be_inside_the_world():
    _raises(DefinitionError, "covariate_drift_from", covariate_drift_from=datetime(2025, 1, 1, tzinfo=UTC))
    _raises(TimezoneError, "naive", concept_drift_from=datetime(2024, 1, 20))


def test_other_bounds():
    _raises(DefinitionError, "scale", scale=0)
    _raises(DefinitionError, "scale", scale=10_000)  # beyond the supported size
    _raises(DefinitionError, "late_delay_hours", late_delay_hours=(5.0, 1.0))
    _raises(DefinitionError, "chargeback_delay_median_days", chargeback_delay_median_days=-1)
    _raises(DefinitionError, "name", name="")


def test_from_dict_refuses_unknown_keys_and_bad_types():
    with pytest.raises(DefinitionError, match="unknown keys"):
        Scenario.from_dict({"n_users": 10, "n_userz": 3})
    with pytest.raises(DefinitionError):
        Scenario.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(NotFoundError, match="small"):
        Scenario.preset("tiny")
    with pytest.raises(NotFoundError):
        Scenario.from_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DefinitionError):
        Scenario.from_json(bad)


def test_from_dict_validates_like_the_constructor():
    data = Scenario.outage().to_dict()
    data["outages"] = [[data["outages"][0][1], data["outages"][0][0]]]
    with pytest.raises(DefinitionError, match="inverted"):
        Scenario.from_dict(data)
    with pytest.raises(DefinitionError, match="outages"):
        Scenario.from_dict({"outages": 5})
    with pytest.raises(TimezoneError):
        Scenario.from_dict({"start": "2024-01-01T00:00:00"})
