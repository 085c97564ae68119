"""Sensitivity classes, grants, the read log, and the privacy helpers."""

from __future__ import annotations

import hashlib
import logging
import types
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from mlops_kit._time import FixedClock
from mlops_kit.errors import AccessDeniedError, NotFoundError, ValidationError
from mlops_kit.governance import (Governance, apply_retention, bucketize, salted_hash,
                                  suppress_rare)

UTC = timezone.utc
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def view(name, sensitivity, version=1):
    return types.SimpleNamespace(name=name, version=version, sensitivity=sensitivity)


@pytest.fixture
def gov(workspace):
    return Governance(workspace, clock=FixedClock(T0))


PUBLIC, INTERNAL = view("merchant_category", "public"), view("user_txn_7d", "internal")
SENSITIVE, RESTRICTED = view("user_home_region", "sensitive"), view("card_pii", "restricted")


@pytest.mark.parametrize("channel", ["offline", "online"])
def test_restricted_needs_a_grant_even_for_the_anonymous_principal(gov, channel):
    for principal in (None, "svc-scoring"):
        with pytest.raises(AccessDeniedError) as err:
            gov.check_read([RESTRICTED], principal=principal, purpose="scoring", channel=channel)
        assert err.value.details["denied"][0]["view"] == "card_pii"
    gov.check_read([PUBLIC, INTERNAL, SENSITIVE], principal=None, purpose=None, channel=channel)


def test_denial_lists_every_refused_view_and_counts_nothing(gov):
    other = view("card_bin_raw", "restricted")
    with pytest.raises(AccessDeniedError) as err:
        gov.check_read([PUBLIC, RESTRICTED, other], principal="svc", purpose="p", channel="offline")
    assert [d["view"] for d in err.value.details["denied"]] == ["card_pii", "card_bin_raw"]
    assert gov.usage("merchant_category") == {"online_reads": 0, "offline_reads": 0}


def test_grants_direct_and_through_roles_and_revoke(gov):
    gov.add_principal("alice", roles=["fraud-investigator"], actor="sec-admin", reason="on-call")
    gov.add_principal("svc-scoring", actor="sec-admin", reason="service")
    gov.grant("card_pii", role="fraud-investigator", actor="sec-admin", reason="SEC-12")
    gov.grant("card_pii", principal="svc-scoring", actor="sec-admin", reason="SEC-13")
    gov.check_read([RESTRICTED], principal="alice", purpose="investigation", channel="offline")
    gov.check_read([RESTRICTED], principal="svc-scoring", purpose="scoring", channel="online")
    with pytest.raises(AccessDeniedError):
        gov.check_read([RESTRICTED], principal="mallory", purpose="curious", channel="offline")
    gov.revoke("card_pii", role="fraud-investigator", actor="sec-admin", reason="rotation ended")
    with pytest.raises(AccessDeniedError):
        gov.check_read([RESTRICTED], principal="alice", purpose="investigation", channel="offline")
    events = [(e["action"], e["subject"]) for e in gov.access_events()]
    assert events == [("set_roles", "alice"), ("set_roles", "svc-scoring"), ("grant", "fraud-investigator"),
                      ("grant", "svc-scoring"), ("revoke", "fraud-investigator")]
    assert [g["subject"] for g in gov.grants("card_pii")] == ["svc-scoring"]


def test_sensitive_and_restricted_reads_are_logged_with_purpose_and_channel(gov):
    gov.add_principal("alice", actor="a", reason="r")
    gov.grant("card_pii", principal="alice", actor="a", reason="r")
    gov.check_read([PUBLIC, INTERNAL, SENSITIVE], principal=None, purpose="dashboard", channel="online")
    gov.check_read([RESTRICTED], principal="alice", purpose="chargeback review", channel="offline")
    with pytest.raises(AccessDeniedError):
        gov.check_read([RESTRICTED], principal=None, purpose="scrape", channel="online")
    log = gov.read_log()
    assert list(log["view"]) == ["user_home_region", "card_pii", "card_pii"]
    assert list(log["outcome"]) == ["allowed", "allowed", "denied"]
    assert log.iloc[1][["principal", "purpose", "channel"]].tolist() == ["alice", "chargeback review", "offline"]
    assert pd.isna(log.iloc[2]["principal"]) and log.iloc[2]["reason"] == "no grant"
    assert set(log["at"]) == {T0.isoformat()}


def test_access_bad_input(gov):
    with pytest.raises(NotFoundError, match="add_principal"):
        gov.grant("card_pii", principal="ghost", actor="a", reason="r")
    with pytest.raises(ValidationError, match="exactly one"):
        gov.grant("card_pii", actor="a", reason="r")
    with pytest.raises(ValidationError, match="roles"):
        gov.add_principal("bob", roles="admin", actor="a", reason="r")
    with pytest.raises(NotFoundError):
        gov.revoke("card_pii", role="nobody", actor="a", reason="r")
    with pytest.raises(ValidationError, match="reason"):
        gov.grant("card_pii", role="x", actor="a", reason="")
    assert gov.access_events() == [] and gov.grants() == []


# -- privacy helpers --------------------------------------------------------------------------
def test_salted_hash_is_deterministic_per_salt_and_matches_hashlib():
    values = pd.Series(["4111-1111", "5500-0000", None, "4111-1111"])
    out = salted_hash(values, salt="pepper")
    expected = hashlib.sha256(b"pepper|4111-1111").hexdigest()[:16]
    assert out[0] == expected == out[3] and out[2] is None and out[1] != out[0]
    assert salted_hash("4111-1111", salt="pepper") == expected
    assert salted_hash("4111-1111", salt="salt2") != expected
    assert len(salted_hash("x", salt="pepper", length=32)) == 32
    with pytest.raises(ValidationError, match="salt"):
        salted_hash("x", salt="")
    with pytest.raises(ValidationError, match="length"):
        salted_hash("x", salt="pepper", length=4)


def test_bucketize_with_explicit_edges():
    out = bucketize(pd.Series([-5, 0, 9.99, 10, 99, 100, None]), edges=[0, 10, 100])
    assert out.tolist() == ["<0", "[0, 10)", "[0, 10)", "[10, 100)", "[10, 100)", ">=100", None]
    assert bucketize(42, edges=[10]) == ">=10"
    for bad in ([], [10, 5], [1, 1], [float("nan")]):
        with pytest.raises(ValidationError, match="strictly increasing"):
            bucketize([1], edges=bad)
    with pytest.raises(ValidationError, match="numeric"):
        bucketize(["a"], edges=[1])


def test_suppress_rare_with_k_threshold():
    values = pd.Series(["FR"] * 5 + ["DE"] * 3 + ["LU"] + [None])
    out = suppress_rare(values, k=3)
    assert out.tolist() == ["FR"] * 5 + ["DE"] * 3 + ["__other__", None]
    assert suppress_rare(values, k=4, other="rare").value_counts().to_dict() == {"FR": 5, "rare": 4}
    with pytest.raises(ValidationError, match="k must"):
        suppress_rare(values, k=1)


def make_partitions(root, days):
    paths = []
    for d in days:
        folder = root / "user_txn_7d" / "v1" / f"date={d}"
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"x")
        paths.append(folder)
    return paths


def test_retention_deletes_only_expired_days_and_logs(tmp_path, caplog):
    make_partitions(tmp_path, ["2024-05-01", "2024-05-29", "2024-05-30", "2024-05-31"])
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)       # cutoff = 2024-05-30 12:00
    with caplog.at_level(logging.INFO, logger="mlops_kit.governance.retention"):
        dry = apply_retention(tmp_path, max_age=timedelta(days=2), now=now, dry_run=True)
    assert [d["partition_date"] for d in dry.deleted] == ["2024-05-01", "2024-05-29"]
    assert len(list(tmp_path.rglob("date=*"))) == 4 and "would delete" in caplog.text
    result = apply_retention(tmp_path, max_age=timedelta(days=2), now=now)
    left = sorted(p.name for p in tmp_path.rglob("date=*"))
    assert left == ["date=2024-05-30", "date=2024-05-31"]
    assert [k["partition_date"] for k in result.kept] == ["2024-05-30", "2024-05-31"]
    assert not list(tmp_path.rglob(".deleting-*"))


def test_retention_refuses_bad_names_before_deleting_anything(tmp_path):
    paths = make_partitions(tmp_path, ["2020-01-01", "2024-05-31"])
    bad = tmp_path / "date=yesterday"
    bad.mkdir()
    for target in (paths + [bad], paths + [tmp_path / "missing"], [tmp_path / "date=2024-02-30"]):
        if target[-1].name == "date=2024-02-30":
            target[-1].mkdir()
        with pytest.raises(ValidationError, match="nothing was deleted"):
            apply_retention(target, max_age=timedelta(days=1), now=T0)
    assert all(p.exists() for p in paths)
    with pytest.raises(ValidationError, match="max_age"):
        apply_retention(paths, max_age=timedelta(0), now=T0)
    with pytest.raises(ValidationError):
        apply_retention(paths, max_age=timedelta(days=1), now=datetime(2024, 1, 1))


def test_governance_retention_is_recorded(gov, workspace):
    make_partitions(workspace.offline_dir, ["2023-01-01", "2024-05-31"])
    result = gov.apply_retention(max_age=timedelta(days=90), actor="retention-job")
    assert [d["partition_date"] for d in result.deleted] == ["2023-01-01"]
    log = gov.retention_log()
    assert [(r["partition_date"], r["actor"], r["dry_run"]) for r in log] == [("2023-01-01", "retention-job", 0)]


def test_retention_calls_before_delete_first_and_a_failure_deletes_nothing(tmp_path):
    paths = make_partitions(tmp_path, ["2020-01-01", "2020-01-02", "2024-05-31"])
    seen = []

    def refuse(folders):
        seen.append([p.name for p in folders])
        raise RuntimeError("manifest busy")

    with pytest.raises(RuntimeError):
        apply_retention(tmp_path, max_age=timedelta(days=30), now=T0, before_delete=refuse)
    assert all(p.exists() for p in paths) and seen == [["date=2020-01-01", "date=2020-01-02"]]
    apply_retention(tmp_path, max_age=timedelta(days=30), now=T0, before_delete=lambda f: seen.append(len(f)))
    assert seen[-1] == 2 and [p.exists() for p in paths] == [False, False, True]


def test_check_read_accepts_one_view_or_any_iterable(gov):
    gov.check_read(PUBLIC, principal=None, purpose=None, channel="online")
    gov.check_read((v for v in [PUBLIC, INTERNAL]), principal=None, purpose=None, channel="online")
    gov.check_read([PUBLIC, PUBLIC], principal=None, purpose=None, channel="online")   # counted once
    assert gov.usage("merchant_category")["online_reads"] == 3
    with pytest.raises(ValidationError, match="no views"):
        gov.check_read([], principal=None, purpose=None, channel="online")
    assert bucketize([2_000_000.0, 0.5], edges=[0.25, 1_000_000]).tolist() == [">=1000000", "[0.25, 1000000)"]
