"""Feature pipelines against brute-force loops written here, and their point-in-time property."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit.datasets import (Scenario, World, current_profile_features, deduplicate, entity_frame,
                                generate_world, leaky_merchant_risk, merchant_risk,
                                naive_user_transaction_stats, time_split, training_set,
                                user_profile_features, user_transaction_stats)
from mlops_kit.errors import SchemaError, TimezoneError, ValidationError

SCENARIO = replace(Scenario.messy(), name="pipelines", n_users=60, n_merchants=12, n_transactions=3000,
                   days=40, late_share=0.2, base_fraud_rate=0.05)


@pytest.fixture(scope="module")
def world():
    return generate_world(SCENARIO, seed=11)


@pytest.fixture(scope="module")
def first_delivery(world):
    txn = world.transactions
    rows = {}
    for r in txn.itertuples(index=False):  # plain loop: earliest ingestion per id
        if r.transaction_id not in rows or r.ingested_at < rows[r.transaction_id].ingested_at:
            rows[r.transaction_id] = r
    return list(rows.values())


def _brute_user_stats(events, user, t, *, respect_ingestion):
    out = {}
    for name, width in (("1h", timedelta(hours=1)), ("24h", timedelta(days=1)), ("7d", timedelta(days=7)),
                        ("30d", timedelta(days=30))):
        seen = [e for e in events if e.user_id == user and t - width <= e.event_timestamp < t
                and (not respect_ingestion or e.ingested_at <= t)]
        out[f"n_{name}"] = len(seen)
        out[f"sum_{name}"] = sum(e.amount for e in seen)
    return out


@pytest.mark.parametrize("respect_ingestion", [True, False])
def test_user_stats_equal_a_brute_force_loop(world, first_delivery, respect_ingestion):
    stats = (user_transaction_stats if respect_ingestion else naive_user_transaction_stats)(world)
    assert len(stats) == len(first_delivery)
    assert (stats["created_timestamp"] == stats["event_timestamp"]).all()
    sample = stats.sample(400, random_state=0)
    for row in sample.itertuples(index=False):
        want = _brute_user_stats(first_delivery, row.user_id, row.event_timestamp,
                                 respect_ingestion=respect_ingestion)
        assert row.txn_count_1h == want["n_1h"]
        assert row.txn_count_24h == want["n_24h"]
        assert row.txn_count_7d == want["n_7d"]
        assert row.amount_sum_24h == pytest.approx(want["sum_24h"], abs=0.011)
        if want["n_7d"]:
            assert row.amount_avg_7d == pytest.approx(want["sum_7d"] / want["n_7d"], abs=1e-3)
        else:
            assert np.isnan(row.amount_avg_7d)
        if want["n_30d"]:
            assert row.amount_avg_30d == pytest.approx(want["sum_30d"] / want["n_30d"], abs=1e-3)


def test_late_events_make_the_naive_stats_differ(world):
    honest, naive = user_transaction_stats(world), naive_user_transaction_stats(world)
    assert (naive["txn_count_7d"] >= honest["txn_count_7d"]).all()
    assert (naive["txn_count_7d"] > honest["txn_count_7d"]).mean() > 0.05


@pytest.mark.parametrize("honest", [True, False])
def test_merchant_risk_equals_a_brute_force_loop(world, first_delivery, honest):
    table = merchant_risk(world) if honest else leaky_merchant_risk(world)
    assert len(table) == len(world.merchants) * world.scenario.days
    assert set(table["event_timestamp"].dt.hour) == {0}
    labels = world.labels.set_index("transaction_id")
    window = timedelta(days=30)
    for row in table.sample(250, random_state=1).itertuples(index=False):
        t = row.event_timestamp
        txns = [e for e in first_delivery if e.merchant_id == row.merchant_id
                and t - window <= e.event_timestamp < t and (not honest or e.ingested_at <= t)]
        known = [e for e in txns if labels.at[e.transaction_id, "is_fraud"]
                 and (not honest or labels.at[e.transaction_id, "label_timestamp"] <= t)]
        assert row.txn_count_30d == len(txns)
        if txns:
            assert row.fraud_rate_30d == pytest.approx(len(known) / len(txns), abs=1e-6)
        else:
            assert np.isnan(row.fraud_rate_30d)
        if honest:
            received = [e for e in first_delivery if e.merchant_id == row.merchant_id
                        and labels.at[e.transaction_id, "is_fraud"]
                        and t - window < labels.at[e.transaction_id, "label_timestamp"] <= t]
            assert row.chargeback_count_30d == len(received)


def test_leaky_merchant_risk_sees_more_fraud(world):
    honest, leaky = merchant_risk(world), leaky_merchant_risk(world)
    def frauds(t):
        return np.rint(t["fraud_rate_30d"].fillna(0) * t["txn_count_30d"])
    assert (frauds(leaky) >= frauds(honest)).all() and frauds(leaky).sum() > frauds(honest).sum()
    assert leaky["fraud_rate_30d"].mean() > honest["fraud_rate_30d"].mean()


def test_profile_features_follow_the_scd2_rows(world):
    feats = user_profile_features(world)
    assert len(feats) == len(world.profiles)
    merged = feats.merge(world.profiles, left_on=["user_id", "event_timestamp"],
                         right_on=["user_id", "valid_from"], suffixes=("", "_p"))
    assert len(merged) == len(feats)
    assert (merged["account_status"] == merged["account_status_p"]).all()
    current = current_profile_features(world)
    assert len(current) == len(world.users) and current["user_id"].is_unique
    for row in current.sample(30, random_state=0).itertuples(index=False):
        rows = world.profiles[world.profiles["user_id"] == row.user_id]
        last = rows[rows["valid_to"].isna()].iloc[0]
        assert (row.account_status, row.risk_tier) == (last["account_status"], last["risk_tier"])
        assert row.event_timestamp == rows["valid_from"].min()
    assert (current["created_timestamp"] == world.profiles["valid_from"].max()).all()


def _known_at(world: World, t: pd.Timestamp) -> World:
    """The world as a pipeline running at ``t`` sees it."""
    labels = world.labels.copy()
    unknown = labels["label_timestamp"] > t
    labels.loc[unknown, "is_fraud"] = False
    return replace(world, transactions=world.transactions[world.transactions["ingested_at"] <= t],
                   labels=labels, profiles=world.profiles[world.profiles["valid_from"] <= t])


def test_honest_tables_do_not_change_when_the_future_is_removed(world):
    t = pd.Timestamp(world.scenario.start) + pd.Timedelta(days=25)
    past = _known_at(world, t)
    full_m, past_m = merchant_risk(world), merchant_risk(past)
    keep = full_m["event_timestamp"] <= t
    pd.testing.assert_frame_equal(full_m[keep].reset_index(drop=True),
                                  past_m[past_m["event_timestamp"] <= t].reset_index(drop=True))
    full_u = user_transaction_stats(world)
    past_u = user_transaction_stats(past)
    both = full_u[full_u["event_timestamp"] <= t].merge(past_u, on=["user_id", "event_timestamp"],
                                                          suffixes=("", "_past"))
    assert len(both) > 1000
    for col in ("txn_count_24h", "txn_count_7d", "amount_sum_24h"):
        np.testing.assert_allclose(both[col], both[f"{col}_past"], atol=0.011)
    # the leaky table, by contrast, changes
    leaky_full, leaky_past = leaky_merchant_risk(world), leaky_merchant_risk(past)
    k = leaky_full["event_timestamp"] <= t
    assert not np.allclose(leaky_full.loc[k, "fraud_rate_30d"].fillna(0).to_numpy(),
                           leaky_past.loc[leaky_past["event_timestamp"] <= t, "fraud_rate_30d"].fillna(0).to_numpy())


def test_entity_frame_and_training_set(world):
    rows = entity_frame(world)
    assert rows["transaction_id"].is_unique and len(rows) == world.scenario.sizes.transactions
    assert list(rows.columns[:6]) == ["transaction_id", "user_id", "merchant_id", "event_timestamp",
                                      "is_fraud", "label_timestamp"]
    assert rows["event_timestamp"].is_monotonic_increasing
    train = training_set(world)
    assert len(train) == len(rows)
    pd.testing.assert_series_equal(train["transaction_id"], rows["transaction_id"])


def test_deduplicate_keeps_the_first_delivery(world):
    dedup = deduplicate(world.transactions)
    assert dedup["transaction_id"].is_unique
    first = world.transactions.groupby("transaction_id")["ingested_at"].min()
    assert (dedup.set_index("transaction_id")["ingested_at"] == first).all()


def test_time_split(world):
    rows = entity_frame(world)
    split = time_split(rows, test_share=0.25)
    assert split.train["event_timestamp"].max() < pd.Timestamp(split.cutoff) <= split.test["event_timestamp"].min()
    assert abs(len(split.test) / len(rows) - 0.25) < 0.01
    known = time_split(rows, cutoff=split.cutoff, known_labels_only=True)
    assert (known.train["label_timestamp"] <= pd.Timestamp(split.cutoff)).all()
    assert len(known.train) < len(split.train)
    with pytest.raises(ValidationError, match="test_share"):
        time_split(rows, test_share=1.5)
    with pytest.raises(TimezoneError):
        time_split(rows, cutoff=pd.Timestamp("2024-01-20").to_pydatetime())
    with pytest.raises(ValidationError, match="empty"):
        time_split(rows, cutoff=pd.Timestamp("2030-01-01", tz="UTC").to_pydatetime())
    with pytest.raises(SchemaError):
        time_split(rows.drop(columns="event_timestamp"))


def test_pipelines_refuse_non_worlds():
    for fn in (user_transaction_stats, merchant_risk, user_profile_features, entity_frame,
               current_profile_features, training_set):
        with pytest.raises(ValidationError, match="World"):
            fn("world")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["user_transaction_stats", "merchant_risk", "user_profile_features"])
def test_source_schemas_describe_the_tables(world, name):
    import mlops_kit.datasets as ds

    schema = ds.SOURCE_SCHEMAS[name]
    table = getattr(ds, name)(world)
    assert list(table.columns) == [schema["entity"], "event_timestamp", *schema["features"], "created_timestamp"]
    expected = {"int64": "int64", "float64": "float64", "string": "str"}
    for col, dtype in schema["features"].items():
        assert str(table[col].dtype) == expected[dtype], col
    for col in ("event_timestamp", "created_timestamp"):
        assert str(table[col].dtype) == "datetime64[us, UTC]"
    assert table[schema["entity"]].notna().all() and table["event_timestamp"].is_monotonic_increasing
