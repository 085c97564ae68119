"""Chapter 6 outage drill: the simulated plan is unchanged; the real one stops a private redis-server.

References: the offline daily rows (``daily_user_features``, a plain frame) for what the online
store must serve before and after the outage, and the server itself for down and back.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from features.conftest import RedisServer, redis_binary_or_skip
from mlops_kit._time import FixedClock
from mlops_kit.datasets import Scenario, generate_world
from mlops_kit.errors import OnlineStoreUnavailableError, ValidationError
from mlops_kit.features.online import RedisServerControl
from mlops_kit.labs import ch06 as L, ch06_ops as O, ch06_outage as X
from mlops_kit.rollout import OnlineStoreFeatureSource, OnlineStoreOutage
from mlops_kit.workspace import Workspace

DAY4 = L.START + timedelta(days=4)


@pytest.fixture(scope="module")
def small_world():
    sc = Scenario(name="t6o", start=L.START, days=8, n_users=40, n_merchants=8, n_transactions=900)
    return generate_world(sc, seed=5)


@pytest.fixture
def server(tmp_path):
    binary = redis_binary_or_skip()
    srv = RedisServer(binary, tmp_path).start()
    yield srv
    control = RedisServerControl(srv.url)
    if control.is_up():
        control.stop()
    srv.stop()


def _source(tmp_path, world, online_store):
    clock = FixedClock(world.scenario.start)
    store, _ = L.build_features(Workspace(tmp_path / "ws"), world, clock=clock, online_store=online_store)
    return O.DailyJobSource(store, clock)


def _expected(world, keys, midnight):
    """The offline row of each key at ``midnight`` (the job's data) and its credit limit: the reference."""
    daily, profile = L.daily_user_features(world)
    d = daily[daily["event_timestamp"] == pd.Timestamp(midnight)].set_index("user_id")
    known = profile[profile["event_timestamp"] < pd.Timestamp(midnight + O.JOB_AT)]   # what that job materialized
    p = known.sort_values("event_timestamp").groupby("user_id").last()
    out = d.loc[keys, list(L.DAILY_FEATURES)].astype(float).reset_index(drop=True)
    out["credit_limit"] = p["credit_limit"].reindex(keys).to_numpy(dtype=float)
    return out


def test_the_sqlite_plan_is_the_simulated_drill(tmp_path, small_world):
    source = _source(tmp_path, small_world, "sqlite")
    drill = X.outage_drill(source, "sqlite", pd.DataFrame({"key": [1, 2]}), start_h=18, hours=3)
    start = L.WINDOWS["outage"][0] + timedelta(hours=18)
    assert drill.mode == "simulated" and drill.source is source and drill.server is None
    assert drill.faults == [drill.fault] and isinstance(drill.fault, OnlineStoreOutage)
    assert (drill.fault.share, drill.fault.start, drill.fault.end) == (0.95, start, start + timedelta(hours=3))
    assert drill.root_cause == "the online store returned no features for 95 % of reads for three hours"
    assert drill.finish(None) is None and drill.actions() == []
    with pytest.raises(ValidationError, match="serves from 'sqlite'"):
        X.outage_drill(source, "redis://127.0.0.1:6379/0", pd.DataFrame({"key": [1]}))


def test_an_unavailable_store_reads_as_missing_and_is_recorded():
    class Down:
        def get_online_features(self, **kw):
            raise OnlineStoreUnavailableError("online store redis://127.0.0.1:1/0 is unavailable during read.")

    src = OnlineStoreFeatureSource(Down(), ["v:a", "v:b"], key_column="user_id")
    frame, missing = src.fetch(np.array([3, 1, 3]), None)
    assert frame.shape == (3, 2) and frame.isna().all().all() and missing.all()
    assert src.unavailable == [{"at": None, "keys": 3, "error": "online store redis://127.0.0.1:1/0 is unavailable during read."}]


def test_a_real_outage_stops_the_server_fails_the_job_and_recovers_equal_reads(tmp_path, small_world, server):
    source = _source(tmp_path, small_world, server.url)
    source.run_job(DAY4 + O.JOB_AT)
    control = RedisServerControl(server.url)
    before = control.probe()
    keys = np.sort(small_world.users["user_id"].to_numpy(dtype=np.int64))[:25]
    start, end = DAY4 + timedelta(hours=23), DAY4 + timedelta(hours=25)   # the 00:05 job of day 5 falls inside
    outage = X.ServerOutageSource(source, control, start=start, end=end, probe_keys=keys)
    control.check()
    want4, want5 = _expected(small_world, keys, DAY4), _expected(small_world, keys, DAY4 + timedelta(days=1))

    got, missing = outage.fetch(keys, start - timedelta(minutes=15))
    pd.testing.assert_frame_equal(got, want4, check_dtype=False)
    got, missing = outage.fetch(keys, start)                 # the server is stopped now
    assert missing.all() and outage.phase == "down" and not control.is_up()
    assert server.proc.wait(timeout=5) == 0
    got, missing = outage.fetch(keys, DAY4 + timedelta(days=1, minutes=15))
    assert missing.all() and source.jobs[-1]["succeeded"] is False     # the day-5 job could not run
    got, missing = outage.fetch(keys, end)                   # restart, re-materialize, then the job's retry
    pd.testing.assert_frame_equal(got, want5, check_dtype=False)
    assert not missing.any() and source.jobs[-1]["succeeded"] is True
    rec = outage.record
    assert rec["reads_after_recovery_equal"] and rec["server_replaced"] and rec["keys_after_restart"] == 0
    assert rec["keys_before_stop"] == rec["rows_rematerialized"] + 2        # one key per entity + 2 view counters
    after = control.probe()
    assert after.pid != before.pid and outage.measured["run_id_after"] == after.run_id != before.run_id
    assert len(source.inner.unavailable) == 2                # the two reads while the server was down


def test_a_redis_url_off_this_machine_is_refused_before_the_drill(tmp_path, small_world, server):
    source = _source(tmp_path, small_world, server.url)
    with pytest.raises(ValidationError, match="not on this machine"):
        X.outage_drill(source, "redis://10.9.8.7:6379/0", pd.DataFrame({"key": [1]}))
    assert control_up(server)


def control_up(server) -> bool:
    return RedisServerControl(server.url).is_up()
