"""Per-call work of ``get_online_features``: the live-version change check and the time conversion.

A store caches its online plans per live generation and re-reads the generation only when
``features.sqlite`` may have changed (``PRAGMA data_version`` for other connections, a count of
its own write transactions). These tests prove a reader still sees every promotion and
rollback made elsewhere, and that the fast time conversion equals the pandas one.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_kit.errors import TimezoneError, ValidationError
from mlops_kit.features import FeatureStore
from mlops_kit.features.metadata import MetadataDB
from mlops_kit.features.serving import datetime_to_us

from .backfill_helpers import DAY, bumped, live_store
from .helpers import T0


def test_a_reader_serves_each_promotion_and_rollback_made_by_another_store(tmp_path):
    writer = live_store(tmp_path)
    writer.materialize(T0, T0 + 5 * DAY)
    at = T0 + 5 * DAY
    reader = FeatureStore(writer.workspace, clock=lambda: at)  # its own connections, like another process
    read = lambda: reader.get_online_features(["user_stats:amount"], [{"user_id": 2}])["amount"]  # noqa: E731
    assert read() == [38.0] and read() == [38.0]  # the plan is cached for the live version
    rec = writer.backfill("user_stats", T0 + 4 * DAY, T0 + 5 * DAY, compute=bumped, thresholds=None,
                          sleep=lambda s: None)
    assert read() == [38.0]  # a backfill alone changes nothing live
    for _ in range(2):
        writer.promote_backfill(rec.backfill_id, force_reason="drill")
        assert read() == [38.5] and read() == [38.5]
        writer.rollback_promotion("user_stats")
        assert read() == [38.0] and read() == [38.0]
    reader.close()
    writer.close()


def test_live_generation_follows_other_connections_and_its_own_writes(tmp_path):
    meta = MetadataDB(tmp_path / "features.sqlite")
    assert meta.live_generation() == 0 and meta.live_generation() == 0
    other = sqlite3.connect(tmp_path / "features.sqlite", isolation_level=None)
    log = ("INSERT INTO live_version_log (view, action, from_version, to_version, at_us, marker_ingest_id) "
           "VALUES ('v', 'promote', 1, 2, 0, 0)")
    other.execute(log)
    assert meta.live_generation() == 1  # another connection's commit moves data_version
    other.execute("CREATE TABLE unrelated (x)")
    assert meta.live_generation() == 1  # re-read, same answer
    with meta.transaction() as con:  # this connection's own commit does not move data_version
        con.execute(log)
    assert meta.live_generation() == 2
    with pytest.raises(RuntimeError):
        with meta.transaction() as con:
            con.execute(log)
            raise RuntimeError("rolled back")
    assert meta.live_generation() == 2
    other.execute(log)
    other.execute(log)
    assert meta.live_generation() == 4
    other.close()
    meta.close()


ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11)),
         ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")]


@given(moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
       zone=st.sampled_from(ZONES), fold=st.sampled_from([0, 1]))
def test_datetime_to_us_equals_the_pandas_conversion(moment, zone, fold):
    value = moment.replace(tzinfo=zone, fold=fold)
    reference = int(pd.Timestamp(value.astimezone(timezone.utc)).value // 1000)
    assert datetime_to_us(value, "at") == reference


def test_datetime_to_us_refuses_naive_and_non_time_values():
    with pytest.raises(TimezoneError, match="at is naive"):
        datetime_to_us(datetime(2024, 1, 1), "at")
    with pytest.raises(ValidationError, match="at must be a datetime"):
        datetime_to_us(1_700_000_000, "at")
    assert datetime_to_us("2024-01-01T00:00:00+01:00", "at") == 1_704_063_600_000_000
    assert datetime_to_us(pd.Timestamp("2024-01-01 00:00:00.000001", tz="UTC"), "at") == 1_704_067_200_000_001
