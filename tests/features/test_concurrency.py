"""Several processes writing one workspace at once lose nothing and corrupt nothing.

Each test forks real processes that open their own ``FeatureStore`` on one workspace and
start together through a barrier. The reference is a serial run: the same frames ingested
one after the other into a fresh workspace, read the same way.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from mlops_kit.features import FeatureStore, FeatureView, Field

from _procs import CTX, no_errors, run

from . import concurrency_workers as W
from .helpers import T0, at


def serial_store(tmp_path, name: str, views: list[FeatureView], frames: list[tuple[str, pd.DataFrame]]):
    store = FeatureStore(tmp_path / name, clock=W.NOW)
    store.apply([W.USER, *views])
    for view, frame in frames:
        store.ingest(view, frame)
    return store


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["user_id", "event_timestamp"]).reset_index(drop=True)


def entity_frame(keys: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": pd.Series(keys, dtype="int64"),
                         "event_timestamp": pd.Series([at(3 + k % 40) for k in keys], dtype="datetime64[us, UTC]")})


def test_two_writers_ten_rounds_lose_nothing(tmp_path):
    """The reported repro: two processes, each one ingest of 5 rows per round, 10 rounds."""
    root = tmp_path / "ws"
    store = FeatureStore(root, clock=W.NOW)
    store.apply([W.USER, W.plain_view("u")])
    store.close()
    barrier = CTX.Barrier(2)
    reports, codes = run([(W.ingest_rounds, (str(root), w, 10, ["u"], barrier)) for w in range(2)])
    no_errors(reports)
    assert codes == [0, 0]
    store = FeatureStore(root, clock=W.NOW)
    got = sorted_rows(store.read_offline("u"))
    expected = sorted_rows(pd.concat([W.batch(w, r) for w in range(2) for r in range(10)], ignore_index=True))
    assert len(got) == 100
    pd.testing.assert_frame_equal(got[expected.columns.tolist()], expected, check_dtype=False)
    ids = store.meta._query("SELECT DISTINCT ingest_id FROM offline_files")
    assert len(ids) == 20  # every ingest got its own id
    report = store.verify()
    assert report.ok and report.files_checked == 20 and report.files_unverified == 0, report.text()


def test_four_writers_two_views_with_a_reader_and_a_backfill(tmp_path):
    root = tmp_path / "ws"
    store = FeatureStore(root, clock=W.NOW)
    store.apply([W.USER, W.plain_view("a"), W.plain_view("b")])
    seed = W.batch(7, 0, day=20)  # live rows of "b" inside the backfill window
    store.ingest("b", seed)
    store.close()
    rounds, barrier, stop = 6, CTX.Barrier(4), CTX.Event()
    plan = {0: ["a"], 1: ["a"], 2: ["a", "b"], 3: ["b", "a"]}
    targets = [(W.ingest_rounds, (str(root), w, rounds, plan[w], barrier)) for w in range(4)]
    targets.append((W.backfiller, (str(root), "b", T0 + timedelta(days=20), T0 + timedelta(days=21))))
    out = CTX.Queue()
    read = CTX.Process(target=W.reader, args=(str(root), ["a:amount", "b:count"], stop, out))
    read.start()
    reports, codes = run(targets)
    stop.set()
    read.join(timeout=120)
    reader_report = out.get(timeout=10)
    assert reader_report[1] == "ok", reader_report[2]
    no_errors(reports)
    assert codes == [0] * 5 and read.exitcode == 0
    frames = [(plan[w][r % len(plan[w])], W.batch(w, r)) for w in range(4) for r in range(rounds)]
    store = FeatureStore(root, clock=W.NOW)
    serial = serial_store(tmp_path, "serial", [W.plain_view("a"), W.plain_view("b")], [("b", seed), *frames])
    for view in ("a", "b"):
        got, want = sorted_rows(store.read_offline(view)), sorted_rows(serial.read_offline(view))
        assert len(got) == len(want) == {"a": 90, "b": 35}[view]
        pd.testing.assert_frame_equal(got, want)
    keys = sorted({k for _, f in frames for k in f["user_id"]})
    features = ["a:amount", "a:count", "b:amount"]
    pd.testing.assert_frame_equal(store.get_historical_features(entity_frame(keys), features, True),
                                  serial.get_historical_features(entity_frame(keys), features, True))
    bf_id = dict(reports["ok"])["backfill"]
    record = store.get_backfill(bf_id)
    assert record.outcome in ("validated", "validation_failed")
    shadow = store.read_offline("b", T0 + timedelta(days=20), T0 + timedelta(days=21), version=record.shadow_version)
    assert sorted(shadow["amount"]) == sorted(seed["amount"] * 2)  # the backfill saw the whole live window
    report = store.verify()
    assert report.ok and report.files_unverified == 0, report.text()


def test_writer_killed_between_rename_and_commit_leaves_others_intact(tmp_path):
    root = tmp_path / "ws"
    store = FeatureStore(root, clock=W.NOW)
    store.apply([W.USER, W.plain_view("u")])
    store.close()
    barrier = CTX.Barrier(2)
    reports, codes = run([(W.killed_writer, (str(root), "u", barrier)),
                          (W.ingest_rounds, (str(root), 0, 5, ["u"], W.Once(barrier))),
                          (W.ingest_rounds, (str(root), 1, 5, ["u"], None))])
    assert codes[0] == -9  # SIGKILL
    no_errors(reports)
    assert codes[1:] == [0, 0]
    store = FeatureStore(root, clock=W.NOW)
    got = sorted_rows(store.read_offline("u"))
    expected = sorted_rows(pd.concat([W.batch(w, r) for w in range(2) for r in range(5)], ignore_index=True))
    pd.testing.assert_frame_equal(got[expected.columns.tolist()], expected, check_dtype=False)
    before = store.verify()
    assert {p.kind for p in before.problems} == {"abandoned_write", "orphan_file"}, before.text()
    orphans = before.of_kind("orphan_file")
    detail = before.of_kind("abandoned_write")[0].detail
    token = detail.split("token ")[1].split(",")[0]
    ingest_id = int(detail.split()[1])
    parts = [p for p in orphans if p.where.startswith("offline/")]
    staging = [p for p in orphans if p.where.startswith("tmp/")]
    assert len(parts) == 2 and all(p.where.split("/")[-1].startswith(f"part-{ingest_id:08d}-")
                                   for p in parts)  # its two partitions
    assert len(staging) == 1 and staging[0].where.startswith(f"tmp/ingest-{token}-")  # and its staging folder
    after = store.repair()
    assert after.ok, after.text()
    for p in orphans:
        assert (root / "quarantine" / "repair-0001" / p.where).exists()  # moved, not deleted
        assert not (root / p.where).exists()
    store.ingest("u", W.batch(9, 0))  # the workspace takes writes again
    assert len(store.read_offline("u")) == 55


def test_two_materializations_of_one_window_end_as_if_serial(tmp_path):
    root = tmp_path / "ws"
    frames = [("u", W.batch(w, r)) for w in range(3) for r in range(4)]
    serial = serial_store(tmp_path, "serial", [W.plain_view("u")], frames)
    store = serial_store(tmp_path, "ws", [W.plain_view("u")], frames)
    store.close()
    end = at(24)
    serial.materialize(T0, end)
    serial.materialize_incremental(end + timedelta(hours=1))
    barrier = CTX.Barrier(2)
    reports, codes = run([(W.materializer, (str(root), "m1", False, end, barrier)),
                          (W.materializer, (str(root), "m2", False, end, barrier))])
    no_errors(reports)
    written = sorted(n for _, n in reports["ok"])
    assert written[1] == 60 and codes == [0, 0]  # the first writes all 60 entities; a rerun is a no-op
    barrier = CTX.Barrier(2)
    reports, codes = run([(W.materializer, (str(root), "i1", True, end + timedelta(hours=1), barrier)),
                          (W.materializer, (str(root), "i2", True, end + timedelta(hours=1), barrier))])
    no_errors(reports)
    store = FeatureStore(root, clock=W.NOW)
    assert store.watermark("u") == serial.watermark("u") == end + timedelta(hours=1)
    rows = [{"user_id": k} for _, f in frames for k in f["user_id"]] + [{"user_id": 424242}]
    for when in (at(6), at(30), at(90)):
        assert store.get_online_features(["u:amount", "u:count"], rows, at=when, include_timestamps=True) == \
            serial.get_online_features(["u:amount", "u:count"], rows, at=when, include_timestamps=True)
    assert store.verify().ok


def test_conflicting_applies_at_once_have_one_winner(tmp_path):
    root = tmp_path / "ws"
    FeatureStore(root).close()
    rounds, barrier = 8, CTX.Barrier(4)
    reports, codes = run([(W.applier, (str(root), f"ap{i}", 24 if i % 2 else 48, rounds, barrier))
                          for i in range(4)])
    no_errors(reports)
    assert codes == [0] * 4
    outcome = dict(reports["ok"])
    store = FeatureStore(root)
    for r in range(rounds):
        stored = store.get_feature_view(f"race_{r}")
        winners = {name for name, results in outcome.items() if results[r] == "applied"}
        losers = set(outcome) - winners
        hours = stored.ttl // timedelta(hours=1)
        # everyone with the stored definition succeeds (idempotent), everyone else is refused
        assert winners == {f"ap{i}" for i in range(4) if (24 if i % 2 else 48) == hours}
        assert len(losers) == 2
    assert len(store.meta._query("SELECT 1 FROM feature_definitions WHERE kind='view'")) == rounds


def test_governance_writes_from_four_processes_lose_nothing(tmp_path):
    root = tmp_path / "ws"
    store = FeatureStore(root, clock=W.NOW)
    secret = FeatureView(name="secret", entities=[W.USER], ttl=timedelta(days=3), sensitivity="restricted",
                         owner="risk", description="restricted amounts",
                         schema=[Field(name="amount", dtype="float64")])
    store.apply([W.USER, secret])
    store.ingest("secret", W.batch(0, 0).drop(columns=["count", "created"]))
    store.close()
    barrier = CTX.Barrier(4)
    reports, codes = run([(W.governor, (str(root), w, 5, barrier)) for w in range(4)])
    no_errors(reports)
    assert codes == [0] * 4
    store = FeatureStore(root, clock=W.NOW)
    gov = store.governance
    assert len(gov.grants("secret")) == 20
    log = gov.read_log("secret")
    assert (log["outcome"] == "allowed").sum() == 20
    assert sorted(set(log["principal"])) == sorted(f"p{w}_{i}" for w in range(4) for i in range(5))
    assert gov.usage("secret")["offline_reads"] == 20


@pytest.mark.parametrize("shape", ["same", "different"])
def test_reservations_never_hand_out_an_id_twice(tmp_path, shape):
    """Ids come from one sequence in the database, whatever the view."""
    root = tmp_path / "ws"
    store = FeatureStore(root, clock=W.NOW)
    store.apply([W.USER, W.plain_view("a"), W.plain_view("b")])
    store.close()
    barrier = CTX.Barrier(4)
    views = {"same": [["a"]] * 4, "different": [["a"], ["b"], ["a"], ["b"]]}[shape]
    reports, codes = run([(W.ingest_rounds, (str(root), w, 4, views[w], barrier)) for w in range(4)])
    no_errors(reports)
    store = FeatureStore(root, clock=W.NOW)
    ids = [r[0] for r in store.meta._query("SELECT DISTINCT ingest_id FROM offline_files ORDER BY 1")]
    assert ids == list(range(1, 17))
    assert store.meta.reservations() == []


def test_two_backfills_of_one_view_get_their_own_shadow_and_one_promotion_wins(tmp_path):
    root = tmp_path / "ws"
    store = FeatureStore(root, clock=W.NOW)
    store.apply([W.USER, W.plain_view("u")])
    for day in range(3):
        store.ingest("u", W.batch(0, day, day=day))
    before = sorted_rows(store.read_offline("u"))
    store.close()
    barrier = CTX.Barrier(2)
    reports, codes = run([(W.backfill_and_promote, (str(root), f"b{i}", "u", T0, T0 + timedelta(days=3), barrier))
                          for i in range(2)])
    no_errors(reports)
    assert codes == [0, 0]
    results = sorted(payload for _, payload in reports["ok"])
    assert len({r[0] for r in results}) == 2 and len({r[1] for r in results}) == 2  # own id, own shadow
    assert sorted(r[2] for r in results) == ["conflict", "promoted"]
    store = FeatureStore(root, clock=W.NOW)
    winner = next(r for r in results if r[2] == "promoted")
    assert store.live_version("u") == winner[1]
    pd.testing.assert_frame_equal(sorted_rows(store.read_offline("u")), before)  # recomputed identically
    assert [e["action"] for e in store.live_history("u")] == ["promote"]
    assert store.verify().ok
