"""check_read answers from an exact in-memory cache and buffers usage counts.

Every state read back here comes from an independent ``sqlite3`` connection to
``features.sqlite`` (or from a second Governance object), never from the object under test.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import types
import warnings
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit._time import FixedClock
from mlops_kit.errors import AccessDeniedError, DeprecatedFeatureWarning, ValidationError
from mlops_kit.governance import Governance

UTC = timezone.utc
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def view(name, sensitivity="internal", version=1):
    return types.SimpleNamespace(name=name, version=version, sensitivity=sensitivity)


STATS, PII, REGION = view("user_txn_7d"), view("card_pii", "restricted"), view("user_home_region", "sensitive")


def read(gov, views, principal=None, channel="online", purpose="scoring"):
    gov.check_read(views, principal=principal, purpose=purpose, channel=channel)


def raw(workspace, sql, args=()):
    """Query features.sqlite through a fresh, independent connection."""
    con = sqlite3.connect(workspace.features_db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def raw_reads(workspace, name, channel="online"):
    rows = raw(workspace, "SELECT reads FROM gov_usage WHERE name = ? AND channel = ?", (name, channel))
    return rows[0][0] if rows else 0


@pytest.fixture
def clock():
    return FixedClock(T0)


def test_data_version_moves_only_on_commits_of_other_connections(tmp_path):
    path = str(tmp_path / "x.sqlite")
    a = sqlite3.connect(path, isolation_level=None)
    b = sqlite3.connect(path, isolation_level=None)
    a.execute("PRAGMA journal_mode = WAL")
    a.execute("CREATE TABLE t (x INTEGER)")

    def version(con):
        return con.execute("PRAGMA data_version").fetchone()[0]

    a0, b0 = version(a), version(b)
    assert version(a) == a0                                            # nothing committed
    a.execute("INSERT INTO t VALUES (1)")
    assert version(a) == a0 and version(b) != b0                      # own commit: unchanged for a
    b1 = version(b)
    b.execute("BEGIN IMMEDIATE")
    b.execute("INSERT INTO t VALUES (2)")
    assert version(a) == a0                                           # not committed yet
    b.execute("COMMIT")
    assert version(a) != a0 and version(b) == b1
    a.close()
    b.close()


def test_revoke_by_another_object_denies_the_next_read(workspace, clock):
    admin, server = Governance(workspace, clock=clock), Governance(workspace, clock=clock)
    admin.add_principal("alice", roles=["fraud"], actor="sec", reason="team")
    admin.grant("card_pii", principal="alice", actor="sec", reason="SEC-1")
    read(server, [PII], principal="alice")                           # allowed, decision cached
    read(server, [PII], principal="alice")
    admin.revoke("card_pii", principal="alice", actor="sec", reason="left")
    with pytest.raises(AccessDeniedError, match="no grant"):
        read(server, [PII], principal="alice")
    admin.grant("card_pii", role="fraud", actor="sec", reason="SEC-2")
    read(server, [PII], principal="alice")                           # granted again through the role
    admin.add_principal("alice", roles=[], actor="sec", reason="moved team")
    with pytest.raises(AccessDeniedError):
        read(server, [PII], principal="alice")
    outcomes = [r[0] for r in raw(workspace, "SELECT outcome FROM gov_read_log WHERE view = 'card_pii' ORDER BY seq")]
    assert outcomes == ["allowed", "allowed", "denied", "allowed", "denied"]


def test_transitions_by_another_object_are_seen_by_the_next_read(workspace, clock):
    admin, server = Governance(workspace, clock=clock), Governance(workspace, clock=clock)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read(server, [STATS])                                        # registers it, state cached
    admin.deprecate("user_txn_7d", replacement="user_txn_7d:v2", end_of_life=T0 + timedelta(days=1),
                    actor="alice", reason="v2")
    with pytest.warns(DeprecatedFeatureWarning, match="user_txn_7d:v2"):
        read(server, [STATS])
    admin.reactivate("user_txn_7d", actor="alice", reason="rollback")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read(server, [STATS])
    admin.deprecate("user_txn_7d", replacement="user_txn_7d:v2", end_of_life=T0 + timedelta(days=1),
                    actor="alice", reason="v2")
    clock.advance(timedelta(days=2))
    admin.retire("user_txn_7d", actor="alice", reason="eol")
    with pytest.raises(AccessDeniedError, match="retired"):
        read(server, [STATS])


def test_own_writes_invalidate_and_raw_commits_elsewhere_are_seen(workspace, clock):
    gov = Governance(workspace, clock=clock)
    gov.add_principal("bob", actor="sec", reason="x")
    gov.grant("card_pii", principal="bob", actor="sec", reason="y")
    read(gov, [PII], principal="bob")
    gov.revoke("card_pii", principal="bob", actor="sec", reason="z")   # same object, same connection
    with pytest.raises(AccessDeniedError):
        read(gov, [PII], principal="bob")
    con = sqlite3.connect(workspace.features_db)                     # a plain writer elsewhere
    con.execute("INSERT INTO gov_grants VALUES ('card_pii', 'principal', 'bob', 'sec', 'now', 'manual')")
    con.commit()
    read(gov, [PII], principal="bob")
    con.execute("UPDATE gov_views SET state = 'retired' WHERE name = 'card_pii'")
    con.commit()
    con.close()
    with pytest.raises(AccessDeniedError, match="retired"):
        read(gov, [PII], principal="bob")


def test_a_cached_read_runs_one_pragma_and_nothing_else(workspace, clock):
    gov = Governance(workspace, clock=clock)
    gov.add_principal("alice", actor="sec", reason="x")
    gov.grant("card_pii", principal="alice", actor="sec", reason="y")
    read(gov, [STATS, PII], principal="alice", channel="offline")    # warm the cache
    statements: list[str] = []
    gov.con.set_trace_callback(statements.append)
    read(gov, [STATS], channel="online")
    assert statements == ["PRAGMA data_version"]
    statements.clear()
    read(gov, [STATS, PII], principal="alice")                       # restricted: one logging transaction
    assert statements[0] == "PRAGMA data_version"
    assert not any(s.startswith("SELECT") for s in statements)
    assert sum(s.startswith("INSERT INTO gov_read_log") for s in statements) == 1
    gov.con.set_trace_callback(None)


def test_usage_is_flushed_every_n_reads_and_on_demand(workspace, clock):
    gov = Governance(workspace, clock=clock, usage_flush_every=5)
    other = Governance(workspace, clock=clock)
    for i in range(4):
        read(gov, [STATS])
    assert raw_reads(workspace, "user_txn_7d") == 0                  # buffered
    clock.advance(timedelta(minutes=1))
    read(gov, [STATS])
    assert raw_reads(workspace, "user_txn_7d") == 5                  # 5th read flushes
    assert raw(workspace, "SELECT last_read_at FROM gov_usage")[0][0] == (T0 + timedelta(minutes=1)).isoformat()
    read(gov, [STATS])
    read(gov, [STATS], channel="offline")
    assert other.usage("user_txn_7d") == {"online_reads": 5, "offline_reads": 0}
    gov.flush()
    assert other.usage("user_txn_7d") == {"online_reads": 6, "offline_reads": 1}
    gov.flush()                                                       # nothing buffered: no change
    assert raw_reads(workspace, "user_txn_7d") == 6
    read(gov, [STATS])
    assert gov.usage("user_txn_7d")["online_reads"] == 7              # usage() flushes first
    read(gov, [STATS])
    gov.blast_radius("user_txn_7d")
    assert raw_reads(workspace, "user_txn_7d") == 8
    read(gov, [STATS])
    assert gov.entry("user_txn_7d").online_reads == 9
    read(gov, [STATS])
    gov.close()
    assert raw_reads(workspace, "user_txn_7d") == 10
    read(gov, [STATS])                                                # reopens after close
    assert gov.usage("user_txn_7d")["online_reads"] == 11


def test_sensitive_reads_are_durable_before_returning_and_carry_buffered_counts(workspace, clock):
    gov = Governance(workspace, clock=clock)
    read(gov, [STATS])
    read(gov, [STATS])
    assert raw_reads(workspace, "user_txn_7d") == 0
    read(gov, [REGION], purpose="audit")
    assert raw(workspace, "SELECT view, purpose, outcome FROM gov_read_log") == [("user_home_region", "audit", "allowed")]
    assert raw_reads(workspace, "user_home_region") == 1 and raw_reads(workspace, "user_txn_7d") == 2
    with pytest.raises(AccessDeniedError):
        read(gov, [STATS, PII])                                       # denied: logged, not counted
    assert raw(workspace, "SELECT view, outcome FROM gov_read_log ORDER BY seq")[-1] == ("card_pii", "denied")
    gov.flush()
    assert raw_reads(workspace, "user_txn_7d") == 2 and raw_reads(workspace, "card_pii") == 0


def test_a_failed_log_write_refuses_the_read_and_counts_nothing(workspace, clock, monkeypatch):
    gov = Governance(workspace, clock=clock)
    read(gov, [STATS])

    def broken(con, **kw):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(gov, "_write_usage", broken)
    with pytest.raises(sqlite3.OperationalError):
        read(gov, [REGION])
    monkeypatch.undo()
    assert raw(workspace, "SELECT count(*) FROM gov_read_log") == [(0,)]   # rolled back
    gov.flush()
    assert raw_reads(workspace, "user_txn_7d") == 1 and raw_reads(workspace, "user_home_region") == 0


def test_usage_flush_every_is_validated(workspace):
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValidationError, match="usage_flush_every"):
            Governance(workspace, usage_flush_every=bad)


@settings(max_examples=25)
@given(ops=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["online", "offline"]),
                              st.booleans()), min_size=1, max_size=40),
       every=st.integers(1, 7))
def test_buffered_counts_match_a_plain_count(ops, every):
    from mlops_kit import Workspace

    workspace = Workspace(tempfile.mkdtemp(prefix="gov-usage-"))
    gov = Governance(workspace, clock=FixedClock(T0), usage_flush_every=every)
    views = {"a": view("a"), "b": view("b", "sensitive"), "c": view("c", "restricted")}
    expected: Counter = Counter()
    for name, channel, as_pair in ops:
        batch = [views[name], views["a"]] if as_pair else [views[name]]
        try:
            read(gov, batch, channel=channel)
        except AccessDeniedError:
            assert name == "c"
            continue
        for v in {x.name for x in batch}:
            expected[(v, channel)] += 1
    gov.close()
    got = Counter({(n, c): r for n, c, r in raw(workspace, "SELECT name, channel, reads FROM gov_usage")})
    shutil.rmtree(workspace.root, ignore_errors=True)
    assert got == expected
