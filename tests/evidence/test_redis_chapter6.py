"""Chapter 6 built against a real Redis online store: the outage drill stops and restarts the server.

One build of chapter 6 with a private ``redis-server`` (the helper of ``tests/features/conftest.py``)
as its online store, graded at full marks for every C6 criterion. The server is the reference for
"it really went down and came back": its process id and run id before the build, the fixture's own
process having exited, and what ``INFO server`` says after. Without the binary the test skips,
except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
from datetime import timedelta

import nbformat
import pandas as pd
import pytest

from features.conftest import RedisServer, redis_binary_or_skip
from mlops_kit.evidence import build_evidence, grade_pack
from mlops_kit.features.online import RedisServerControl
from mlops_kit.labs.ch06 import WINDOWS


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    binary = redis_binary_or_skip()
    server = RedisServer(binary, tmp_path_factory.mktemp("redis-ch06")).start()
    yield server
    control = RedisServerControl(server.url)   # the drill's restarted server is no child of the fixture
    if control.is_up():
        control.stop()
    server.stop()


@pytest.fixture(scope="module")
def redis_pack(redis_server, tmp_path_factory):
    before = RedisServerControl(redis_server.url).probe()
    out = tmp_path_factory.mktemp("ch06-redis") / "pack"
    result = build_evidence(out, chapters=[6], quiz_answers="key", jobs=1, grade=False,
                            progress=lambda line: None, engines={"online_store": redis_server.url})
    info = json.loads((out / "ch06" / "drill_outage.json").read_text(encoding="utf-8"))
    return out, result, before, info


def test_chapter_6_on_redis_grades_full_marks(redis_pack):
    out, result, _, _ = redis_pack
    assert result.failed == [], result
    report = grade_pack(out)
    assert report.integrity_ok
    rows = [r for r in report.results if r["id"].startswith("C6.")]
    assert {r["id"] for r in rows} >= {f"C6.{i}" for i in range(1, 7)} | {"C6.run", "C6.checks"}
    assert [(r["id"], r["awarded"]) for r in rows] == [(r["id"], r["points"]) for r in rows]


def test_the_server_really_went_down_and_came_back(redis_pack, redis_server):
    _, _, before, info = redis_pack
    after = RedisServerControl(redis_server.url).probe()
    assert redis_server.proc.poll() is not None              # the process the fixture started is gone
    assert after.pid != before.pid and after.run_id != before.run_id and after.port == before.port
    outage = info["store_outage"]
    measured = outage["measured"]
    assert (measured["pid_before"], measured["run_id_before"]) == (before.pid, before.run_id)
    assert (measured["pid_after"], measured["run_id_after"]) == (after.pid, after.run_id)
    assert all(measured[k] >= 0 for k in ("stop_s", "restart_s", "rematerialize_s"))
    start = WINDOWS["outage"][0] + timedelta(hours=18)       # the drill's fault window: 18:00 + 3 h
    assert outage["stopped_at"] == info["fault_start"] == start.isoformat()
    assert outage["restarted_at"] == info["fault_end"] == (start + timedelta(hours=3)).isoformat()
    assert outage["mode"] == "redis-server stopped" and outage["server_replaced"] and not outage["persistent"]
    # no persistence: the restarted server came back empty and was re-materialized (one key per entity,
    # plus one counter per view: 2 views)
    assert outage["keys_after_restart"] == 0 and outage["keys_before_stop"] == outage["rows_rematerialized"] + 2
    assert outage["reads_after_recovery_equal"] is True and outage["probe_keys"] == 300
    # wall-clock times, pids and run ids live only in the measured block
    assert not {"stop_s", "restart_s", "pid_before", "run_id_before"} & set(outage)


def test_the_fallback_served_and_nothing_crashed(redis_pack):
    out, _, _, info = redis_pack
    serving = info["store_outage"]["serving"]
    assert serving["run_status"] == "completed" and serving["unserved"] == 0
    assert serving["unavailable_reads"] == 3 * 60 // 15       # every 15-min read of the 3-hour window failed
    assert serving["missing_features"] == serving["requests_in_outage"] == serving["unavailable_keys"] > 0
    ev = pd.read_csv(out / "ch06" / "drill_outage_events.csv")
    ev["time"] = pd.to_datetime(ev["time"], utc=True, format="mixed")
    on = ev.loc[ev["kind"] == "fallback_on", "time"]
    off = ev.loc[ev["kind"] == "fallback_off", "time"]
    start, end = pd.Timestamp(info["fault_start"]), pd.Timestamp(info["fault_end"])
    assert len(on) == 1 and start < on.iloc[0] <= start + pd.Timedelta(hours=1)
    assert len(off) == 1 and off.iloc[0] > end                # the fallback ended only after the restart
    # the requests from the fallback's first interval to the restart were all served by the fallback
    assert serving["served_by_fallback"] >= 0.9 * serving["requests_in_outage"]
    actions = {a["id"]: a["passed"] for a in info["corrective_actions"]}
    assert actions == {"CA-O1": True, "CA-O2": True, "CA-O3": True, "CA-O4": True}


def test_the_engine_is_recorded_and_the_store_serves_again(redis_pack, redis_server):
    import redis

    out, _, _, _ = redis_pack
    assert json.loads((out / "ch06" / "engines.json").read_text()) == {"online_store": "redis", "offline_engine": "duckdb"}
    executed = nbformat.read(str(out / "notebooks" / "06_capstone.ipynb"), as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "feature store engines: online_store redis, offline_engine duckdb" in text
    assert "(redis-server stopped): status completed" in text
    client = redis.Redis.from_url(redis_server.url, protocol=2)
    try:
        views = {k.decode().split(":")[2] for k in client.scan_iter(match="mk:*", count=1000)}
    finally:
        client.close()
    assert views == {"user_daily", "user_profile"}            # the re-materialized views, on the new server
