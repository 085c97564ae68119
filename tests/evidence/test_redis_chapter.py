"""Chapter 2 built against a real Redis online store grades exactly like the SQLite build.

A private ``redis-server`` (started with the helper of ``tests/features/conftest.py``) serves the
chapter's online reads; after the build the server must hold the kit's ``mk:`` keys of the
chapter's views. Without the binary the test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest

from features.conftest import RedisServer, redis_binary_or_skip
from mlops_kit.errors import NotebookParameterError, ValidationError
from mlops_kit.evidence import build_evidence, grade_pack


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = redis_binary_or_skip()
    server = RedisServer(binary, tmp_path_factory.mktemp("redis-ch02")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def redis_pack(redis_url, tmp_path_factory):
    out = tmp_path_factory.mktemp("ch02-redis") / "pack"
    result = build_evidence(out, chapters=[2], quiz_answers="key", jobs=1, grade=False,
                            progress=lambda line: None, extra_parameters={"online_store": redis_url})
    return out, result


def test_chapter_2_on_redis_grades_full_marks(redis_pack):
    out, result = redis_pack
    assert result.failed == [], result
    report = grade_pack(out)
    assert report.integrity_ok
    rows = [r for r in report.results if r["id"].startswith("C2.")]
    assert len(rows) >= 8  # C2.1 ... C2.8 at least, plus the run/checks rows
    assert [(r["id"], r["awarded"]) for r in rows] == [(r["id"], r["points"]) for r in rows]


def test_online_values_were_served_from_redis(redis_pack, redis_url):
    import redis

    out, _ = redis_pack
    client = redis.Redis.from_url(redis_url, protocol=2)
    try:
        keys = {k.decode() for k in client.scan_iter(match="mk:*", count=1000)}
    finally:
        client.close()
    # the chapter materializes user_txn_count v1 only: one key per user, plus the view's counter
    assert {key.split(":")[2] + ":" + key.split(":")[3] for key in keys} == {"user_txn_count:v1"}
    ages = pd.read_csv(out / "ch02" / "feature_ages.csv")
    users = {f"i{int(u)}" for u in ages.loc[ages["phase"] == "after", "user_id"]}
    assert len(users) > 100
    assert {key.split(":")[4] for key in keys} - {"#n"} == users
    engines = json.loads((out / "ch02" / "engines.json").read_text(encoding="utf-8"))
    assert engines == {"online_store": "redis", "offline_engine": "duckdb"}
    executed = nbformat.read(str(out / "notebooks" / "02_feature_store.ipynb"), as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "feature store engines: online_store redis, offline_engine duckdb" in text
    assert redis_url.rsplit(":", 1)[0] not in text.split("feature store engines:")[1].splitlines()[0]


def test_extra_parameters_are_checked_before_running(tmp_path):
    with pytest.raises(NotebookParameterError, match="online_engine"):
        build_evidence(tmp_path / "p", chapters=[2], grade=False, progress=lambda line: None,
                       extra_parameters={"online_engine": "redis://127.0.0.1:1/0"})
    with pytest.raises(ValidationError, match="extra_parameters"):
        build_evidence(tmp_path / "p", chapters=[2], grade=False, progress=lambda line: None,
                       extra_parameters={"seed": 3})
    assert not (tmp_path / "p").exists()


def test_lab_store_engines_and_bad_online_store(tmp_path, redis_url):
    from mlops_kit._time import FixedClock
    from mlops_kit.errors import MlopsKitError
    from mlops_kit.labs import ch02_sync as sync
    from mlops_kit.workspace import Workspace

    clock = FixedClock(pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime())
    stores = [sync.lab_store(Workspace(tmp_path / name), clock=clock, online_store=url)
              for name, url in (("a", "sqlite"), ("b", redis_url))]
    try:
        assert [sync.engines(s)["online_store"] for s in stores] == ["sqlite", "redis"]
        assert [s.online.describe()["kind"] for s in stores] == ["sqlite", "redis"]
    finally:
        for s in stores:
            s.close()
    with pytest.raises(ValidationError, match="online_store"):
        sync.lab_store(Workspace(tmp_path / "c"), clock=clock, online_store=None)
    with pytest.raises(MlopsKitError):
        sync.lab_store(Workspace(tmp_path / "d"), clock=clock, online_store="memcached://x")
