"""generate_world: determinism, table invariants, and every scenario switch measured."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mlops_kit.datasets import Scenario, generate_world, user_transaction_stats
from mlops_kit.errors import SchemaError, ValidationError

SMALL = Scenario.small()


@pytest.fixture(scope="module")
def small():
    return generate_world(SMALL, seed=3)


@pytest.fixture(scope="module")
def default_world():
    return generate_world(Scenario.default(), seed=0)


def test_same_seed_same_world_other_seed_other_world(small):
    again = generate_world(SMALL, seed=3)
    for name, frame in small.tables().items():
        pd.testing.assert_frame_equal(frame, again.tables()[name])
    assert small.fingerprint() == again.fingerprint()
    assert generate_world(SMALL, seed=4).fingerprint() != small.fingerprint()


def test_sizes_columns_and_dtypes(small):
    sizes = SMALL.sizes
    assert len(small.users) == sizes.users and len(small.merchants) == sizes.merchants
    assert len(small.transactions) == sizes.transactions == len(small.labels)
    assert list(small.transactions.columns) == [
        "transaction_id", "user_id", "merchant_id", "amount", "merchant_category", "channel",
        "country", "event_timestamp", "ingested_at"]
    assert list(small.labels.columns) == ["transaction_id", "is_fraud", "label_timestamp"]
    assert list(small.profiles.columns) == ["user_id", "account_status", "credit_limit", "risk_tier",
                                            "valid_from", "valid_to"]
    for frame in small.tables().values():
        for col in frame.columns:
            if "timestamp" in col or col.endswith("_at") or col.startswith("valid_"):
                assert str(frame[col].dtype) == "datetime64[us, UTC]", col
    assert small.transactions["transaction_id"].is_unique


def test_scale_maps_counts():
    world = generate_world(SMALL.with_scale(0.2), seed=0)
    assert (len(world.users), len(world.merchants), len(world.transactions)) == (100, 10, 1000)


def test_time_invariants(small):
    txn = small.transactions
    assert txn["event_timestamp"].min() >= pd.Timestamp(SMALL.start)
    assert txn["event_timestamp"].max() < pd.Timestamp(SMALL.end)
    assert (txn["ingested_at"] > txn["event_timestamp"]).all()
    lab = small.labels.merge(txn[["transaction_id", "event_timestamp"]], on="transaction_id")
    assert (lab["label_timestamp"] > lab["event_timestamp"]).all()
    assert set(txn["user_id"]) <= set(small.users["user_id"])
    assert set(txn["merchant_id"]) <= set(small.merchants["merchant_id"])


def test_fraud_rate_late_share_and_chargeback_delay(default_world):
    s = default_world.scenario
    n = len(default_world.labels)
    rate = default_world.labels["is_fraud"].mean()
    assert abs(rate - s.base_fraud_rate) < 0.003, rate
    txn = default_world.transactions
    late = ((txn["ingested_at"] - txn["event_timestamp"]) >= pd.Timedelta(hours=1)).mean()
    sigma = np.sqrt(s.late_share * (1 - s.late_share) / n)
    assert abs(late - s.late_share) < 4 * sigma, late
    lab = default_world.labels.merge(txn[["transaction_id", "event_timestamp"]], on="transaction_id")
    fraud = lab[lab["is_fraud"]]
    delay_days = (fraud["label_timestamp"] - fraud["event_timestamp"]).dt.total_seconds() / 86400
    assert abs(np.median(delay_days) / s.chargeback_delay_median_days - 1) < 0.15
    legit = lab[~lab["is_fraud"]]
    assert ((legit["label_timestamp"] - legit["event_timestamp"]) == pd.Timedelta(days=s.label_maturity_days)).all()


def test_profiles_are_a_valid_scd2_table(small):
    """Brute-force walk over every user's history."""
    signup = small.users.set_index("user_id")["signup_at"]
    fraud = small.labels.merge(small.transactions[["transaction_id", "user_id"]], on="transaction_id")
    fraud = fraud[fraud["is_fraud"]].groupby("user_id")["label_timestamp"].min()
    restricted_after_fraud = 0
    for user_id, rows in small.profiles.groupby("user_id"):
        rows = rows.reset_index(drop=True)
        assert rows["valid_from"].is_monotonic_increasing
        assert rows.loc[0, "valid_from"] == signup[user_id]
        assert rows["valid_to"].isna().sum() == 1 and pd.isna(rows["valid_to"].iloc[-1])
        for i in range(len(rows) - 1):
            assert rows.loc[i, "valid_to"] == rows.loc[i + 1, "valid_from"]
        assert rows.loc[0, "account_status"] == "active"
        if user_id in fraud.index:
            after = rows[rows["valid_from"] > fraud[user_id]]
            restricted_after_fraud += bool(len(after) and (after["account_status"] == "restricted").any())
    assert set(small.profiles["user_id"]) == set(small.users["user_id"])
    assert restricted_after_fraud >= 0.8 * len(fraud)


def _psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(reference)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / len(current)
    ref, cur = np.where(ref == 0, 1e-4, ref), np.where(cur == 0, 1e-4, cur)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _before_after(world, column, when):
    txn = world.transactions
    mask = txn["event_timestamp"] >= pd.Timestamp(when)
    return txn.loc[~mask, column].to_numpy(), txn.loc[mask, column].to_numpy()


def test_covariate_drift_shifts_amounts_and_channel_mix(default_world):
    drifted = generate_world(Scenario.covariate_drift(), seed=0)
    when = drifted.scenario.covariate_drift_from
    before, after = _before_after(drifted, "amount", when)
    psi_drift = _psi(np.log(before), np.log(after))
    c_before, c_after = _before_after(default_world, "amount", when)
    psi_control = _psi(np.log(c_before), np.log(c_after))
    assert psi_drift > 0.1 and psi_control < 0.02, (psi_drift, psi_control)
    assert np.mean(np.log(after)) - np.mean(np.log(before)) > 0.3
    ch_before, ch_after = _before_after(drifted, "channel", when)
    assert np.mean(ch_after == "online") - np.mean(ch_before == "online") > 0.05


def test_concept_drift_changes_the_fraud_mechanism(default_world):
    drifted = generate_world(Scenario.concept_drift(), seed=0)
    when = pd.Timestamp(drifted.scenario.concept_drift_from)

    def online_share_of_fraud(world):
        frame = world.transactions.merge(world.labels, on="transaction_id")
        fraud = frame[frame["is_fraud"]]
        late = fraud["event_timestamp"] >= when
        return (fraud.loc[~late, "channel"] == "online").mean(), (fraud.loc[late, "channel"] == "online").mean()

    before, after = online_share_of_fraud(drifted)
    c_before, c_after = online_share_of_fraud(default_world)
    assert before - after > 0.2, (before, after)
    assert abs(c_before - c_after) < 0.1, (c_before, c_after)
    # P(x) barely moves: concept drift is about P(fraud | x)
    amounts = _before_after(drifted, "amount", when)
    assert _psi(np.log(amounts[0]), np.log(amounts[1])) < 0.02


def test_outage_leaves_no_ingested_rows_and_loses_nothing(default_world):
    world = generate_world(Scenario.outage(), seed=0)
    ingested = world.transactions["ingested_at"]
    for lo, hi in world.scenario.outages:
        inside = (ingested >= pd.Timestamp(lo)) & (ingested < pd.Timestamp(hi))
        assert inside.sum() == 0
        control = default_world.transactions["ingested_at"]
        assert ((control >= pd.Timestamp(lo)) & (control < pd.Timestamp(hi))).sum() > 100
        backlog = (ingested >= pd.Timestamp(hi)) & (ingested < pd.Timestamp(hi) + pd.Timedelta("1h"))
        assert backlog.sum() > 100  # the queue drains right after the outage
    assert len(world.transactions) == len(default_world.transactions)
    pd.testing.assert_series_equal(world.transactions["event_timestamp"], default_world.transactions["event_timestamp"])


def test_duplicates_at_the_configured_share():
    world = generate_world(Scenario.messy(), seed=0)
    txn = world.transactions
    unique = txn["transaction_id"].nunique()
    assert unique == world.scenario.sizes.transactions
    assert len(txn) - unique == round(world.scenario.duplicate_share * unique)
    dup = txn[txn.duplicated("transaction_id", keep=False)].sort_values(["transaction_id", "ingested_at"])
    first, second = dup.iloc[0::2].reset_index(drop=True), dup.iloc[1::2].reset_index(drop=True)
    same = [c for c in txn.columns if c != "ingested_at"]
    pd.testing.assert_frame_equal(first[same], second[same])
    assert (second["ingested_at"] > first["ingested_at"]).all()


def test_schema_change_rename_and_retype(small):
    renamed = generate_world(replace(SMALL, schema_change="rename"), seed=3)
    assert "amount" not in renamed.transactions.columns
    np.testing.assert_array_equal(renamed.transactions["amount_v2"], small.transactions["amount"])
    retyped = generate_world(replace(SMALL, schema_change="retype"), seed=3)
    assert not pd.api.types.is_numeric_dtype(retyped.transactions["amount"])
    np.testing.assert_allclose(retyped.transactions["amount"].astype(float), small.transactions["amount"])
    coded = generate_world(replace(SMALL, schema_change="retype", schema_change_field="channel"), seed=3)
    assert coded.transactions["channel"].dtype == np.int64
    with pytest.raises(SchemaError, match="amount"):
        user_transaction_stats(renamed)
    with pytest.raises(SchemaError, match="float64"):
        user_transaction_stats(retyped)


def test_switch_changes_only_its_own_part(small):
    late = generate_world(replace(SMALL, late_share=0.3), seed=3)
    pd.testing.assert_frame_equal(late.labels, small.labels)
    pd.testing.assert_series_equal(late.transactions["amount"], small.transactions["amount"])


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, None])
def test_bad_seed(seed):
    with pytest.raises(ValidationError, match="seed"):
        generate_world(SMALL, seed=seed)


def test_bad_scenario():
    with pytest.raises(ValidationError, match="Scenario"):
        generate_world({"n_users": 3})  # type: ignore[arg-type]


def test_tiny_worlds_work():
    world = generate_world(Scenario(n_users=3, n_merchants=2, n_transactions=40, days=2,
                                    base_fraud_rate=0.2), seed=0)
    assert len(world.transactions) == 40 and world.labels["is_fraud"].sum() >= 4
    assert world.profiles["valid_to"].isna().sum() == 3
