"""Online engines side by side: dtype round trips, key typing, isolation, concurrent writers,
and the Redis store's faults against real servers (down, killed, wrong password, bad db)."""

from __future__ import annotations

import os
import random
import threading
from datetime import timedelta

import pytest

from mlops_kit.errors import OnlineStoreUnavailableError
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field, RedisOnlineStore, SqliteOnlineStore
from mlops_kit.features.online import NO_CREATED

from .conftest import free_port, missing_server_outcome, redis_server_binary
from .helpers import at, rows, view

ALL = FeatureView(name="all_types", entities=[Entity(name="user", join_keys=["user_id"])], ttl=None,
                  schema=[Field(name="i", dtype="int64"), Field(name="f", dtype="float64"),
                          Field(name="b", dtype="bool"), Field(name="s", dtype="string"),
                          Field(name="t", dtype="timestamp")])
FEATS = ["i", "f", "b", "s", "t"]
INT = {"user_id": "int64"}


def test_every_dtype_round_trips_in_raw_form(online_store):
    data = [  # (key, event, created, i, f, b, s, t) -> expected read (NaN is null, as in SQLite)
        (1, 2**62, NO_CREATED, 2**63 - 1, 1.7976931348623157e308, True, "é😀 ok", 2**62),
        (2, -(2**62), -5, -(2**63), 5e-324, False, "", -(2**62)),
        (3, 0, 0, 0, float("inf"), None, "a\x00b:c", 0),
        (4, 1, 1, None, float("-inf"), True, None, None),
        (5, 2, 2, 7, 0.1 + 0.2, False, "line\nnext", 1),
        (6, 3, 3, None, None, None, None, None),
        (7, 4, 4, 1, float("nan"), True, "x", 5),
    ]
    assert online_store.write_rows(ALL, INT, data) == 7
    ts, values = online_store.read_rows(ALL, FEATS, [(k,) for k in (7, 1, 2, 3, 4, 5, 6, 8, 1)])
    assert ts == [4, 2**62, -(2**62), 0, 1, 2, 3, None, 2**62]
    expect = {1: data[0], 2: data[1], 3: data[2], 4: data[3], 5: data[4], 6: data[5]}
    for pos, key in enumerate((7, 1, 2, 3, 4, 5, 6, 8, 1)):
        got = [values[f][pos] for f in FEATS]
        if key == 7:
            assert got == [1, None, 1, "x", 5]
        elif key == 8:
            assert got == [None] * 5
        else:
            want = [None if v is None else (int(v) if isinstance(v, bool) else v) for v in expect[key][3:]]
            assert got == want and [type(v) for v in got] == [type(v) for v in want]
    assert online_store.read_rows(ALL, ["s", "i"], [(2,)]) == ([-(2**62)], {"s": [""], "i": [-(2**63)]})
    assert online_store.count(ALL) == 7


def test_keys_are_typed_and_composite_keys_are_exact(online_store):
    pair = FeatureView(name="pair", entities=[Entity(name="p", join_keys=["a", "b"])], ttl=None,
                       schema=[Field(name="x", dtype="int64")])
    kd = {"a": "string", "b": "int64"}
    keyed = [("1", 1, 10, NO_CREATED, 1), ("1:1", 1, 10, NO_CREATED, 2), ('"1",1', 1, 10, NO_CREATED, 3),
             ("é", -1, 10, NO_CREATED, 4)]
    assert online_store.write_rows(pair, kd, keyed) == 4
    ts, values = online_store.read_rows(pair, ["x"], [("1", 1), ("1:1", 1), ('"1",1', 1), ("é", -1), (1, 1),
                                                      ("1", "1"), ("1:1",) * 2])
    assert values["x"] == [1, 2, 3, 4, None, None, None] and ts[:4] == [10] * 4
    fv = view(created=None)
    online_store.write_rows(fv, INT, [(1, 5, NO_CREATED, 1.0, 1)])
    assert online_store.read_rows(fv, ["amount"], [(1,), ("1",)])[1] == {"amount": [1.0, None]}
    string_view = view(name="by_name", created=None)
    online_store.write_rows(string_view, {"user_id": "string"}, [("1", 5, NO_CREATED, 2.0, 2)])
    assert online_store.read_rows(string_view, ["amount"], [("1",), (1,)])[1] == {"amount": [2.0, None]}


def test_concurrent_writers_end_as_if_serial(engine, tmp_path):
    fv = view(created="created")
    n = 300
    make = ((lambda: SqliteOnlineStore(tmp_path / "online.sqlite")) if engine == "sqlite"
            else (lambda: RedisOnlineStore(engine, namespace="conc")))
    rng = random.Random(7)
    # unique (event, created) per key across both writers, so the final winner is determined
    pairs = {k: rng.sample([(e, c) for e in range(50) for c in range(5)], 6) for k in range(n)}
    batches = [[], []]
    for k, ps in pairs.items():
        for j, (e, c) in enumerate(ps):
            batches[j % 2].append((k, e, c, float(e * 10 + c), j))
    for b in batches:
        rng.shuffle(b)
    errors: list[BaseException] = []

    def run(batch):
        try:
            store = make()
            for start in range(0, len(batch), 97):
                store.write_rows(fv, INT, batch[start:start + 97])
            store.close()
        except BaseException as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reader = make()
    ts, values = reader.read_rows(fv, ["amount"], [(k,) for k in range(n)])
    best = {k: max(ps) for k, ps in pairs.items()}
    assert ts == [best[k][0] for k in range(n)]
    assert values["amount"] == [float(best[k][0] * 10 + best[k][1]) for k in range(n)]
    assert reader.count(fv) == n
    reader.close()


def test_two_workspaces_on_one_server_are_isolated(redis_server, tmp_path):
    redis_server.flush()
    stores = []
    for i in range(2):
        s = FeatureStore(tmp_path / f"ws{i}", online_store=redis_server.url)
        s.apply([view()])
        s.ingest("user_stats", rows([(1, at(0), at(0), float(i + 1), i)]))
        s.materialize(at(0), at(1))
        stores.append(s)
    got = [s.get_online_features(["user_stats:amount"], [{"user_id": 1}], at=at(1))["amount"] for s in stores]
    assert got == [[1.0], [2.0]]
    assert [s.online.count(view()) for s in stores] == [1, 1]
    assert stores[0].online.namespace != stores[1].online.namespace
    for s in stores:
        s.close()


def test_ci_runs_the_redis_tests():
    """Under CI=true a missing redis-server fails the Redis tests instead of skipping them."""
    assert missing_server_outcome({"CI": "true"}) == "fail"
    assert missing_server_outcome({"CI": "TRUE"}) == "fail"
    assert missing_server_outcome({}) == "skip" and missing_server_outcome({"CI": "false"}) == "skip"
    if os.environ.get("CI", "").lower() == "true":
        assert redis_server_binary() is not None, "CI must install redis-server (scripts/test.sh)"


# -- faults, against real servers --------------------------------------------------------------
def test_unreachable_port_fails_at_construction(tmp_path):
    url = f"redis://:topsecret@127.0.0.1:{free_port()}/0"
    with pytest.raises(OnlineStoreUnavailableError) as err:
        RedisOnlineStore(url, connect_timeout=0.5)
    msg = str(err.value)
    assert "redis://:***@127.0.0.1" in msg and "topsecret" not in msg and "redis-server is running" in msg
    assert err.value.details["url"].startswith("redis://:***@")
    with pytest.raises(OnlineStoreUnavailableError, match="during connect"):
        FeatureStore(tmp_path / "ws", online_store=url)


def test_wrong_or_missing_password(start_redis):
    server = start_redis(password="hunter2xyz")
    wrong = server.url.replace("hunter2xyz", "nottheone")
    with pytest.raises(OnlineStoreUnavailableError) as err:
        RedisOnlineStore(wrong)
    assert "nottheone" not in str(err.value) and "Check the password" in str(err.value)
    with pytest.raises(OnlineStoreUnavailableError, match="Check the password"):
        RedisOnlineStore(f"redis://127.0.0.1:{server.port}/0")
    ok = RedisOnlineStore(server.url)
    assert ok.count(view()) == 0 and "hunter2xyz" not in repr(ok) + str(ok.describe())
    ok.close()


def test_db_number_out_of_range(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/99"
    with pytest.raises(OnlineStoreUnavailableError, match="db number below the server's 'databases'"):
        RedisOnlineStore(url)


def test_server_killed_mid_run_then_back(start_redis):
    server = start_redis()
    online = RedisOnlineStore(server.url, namespace="kill")
    fv = view(created=None)
    assert online.write_rows(fv, INT, [(1, 10, NO_CREATED, 1.0, 1)]) == 1
    server.stop()
    with pytest.raises(OnlineStoreUnavailableError, match="during read of 'user_stats'"):
        online.read_rows(fv, ["amount"], [(1,), (2,)])
    with pytest.raises(OnlineStoreUnavailableError, match="during write"):
        online.write_rows(fv, INT, [(2, 10, NO_CREATED, 2.0, 2)])
    with pytest.raises(OnlineStoreUnavailableError, match="during count"):
        online.count(fv)
    server.start(port=server.port)  # a fresh, empty server on the same port: the client reconnects
    assert online.read_rows(fv, ["amount"], [(1,)]) == ([None], {"amount": [None]})
    assert online.write_rows(fv, INT, [(2, 10, NO_CREATED, 2.0, 2)]) == 1
    online.close()


@pytest.mark.parametrize("how", ["inject", "kill"])
def test_interrupted_materialization_keeps_watermark_and_rerun_completes(start_redis, tmp_path,
                                                                         monkeypatch, how):
    import redis

    from mlops_kit.features.online import redis as redis_module

    server = start_redis()
    store = FeatureStore(tmp_path / "ws", online_store=server.url, clock=lambda: at(10))
    store.apply([view(ttl=timedelta(days=1))])
    n = 3_500
    store.ingest("user_stats", rows([(i, at(0), at(0), float(i), i) for i in range(n)]))
    monkeypatch.setattr(redis_module, "_PIPE", 1)  # one script call (1,000 rows) per round trip
    original = redis_module.RedisOnlineStore._flush
    calls = []

    def failing_flush(self, pipe):
        calls.append(1)
        if len(calls) == 2:
            if how == "kill":
                server.stop()
            else:
                pipe.reset()
                raise redis.ConnectionError("injected: connection reset by peer")
        return original(self, pipe)

    monkeypatch.setattr(redis_module.RedisOnlineStore, "_flush", failing_flush)
    with pytest.raises(OnlineStoreUnavailableError, match="during write of 'user_stats' v1"):
        store.materialize_incremental(at(1))
    assert store.watermark("user_stats") is None
    if how == "kill":
        server.start(port=server.port)  # the data died with the server
    else:
        assert store.online.count(view()) == 1_000  # the first batch landed, the rest did not
    report = store.materialize_incremental(at(1)).views["user_stats"]
    assert report.rows_written == n and store.watermark("user_stats") == at(1)
    assert store.online.count(view()) == n
    got = store.get_online_features(["user_stats:amount"], [{"user_id": i} for i in range(n)], at=at(1))
    assert got["amount"] == [float(i) for i in range(n)]
    store.close()
