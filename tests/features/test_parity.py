"""Parity report: matches, mismatches with both values, missing on either side, round trip."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from mlops_kit.errors import ValidationError
from mlops_kit.features import FeatureStore, parity_report

from .helpers import at, rows, view

REFS = ["user_stats:amount", "user_stats:count"]


@pytest.fixture
def store(online_workspace):  # once per online engine (tests/features/conftest.py)
    s = FeatureStore(online_workspace)
    s.apply([view(ttl=timedelta(hours=10))])
    s.ingest("user_stats", rows([(i, at(0), at(0), float(i), i) for i in range(20)]))
    return s


def test_all_match_after_materialize(store):
    store.materialize(at(0), at(1))
    report = parity_report(store, REFS, sample_size=8, seed=3, at=at(1))
    assert report.ok and report.compared == 16 and report.matches == 16 and report.sampled_entities == 8
    again = parity_report(store, REFS, sample_size=8, seed=3, at=at(1))
    assert again.to_dict() == report.to_dict()
    json.dumps(report.to_dict(), default=str)


def test_detects_mismatch_and_missing_online(store):
    store.materialize(at(0), at(1))
    store.ingest("user_stats", rows([(3, at(2), at(2), 99.0, 99)]))
    store.ingest("user_stats", rows([(50, at(2), at(2), 5.0, 5)]))
    report = parity_report(store, ["user_stats:amount"], sample_size=100, seed=0, at=at(3))
    assert not report.ok and report.compared == 21 and report.matches == 19
    assert report.mismatches == [{"view": "user_stats", "feature": "amount", "key": {"user_id": 3},
                                  "offline": 99.0, "online": 3.0}]
    assert [m["key"] for m in report.missing_online] == [{"user_id": 50}]
    frame = report.to_frame()
    assert sorted(frame["status"]) == ["mismatch", "missing_online"]


def test_detects_missing_offline(store):
    store.ingest("user_stats", rows([(1, at(12), at(12), 50.0, 50)]))
    store.materialize(at(0), at(13))
    report = parity_report(store, ["user_stats:amount"], sample_size=20, seed=0, at=at(11))
    # offline: user 1's row at 0 is past the 10 h TTL at 11 h and the 12 h row is in the future
    assert report.missing_offline == [{"view": "user_stats", "feature": "amount",
                                       "key": {"user_id": 1}, "offline": None, "online": 50.0}]
    assert report.matches == 19 and not report.mismatches and not report.missing_online


def test_tolerance(store):
    store.materialize(at(0), at(1))
    fv = store.get_feature_view("user_stats")
    t_us = int(at(0).timestamp()) * 1_000_000
    store.online.write_rows(fv, {"user_id": "int64"}, [(3, t_us, t_us + 1, 3.0 + 1e-12, 3)])
    loose = parity_report(store, ["user_stats:amount"], sample_size=20, seed=0, at=at(1))
    strict = parity_report(store, ["user_stats:amount"], sample_size=20, seed=0, at=at(1), tolerance=0.0)
    assert loose.ok and [m["key"] for m in strict.mismatches] == [{"user_id": 3}]


def test_missing_offline_when_online_is_ahead(store):
    store.ingest("user_stats", rows([(1, at(5), at(5), 50.0, 50)]))
    store.materialize(at(0), at(6))
    report = parity_report(store, ["user_stats:amount"], sample_size=20, seed=0, at=at(1))
    assert [m["key"] for m in report.mismatches] == [{"user_id": 1}]
    assert report.mismatches[0]["offline"] == 1.0 and report.mismatches[0]["online"] == 50.0


def test_refusals(store):
    with pytest.raises(ValidationError, match="sample_size must be a positive integer"):
        parity_report(store, REFS, sample_size=0, seed=0, at=at(1))
    with pytest.raises(ValidationError, match="tolerance must be >= 0"):
        parity_report(store, REFS, sample_size=1, seed=0, at=at(1), tolerance=-1)
