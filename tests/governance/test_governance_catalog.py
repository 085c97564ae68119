"""Catalog, lifecycle and the read hook of Governance."""

from __future__ import annotations

import sqlite3
import types
import warnings
from datetime import datetime, timedelta, timezone

import pytest

from mlops_kit._time import FixedClock
from mlops_kit.errors import (AccessDeniedError, DeprecatedFeatureWarning, IllegalTransitionError,
                              NotFoundError, ValidationError)
from mlops_kit.governance import TRANSITIONS, Governance

UTC = timezone.utc
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def view(name="user_txn_7d", version=1, sensitivity="internal", **kw):
    base = dict(owner="payments-ml", description=f"{name} rolling counts", tags={"domain": "payments"})
    base.update(kw)
    return types.SimpleNamespace(name=name, version=version, sensitivity=sensitivity, **base)


@pytest.fixture
def clock():
    return FixedClock(T0)


@pytest.fixture
def gov(workspace, clock):
    return Governance(workspace, clock=clock)


def read(gov, views, principal=None, channel="offline", purpose="training"):
    gov.check_read(views, principal=principal, purpose=purpose, channel=channel)


def test_reads_register_views_and_count_usage_per_channel(gov):
    v = view()
    read(gov, [v])
    read(gov, [v], channel="online")
    read(gov, [v], channel="online")
    entry = gov.entry("user_txn_7d")
    assert (entry.owner, entry.sensitivity, entry.state, entry.tags) == ("payments-ml", "internal", "active",
                                                                        {"domain": "payments"})
    assert gov.usage(v) == {"online_reads": 2, "offline_reads": 1}


def test_catalog_search_and_consumers(gov):
    gov.register(view("user_txn_7d"))
    gov.register(view("user_txn_7d", version=2))
    gov.register(view("merchant_risk", tags={"domain": "risk", "tier": "gold"}, description="chargeback risk"))
    assert [(e.name, e.version) for e in gov.search("txn")] == [("user_txn_7d", 1), ("user_txn_7d", 2)]
    assert [e.name for e in gov.search("CHARGEBACK")] == ["merchant_risk"]
    assert [e.name for e in gov.search(tag="tier")] == ["merchant_risk"]
    assert [e.name for e in gov.search(tag="domain=payments")] == ["user_txn_7d", "user_txn_7d"]
    assert gov.search(tag="domain=nope") == []
    assert gov.entry("user_txn_7d").version == 2                    # latest by default
    gov.add_consumer("user_txn_7d", "fraud_model", actor="alice", version=1)
    gov.add_consumer("user_txn_7d", "risk_service", actor="alice", kind="feature_service")
    assert gov.entry("user_txn_7d", 1).consumers == ("fraud_model",)
    assert gov.blast_radius("user_txn_7d") == ["fraud_model", "risk_service"]
    gov.remove_consumer("user_txn_7d", "fraud_model", actor="alice", version=1)
    assert gov.blast_radius("user_txn_7d") == ["risk_service"]


def test_transition_table_and_illegal_moves_list_allowed_targets(gov, clock):
    gov.register(view())
    assert dict(TRANSITIONS) == {"active": ("deprecated",), "deprecated": ("active", "retired"), "retired": ()}
    with pytest.raises(IllegalTransitionError) as err:
        gov.retire("user_txn_7d", actor="bob", reason="cleanup")
    assert err.value.details["allowed"] == ["deprecated"] and "deprecated" in str(err.value)
    with pytest.raises(IllegalTransitionError, match="allowed"):
        gov.reactivate("user_txn_7d", actor="bob", reason="oops")
    eol = T0 + timedelta(days=30)
    gov.deprecate("user_txn_7d", replacement="user_txn_7d:v2", end_of_life=eol, actor="bob", reason="window bug")
    clock.advance(timedelta(days=1))
    gov.reactivate("user_txn_7d", actor="carol", reason="replacement delayed")
    gov.deprecate("user_txn_7d", replacement="user_txn_7d:v2", end_of_life=eol, actor="bob", reason="again")
    clock.set(eol)
    gov.retire("user_txn_7d", actor="bob", reason="end of life")
    with pytest.raises(IllegalTransitionError, match="final state"):
        gov.deprecate("user_txn_7d", replacement="x", end_of_life=eol + timedelta(days=1), actor="bob", reason="r")
    history = gov.history("user_txn_7d")
    assert [(h["from_state"], h["to_state"], h["actor"]) for h in history] == [
        ("active", "deprecated", "bob"), ("deprecated", "active", "carol"),
        ("active", "deprecated", "bob"), ("deprecated", "retired", "bob")]
    assert history[0]["at"] == T0.isoformat() and history[1]["at"] == (T0 + timedelta(days=1)).isoformat()
    assert history[1]["reason"] == "replacement delayed" and history[0]["replacement"] == "user_txn_7d:v2"


def test_deprecated_reads_warn_naming_the_replacement_and_retired_reads_are_refused(gov, clock):
    v = view()
    read(gov, [v])
    eol = T0 + timedelta(days=10)
    gov.deprecate(v, replacement="user_txn_7d:v2", end_of_life=eol, actor="bob", reason="window bug")
    with pytest.warns(DeprecatedFeatureWarning, match="user_txn_7d:v2") as record:
        read(gov, [v])
    assert eol.isoformat() in str(record[0].message)
    clock.set(eol)
    gov.retire(v, actor="bob", reason="end of life")
    with pytest.raises(AccessDeniedError, match="retired"):
        read(gov, [v], channel="online")
    assert gov.usage(v) == {"online_reads": 0, "offline_reads": 2}


def test_new_consumers_refused_from_the_stated_date(gov, clock):
    gov.register(view())
    gov.deprecate("user_txn_7d", replacement="user_txn_7d:v2", end_of_life=T0 + timedelta(days=30),
                  consumers_blocked_from=T0 + timedelta(days=7), actor="bob", reason="superseded")
    gov.add_consumer("user_txn_7d", "late_model", actor="alice")     # before the date: accepted
    clock.set(T0 + timedelta(days=7))
    with pytest.raises(IllegalTransitionError, match="user_txn_7d:v2"):
        gov.add_consumer("user_txn_7d", "new_model", actor="alice")
    assert gov.entry("user_txn_7d").consumers == ("late_model",)


def test_retire_waits_for_end_of_life_and_consumers_unless_forced(gov, clock):
    gov.register(view())
    gov.add_consumer("user_txn_7d", "fraud_model", actor="alice")
    gov.deprecate("user_txn_7d", replacement="v2", end_of_life=T0 + timedelta(days=5), actor="bob", reason="r")
    with pytest.raises(IllegalTransitionError) as err:
        gov.retire("user_txn_7d", actor="bob", reason="cleanup")
    assert err.value.details["consumers"] == ["fraud_model"] and "end of life" in str(err.value)
    assert gov.state("user_txn_7d") == "deprecated"
    gov.retire("user_txn_7d", actor="bob", reason="incident", force=True)
    assert gov.state("user_txn_7d") == "retired"
    assert gov.history("user_txn_7d")[-1]["reason"] == "incident [forced]"


def test_bad_input_is_refused_and_nothing_is_written(gov, workspace):
    gov.register(view())

    def snapshot():
        con = sqlite3.connect(workspace.features_db)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name LIKE 'gov_%' ORDER BY name")]
        rows = {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in tables}
        con.close()
        return rows

    before = snapshot()
    cases = [
        lambda: read(gov, [view()], channel="stream"),
        lambda: read(gov, [view()], principal=""),
        lambda: read(gov, [object()]),
        lambda: read(gov, [view(sensitivity="secret")]),
        lambda: read(gov, [view(version=0)]),
        lambda: gov.deprecate("user_txn_7d", replacement="v2", end_of_life=T0, actor="b", reason="r"),
        lambda: gov.deprecate("user_txn_7d", replacement="v2", end_of_life=datetime(2030, 1, 1), actor="b", reason="r"),
        lambda: gov.deprecate("user_txn_7d", replacement="", end_of_life=T0 + timedelta(1), actor="b", reason="r"),
        lambda: gov.deprecate("user_txn_7d", replacement="v2", end_of_life=T0 + timedelta(1), actor="", reason="r"),
        lambda: gov.add_consumer("user_txn_7d", "m", actor="a", kind="robot"),
        lambda: gov.register(view(tags="payments")),
        lambda: gov.search(sensitivity="secret"),
    ]
    for case in cases:
        with pytest.raises(ValidationError) as err:
            case()
        assert err.value.fix
    with pytest.raises(NotFoundError, match="register"):
        gov.state("nope")
    with pytest.raises(NotFoundError):
        gov.entry("user_txn_7d", version=9)
    assert snapshot() == before


def test_only_gov_tables_and_shared_state_across_instances(workspace, clock):
    con = sqlite3.connect(workspace.features_db)
    con.execute("CREATE TABLE feature_views (name TEXT)")           # another component's table
    con.commit()
    con.close()
    a = Governance(workspace, clock=clock)
    b = Governance(str(workspace.root), clock=clock)
    read(a, [view()])
    assert b.usage("user_txn_7d") == {"online_reads": 0, "offline_reads": 0}   # still buffered in a
    a.flush()
    assert b.usage("user_txn_7d") == {"online_reads": 0, "offline_reads": 1}
    con = sqlite3.connect(workspace.features_db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    assert {t for t in tables if t != "sqlite_sequence"} - {"feature_views"} == \
        {t for t in tables if t.startswith("gov_")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read(b, [view()], channel="online")                          # active view: no warning


@pytest.mark.parametrize("every", [1, 3, 1000])
def test_concurrent_reads_never_lose_a_usage_count(workspace, clock, every):
    from concurrent.futures import ThreadPoolExecutor
    from types import MappingProxyType

    shared = Governance(workspace, clock=clock, usage_flush_every=every)
    other = Governance(workspace, clock=clock, usage_flush_every=every)  # a second connection to the file
    v = view(tags=MappingProxyType({"domain": "payments"}))

    def work(i):
        gov = shared if i % 2 else other
        for _ in range(10):
            gov.check_read([v], principal=None, purpose=None, channel="online")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(8)))
    other.close()                                                   # flushes its buffered counts
    assert shared.usage(v) == {"online_reads": 80, "offline_reads": 0}
    assert shared.entry(v).tags == {"domain": "payments"}
