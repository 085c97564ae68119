"""Process bodies for the concurrency suite (run in forked children; each opens its own store).

Every worker reports through a queue as ``(name, kind, payload)``: ``ok`` with what it did,
``retry`` for each ``ConcurrentWriteError`` it retried, ``error`` with the repr of anything
else. A worker never lets an exception escape, so the parent sees every failure by name.
"""

from __future__ import annotations

import os
import signal
import traceback
from datetime import timedelta

import pandas as pd

from mlops_kit._time import FixedClock
from mlops_kit.errors import ConcurrentWriteError, DefinitionConflictError
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field

from .helpers import T0, at

USER = Entity(name="user", join_keys=["user_id"])
NOW = FixedClock(T0 + timedelta(days=30))
BATCH = 5


def plain_view(name: str, version: int = 1, *, ttl: timedelta = timedelta(days=3)) -> FeatureView:
    return FeatureView(name=name, entities=[USER], ttl=ttl, created_timestamp_column="created",
                       version=version, schema=[Field(name="amount", dtype="float64"),
                                                Field(name="count", dtype="int64")])


def batch(writer: int, round_: int, *, rows: int = BATCH, day: int = 0) -> pd.DataFrame:
    """Rows unique to (writer, round): keys and event times never collide across writers."""
    keys = [writer * 1000 + round_ * rows + i for i in range(rows)]
    ts = [at(hours=24 * day + round_ + i / 10) for i in range(rows)]
    return pd.DataFrame({
        "user_id": pd.Series(keys, dtype="int64"),
        "event_timestamp": pd.Series(ts, dtype="datetime64[us, UTC]"),
        "created": pd.Series([t + timedelta(minutes=5) for t in ts], dtype="datetime64[us, UTC]"),
        "amount": pd.Series([float(k) / 7 for k in keys], dtype="float64"),
        "count": pd.Series([k % 11 for k in keys], dtype="Int64"),
    })


class Once:
    """A barrier that a worker waits on for its first round only (then it runs free)."""

    def __init__(self, barrier) -> None:
        self.barrier, self.done = barrier, False

    def wait(self, timeout: float) -> None:
        if not self.done:
            self.done = True
            self.barrier.wait(timeout=timeout)


def _retrying(out, name: str, call, attempts: int = 5):
    for attempt in range(attempts):
        try:
            return call()
        except ConcurrentWriteError as exc:
            out.put((name, "retry", str(exc)))
            if attempt == attempts - 1:
                raise


def _guard(out, name: str, body) -> None:
    try:
        out.put((name, "ok", body()))
    except BaseException as exc:  # the parent asserts on these
        out.put((name, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def ingest_rounds(root: str, writer: int, rounds: int, views: list[str], barrier, out) -> None:
    """``rounds`` ingests, view chosen round-robin from ``views``, all writers in lock step."""
    def body():
        store = FeatureStore(root, clock=NOW)
        done = []
        for r in range(rounds):
            view = views[r % len(views)]
            if barrier is not None:
                barrier.wait(timeout=60)
            frame = batch(writer, r)
            _retrying(out, f"w{writer}", lambda: store.ingest(view, frame))
            done.append((view, r))
        store.close()
        return done
    _guard(out, f"w{writer}", body)


def killed_writer(root: str, view: str, barrier, out) -> None:
    """Ingest, and die by SIGKILL after every rename and before the commit."""
    store = FeatureStore(root, clock=NOW)
    if barrier is not None:
        barrier.wait(timeout=60)

    def die(i: int) -> None:
        if i == 2:  # batch(..., day) below spans 2 partitions: i == 2 is "all renamed"
            os.kill(os.getpid(), signal.SIGKILL)

    frame = pd.concat([batch(9, 0), batch(9, 1, day=1)], ignore_index=True)
    store.ingest(view, frame, _before_publish=die)
    out.put(("killed", "error", "the writer was not killed"))


def reader(root: str, features: list[str], stop, out) -> None:
    """Read offline and point in time until ``stop`` is set; every read must be whole."""
    def body():
        store = FeatureStore(root, clock=NOW)
        reads, seen = 0, []
        entity = pd.DataFrame({"user_id": pd.Series([0, 1, 1000, 2001], dtype="int64"),
                               "event_timestamp": pd.Series([at(48)] * 4, dtype="datetime64[us, UTC]")})
        while not stop.is_set() or reads < 3:
            for view in sorted({f.split(":")[0] for f in features}):
                n = len(store.read_offline(view))
                if n % BATCH:
                    raise AssertionError(f"half an ingest visible in {view}: {n} rows")
                seen.append(n)
            got = store.get_historical_features(entity, features=features)
            if len(got) != 4:
                raise AssertionError(f"the join returned {len(got)} rows")
            reads += 1
        store.close()
        return reads
    _guard(out, "reader", body)


def materializer(root: str, name: str, incremental: bool, end, barrier, out) -> None:
    def body():
        store = FeatureStore(root, clock=NOW)
        barrier.wait(timeout=60)
        if incremental:
            report = _retrying(out, name, lambda: store.materialize_incremental(end))
        else:
            report = _retrying(out, name, lambda: store.materialize(T0, end))
        store.close()
        return report.rows_written
    _guard(out, name, body)


def applier(root: str, name: str, ttl_hours: int, rounds: int, barrier, out) -> None:
    """Apply view ``race_<r>`` with this worker's TTL in each round; report who won."""
    def body():
        store = FeatureStore(root, clock=NOW)
        results = []
        for r in range(rounds):
            barrier.wait(timeout=60)
            try:
                store.apply([USER, plain_view(f"race_{r}", ttl=timedelta(hours=ttl_hours))])
                results.append("applied")
            except DefinitionConflictError:
                results.append("conflict")
        store.close()
        return results
    _guard(out, name, body)


def backfiller(root: str, view: str, start, end, out) -> None:
    def body():
        store = FeatureStore(root, clock=NOW)

        def compute(lo, hi):
            frame = store.read_offline(view, lo, hi, version=store.live_version(view))
            frame["amount"] = frame["amount"] * 2
            return frame

        rec = _retrying(out, "backfill", lambda: store.backfill(view, start, end, compute=compute,
                                                                 sleep=lambda s: None))
        store.close()
        return rec.backfill_id
    _guard(out, "backfill", body)


def governor(root: str, worker: int, n: int, barrier, out) -> None:
    """Grant ``n`` principals the restricted view and make one audited read as each."""
    def body():
        store = FeatureStore(root, clock=NOW)
        gov = store.governance
        entity = pd.DataFrame({"user_id": pd.Series([0], dtype="int64"),
                               "event_timestamp": pd.Series([at(48)], dtype="datetime64[us, UTC]")})
        barrier.wait(timeout=60)
        for i in range(n):
            who = f"p{worker}_{i}"
            _retrying(out, f"g{worker}", lambda: gov.add_principal(who, actor="sec", reason="drill"))
            _retrying(out, f"g{worker}", lambda: gov.grant("secret", principal=who, actor="sec",
                                                            reason=f"T-{worker}-{i}"))
            _retrying(out, f"g{worker}", lambda: store.get_historical_features(
                entity, features=["secret:amount"], principal=who, purpose="drill"))
        store.close()
        return n
    _guard(out, f"g{worker}", body)


def backfill_and_promote(root: str, name: str, view: str, start, end, barrier, out) -> None:
    """Backfill the window (validation tolerates nothing), then race the promotion."""
    from mlops_kit.errors import ConflictError

    def body():
        store = FeatureStore(root, clock=NOW)

        def compute(lo, hi):
            return store.read_offline(view, lo, hi, version=store.live_version(view))

        barrier.wait(timeout=60)
        rec = _retrying(out, name, lambda: store.backfill(view, start, end, compute=compute, sleep=lambda s: None))
        barrier.wait(timeout=60)
        try:
            store.promote_backfill(rec.backfill_id)
            outcome = "promoted"
        except ConflictError:
            outcome = "conflict"
        store.close()
        return (rec.backfill_id, rec.shadow_version, outcome)
    _guard(out, name, body)
