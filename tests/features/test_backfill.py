"""Backfills: shadow isolation, idempotent partitions, retries, promotion, rollback, lineage."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit._io import sha256_file
from mlops_kit.errors import BackfillError, ConflictError, IllegalTransitionError, QualityGateError
from mlops_kit.features import BackfillRecord, FeatureStore

from .backfill_helpers import DAY, canon, day_rows, live_store, no_sleep
from .helpers import T0, entities

START, END = T0 + DAY, T0 + 3 * DAY


def bumped(lo, hi):
    return day_rows(lo, hi, bump=0.5)


def test_shadow_is_invisible_until_promoted_then_rollback_restores(tmp_path):
    store = live_store(tmp_path)
    rec = store.backfill("user_stats", START, END, compute=bumped, sleep=no_sleep())
    assert (rec.base_version, rec.shadow_version, rec.outcome) == (1, 2, "validation_failed")
    old = canon(day_rows(T0, T0 + 5 * DAY))
    pd.testing.assert_frame_equal(canon(store.read_offline("user_stats")), old)
    # hand-built expectation for the shadow: old rows outside the window, bumped rows inside
    new = canon(pd.concat([day_rows(T0, START), day_rows(START, END, bump=0.5), day_rows(END, T0 + 5 * DAY)]))
    pd.testing.assert_frame_equal(canon(store.read_offline("user_stats", version=2)), new)
    probe = entities([(2, START + pd.Timedelta(hours=7))])
    assert store.get_historical_features(probe, ["user_stats:amount"])["amount"].tolist() == [26.0]
    with pytest.raises(QualityGateError, match="did not pass validation"):
        store.promote_backfill(rec.backfill_id)
    assert store.live_version("user_stats") == 1
    done = store.promote_backfill(rec.backfill_id, force_reason="bug fix: amounts were 0.5 low")
    assert done.outcome == "promoted" and done.forced_reason.startswith("bug fix")
    assert store.live_version("user_stats") == 2
    pd.testing.assert_frame_equal(canon(store.read_offline("user_stats")), new)
    assert store.get_historical_features(probe, ["user_stats:amount"])["amount"].tolist() == [26.5]
    other = FeatureStore(store.workspace)  # another reader opened later sees the same live version
    assert other.get_historical_features(probe, ["user_stats:amount"])["amount"].tolist() == [26.5]
    assert store.rollback_promotion("user_stats", reason="regression") == 1
    pd.testing.assert_frame_equal(canon(store.read_offline("user_stats")), old)
    assert store.get_backfill(rec.backfill_id).outcome == "rolled_back"
    assert [h["action"] for h in store.live_history("user_stats")] == ["promote", "rollback"]
    with pytest.raises(IllegalTransitionError, match="no promotion to roll back"):
        store.rollback_promotion("user_stats")


def test_rerun_writes_identical_bytes_and_never_double_counts(tmp_path):
    store = live_store(tmp_path)
    calls = {"n": 0, "broken": True}

    def compute(lo, hi):
        calls["n"] += 1
        if calls["broken"] and lo >= START + DAY:
            raise RuntimeError("upstream table missing")
        return day_rows(lo, hi, seed=calls["n"])  # shuffled differently on every call

    with pytest.raises(BackfillError, match="failed 2 attempt"):
        store.backfill("user_stats", START, END, compute=compute, max_attempts=2, sleep=no_sleep())
    rec = store.list_backfills("user_stats")[0]
    assert rec.outcome == "failed" and rec.partitions[0].status == "done"
    first_sha, first_rows = rec.partitions[0].sha256, len(store.read_offline("user_stats", version=2))
    path = store.workspace.offline_dir / rec.partitions[0].path
    assert sha256_file(path) == first_sha
    calls["broken"] = False
    again = store.backfill("user_stats", START, END, compute=compute, resume=rec.backfill_id, sleep=no_sleep())
    assert again.backfill_id == rec.backfill_id and again.outcome == "validated"
    assert again.partitions[0].sha256 == first_sha == sha256_file(path)
    shadow = store.read_offline("user_stats", version=2)
    assert first_rows == 3 * 4 * 4 and len(shadow) == 5 * 4 * 3  # one copy of every row
    pd.testing.assert_frame_equal(canon(shadow), canon(day_rows(T0, T0 + 5 * DAY)))
    # a separate backfill of the same window writes the same bytes (in its own version)
    other = store.backfill("user_stats", START, END, compute=compute, sleep=no_sleep())
    assert [p.sha256 for p in other.partitions] == [p.sha256 for p in again.partitions]
    assert other.shadow_version == 3


def test_transient_failure_is_retried_with_exponential_backoff(tmp_path):
    store = live_store(tmp_path)
    slept: list[float] = []
    seen: dict = {}

    def flaky(lo, hi):  # the test hook: partition 1 fails on its first two attempts
        seen[lo] = seen.get(lo, 0) + 1
        if lo == START + DAY and seen[lo] <= 2:
            raise TimeoutError("warehouse timeout")
        return day_rows(lo, hi)

    rec = store.backfill("user_stats", START, END, compute=flaky, backoff=0.5, max_attempts=3,
                         sleep=no_sleep(slept))
    assert rec.outcome == "validated" and slept == [0.5, 1.0]
    assert rec.attempts == {"2024-01-02": 1, "2024-01-03": 3}
    assert rec.partitions[1].errors[0].startswith("attempt 1: TimeoutError")
    injected = store.backfill("user_stats", START, END, compute=day_rows, inject_failures={0: 1},
                              backoff=2.0, sleep=no_sleep(slept))
    assert injected.attempts == {"2024-01-02": 2, "2024-01-03": 1} and slept[-1] == 2.0
    assert [e["event"] for e in injected.events] == ["started", "retry", "validated"]


def test_permanent_failure_stops_and_leaves_live_untouched(tmp_path):
    store = live_store(tmp_path)
    before = canon(store.read_offline("user_stats"))
    files = store.offline_files("user_stats")

    def broken(lo, hi):
        if lo > START:
            raise ValueError("corrupt input")
        return day_rows(lo, hi)

    with pytest.raises(BackfillError) as err:
        store.backfill("user_stats", START, END, compute=broken, max_attempts=3, sleep=no_sleep())
    assert "partition 2024-01-03 failed 3 attempt(s)" in str(err.value)
    assert "live version is untouched" in str(err.value)
    rec = store.list_backfills()[0]
    assert rec.outcome == "failed" and rec.attempts["2024-01-03"] == 3 and "corrupt input" in rec.error
    assert store.live_version("user_stats") == 1 and store.offline_files("user_stats") == files
    pd.testing.assert_frame_equal(canon(store.read_offline("user_stats")), before)
    with pytest.raises(IllegalTransitionError):
        store.promote_backfill(rec.backfill_id)


def test_promotion_with_passing_validation_and_online_warmup(tmp_path):
    store = live_store(tmp_path)
    store.materialize(T0, T0 + 5 * DAY)
    at = T0 + 5 * DAY
    before = store.get_online_features(["user_stats:amount"], [{"user_id": 2}], at=at)
    assert before["amount"] == [38.0]
    rec = store.backfill("user_stats", T0 + 4 * DAY, T0 + 5 * DAY, compute=bumped, sleep=no_sleep(),
                         thresholds=None)
    assert rec.outcome == "validation_failed"
    from mlops_kit.features import BackfillThresholds

    loose = BackfillThresholds(max_changed_share=1.0, atol=0.0, feature_atol={"amount": 0.5})
    assert store.validate_backfill(rec.backfill_id, thresholds=loose).outcome == "validated"
    promoted = store.promote_backfill(rec.backfill_id)
    assert promoted.outcome == "promoted" and promoted.forced_reason is None
    assert store.get_online_features(["user_stats:amount"], [{"user_id": 2}], at=at)["amount"] == [38.5]
    assert store.watermark("user_stats") == T0 + 5 * DAY
    store.rollback_promotion("user_stats")
    assert store.get_online_features(["user_stats:amount"], [{"user_id": 2}], at=at)["amount"] == [38.0]


def test_ingest_follows_the_live_version_and_rollback_carries_it_back(tmp_path):
    store = live_store(tmp_path, days=3)
    rec = store.backfill("user_stats", START, END, compute=day_rows, sleep=no_sleep(), promote=True)
    assert rec.outcome == "promoted"
    store.ingest("user_stats", day_rows(T0 + 3 * DAY, T0 + 4 * DAY))  # goes to v2, the live version
    assert len(store.read_offline("user_stats", version=2)) == 4 * 12
    assert len(store.read_offline("user_stats", version=1)) == 3 * 12
    store.rollback_promotion("user_stats")
    pd.testing.assert_frame_equal(canon(store.read_offline("user_stats")), canon(day_rows(T0, T0 + 4 * DAY)))


def test_promotion_refused_when_live_changed_in_the_window(tmp_path):
    store = live_store(tmp_path)
    rec = store.backfill("user_stats", START, END, compute=day_rows, sleep=no_sleep())
    late = day_rows(START, START + DAY).iloc[:1].copy()
    late["event_timestamp"] += pd.Timedelta(minutes=1)
    store.ingest("user_stats", late)
    with pytest.raises(ConflictError, match="changed while promoting"):
        store.promote_backfill(rec.backfill_id)
    assert store.live_version("user_stats") == 1


def test_lineage_record_is_persisted_and_round_trips(tmp_path):
    store = live_store(tmp_path)
    rec = store.backfill("user_stats", START, END, compute=day_rows, sleep=no_sleep(),
                         inputs={"transactions": "sha256:abc"}, parameters={"window": "7d"})
    assert store.get_backfill(rec.backfill_id) == rec
    assert BackfillRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    data = rec.to_dict()
    assert data["inputs"] == {"transactions": "sha256:abc"} and data["parameters"]["window"] == "7d"
    assert data["parameters"]["settings"]["max_attempts"] == 3
    assert [p["date"] for p in data["partitions"]] == ["2024-01-02", "2024-01-03"]
    assert all(p["rows"] == 12 and p["attempts"] == 1 for p in data["partitions"])
    assert rec.code_name.endswith("day_rows") and rec.code_fingerprint.startswith("sha256:")
    other = store.backfill("user_stats", START, END, compute=bumped, sleep=no_sleep())
    assert other.code_fingerprint != rec.code_fingerprint
    assert rec.report.to_dict()["passed"] is True
    reopened = FeatureStore(store.workspace)
    assert [r.backfill_id for r in reopened.list_backfills("user_stats")] == ["bf-000001", "bf-000002"]


def test_an_empty_partition_removes_that_day_from_the_shadow(tmp_path):
    store = live_store(tmp_path)

    def gap(lo, hi):
        frame = day_rows(lo, hi)
        return frame.iloc[0:0] if lo == START else frame

    rec = store.backfill("user_stats", START, END, compute=gap, sleep=no_sleep())
    assert [(p.rows, p.path) for p in rec.partitions][0] == (0, None)
    assert rec.partitions[1].rows == 12
    shadow = canon(store.read_offline("user_stats", version=rec.shadow_version))
    expected = canon(pd.concat([day_rows(T0, START), day_rows(START + DAY, T0 + 5 * DAY)]))
    pd.testing.assert_frame_equal(shadow, expected)
    check = next(c for c in rec.report.checks if c.check == "row_count")
    assert check.detail == {"live_rows": 24, "shadow_rows": 12} and check.passed is False


def test_concurrent_readers_see_all_old_or_all_new(tmp_path):
    import threading

    store = live_store(tmp_path)
    rec = store.backfill("user_stats", START, END, compute=bumped, sleep=no_sleep())
    probe = entities([(u, START + pd.Timedelta(hours=h)) for u in (1, 2, 3) for h in (2, 14, 26, 38)])
    old = [10.0 * u + (h % 24 // 6) * 6 for u in (1, 2, 3) for h in (2, 14, 26, 38)]
    new = [v + 0.5 for v in old]
    reader = FeatureStore(store.workspace)            # its own connections, like another process
    seen, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(reader.get_historical_features(probe, ["user_stats:amount"])["amount"].tolist())

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(3):
            store.promote_backfill(rec.backfill_id, force_reason="drill")
            store.rollback_promotion("user_stats")
    finally:
        stop.set()
        thread.join()
    assert seen and all(s == old or s == new for s in seen)


@settings(max_examples=25)
@given(order=st.permutations(list(range(24))))
def test_any_row_order_of_the_same_rows_gives_identical_bytes(tmp_path_factory, order):
    from mlops_kit.features.backfill_write import check_output, write_partition

    from .helpers import view

    tmp = tmp_path_factory.mktemp("bytes")
    rows = day_rows(START, END)
    fv = view(ttl=None)
    digests = set()
    for frame in (rows, rows.iloc[order].reset_index(drop=True)):
        table, _ = check_output(fv, frame, START, END, {})
        digests.add(write_partition(table, tmp / f"{len(digests)}.parquet", tmp))
    assert len(digests) == 1
