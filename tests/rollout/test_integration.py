"""The simulator against the real online store and model registry (adapters, one workspace)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from rollout_helpers import START, standard_guardrails

from mlops_kit._time import FixedClock
from mlops_kit.errors import ValidationError
from mlops_kit.features import Entity, FeatureStore, FeatureView, Field
from mlops_kit.registry import (DataSnapshot, FeatureRef, Lineage, ModelMetadata, ModelRegistry, capture_environment,
                                infer_signature)
from mlops_kit.rollout import (CanaryStrategy, InMemoryFeatureSource, OnlineStoreFeatureSource, RegistryModelProvider,
                               RolloutSimulator, SegmentRegression)

M, H = timedelta(minutes=1), timedelta(hours=1)
FEATURES = ["user_stats:user_risk", "user_stats:user_txn_7d"]


def _store(workspace, world):
    store = FeatureStore(workspace, clock=FixedClock(START))
    user = Entity(name="user", join_keys=["user_id"])
    fv = FeatureView(name="user_stats", entities=[user], ttl=timedelta(days=30), owner="risk-features",
                     schema=[Field(name="user_risk", dtype="float64"), Field(name="user_txn_7d", dtype="float64")])
    store.apply([user, fv])
    f = world["features"]
    df = pd.DataFrame({"user_id": f["key"].astype("int64"), "user_risk": f["user_risk"],
                       "user_txn_7d": f["user_txn_7d"].astype("float64"),
                       "event_timestamp": pd.Series([START - timedelta(days=1)] * len(f), dtype="datetime64[us, UTC]")})
    df = df[df["user_id"] % 50 != 0]  # 2 % of users never reach the online store
    store.ingest("user_stats", df)
    store.materialize(START - timedelta(days=2), START)
    return store


def _register(reg, world, model, run):
    X = world["traffic"][["amount_log"]].head(500).assign(user_risk=0.0, user_txn_7d=6.0)
    meta = ModelMetadata(code_revision="abc1234", training_run_id=run,
                         environment=capture_environment(["numpy", "pandas", "scikit-learn"]), parameters={"kind": "linear"},
                         metrics={"auc": 0.8}, eval_set_id=hashlib.sha256(b"eval").hexdigest(),
                         segment_metrics={"all": {"auc": 0.8}})
    snap = DataSnapshot(name="train", sha256=hashlib.sha256(run.encode()).hexdigest(), role="training", rows=500)
    ref = FeatureRef(view="user_stats", version=1, fingerprint="fp-user-stats-v1",
                     features=("user_risk", "user_txn_7d"), snapshots=("train",))
    return reg.register_model("fraud", model, signature=infer_signature(X, outputs=model.predict_proba(X)[:, 1]),
                              metadata=meta, lineage=Lineage(features=(ref,), snapshots=(snap,)), author="alice")


def _to_approved(reg, version):
    reg.promote("fraud", version, "candidate", actor="alice")
    reg.promote("fraud", version, "staging", actor="alice")
    reg.approve("fraud", version, actor="olivia", role="ml-owner", note="metrics reviewed")
    reg.approve("fraud", version, actor="rita", role="risk", note="risk ok")
    reg.promote("fraud", version, "approved-prod", actor="olivia")


def test_canary_with_the_real_store_and_registry_rolls_back_in_the_registry(workspace, world):
    store = _store(workspace, world)
    reg = ModelRegistry(workspace, clock=FixedClock(START))
    v1 = _register(reg, world, world["stable"], "run-1").version
    _to_approved(reg, v1)
    reg.deploy("fraud", actor="deployer")
    v2 = _register(reg, world, world["candidate"], "run-2").version
    _to_approved(reg, v2)
    traffic = world["traffic"][world["traffic"]["event_timestamp"] < pd.Timestamp(START + 3 * H)]
    source = OnlineStoreFeatureSource(store, FEATURES, key_column="user_id")
    sim = RolloutSimulator(traffic=traffic, models=RegistryModelProvider(reg, "fraud"), strategy=CanaryStrategy(),
                           features=source, feature_columns=["amount_log", "user_risk", "user_txn_7d"],
                           fill_values={"user_risk": 0.0, "user_txn_7d": 6.0}, guardrails=standard_guardrails(),
                           faults=[SegmentRegression(segment="high_value", start=START + H)], warmup=H, seed=1)
    r = sim.run()
    assert r.status == "aborted"
    assert reg.get_model_version_by_alias("fraud", "deployed-prod").version == v1
    assert reg.get_model_version("fraud", v2).state == "rolled-back"
    moves = [(e.to_version, e.action) for e in reg.alias_history("fraud", "deployed-prod")]
    assert moves[-2:] == [(v2, "deploy"), (v1, "rollback")]
    assert reg.audit.verify().ok
    # the online read agrees with the in-memory reference, including keys the store never got
    keys = traffic["key"].to_numpy()[:3000]
    got, missing = source.fetch(keys, START)
    ref_table = world["features"][world["features"]["key"] % 50 != 0]
    want, want_missing = InMemoryFeatureSource(ref_table, key_column="key").fetch(keys, START)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), equal_nan=True)
    assert np.array_equal(missing, want_missing) and missing.any()
    assert r.requests["missing_feature"].mean() == pytest.approx(0.02, abs=0.01)


def test_adapter_bad_input(workspace):
    with pytest.raises(ValidationError, match="get_online_features"):
        OnlineStoreFeatureSource(object(), FEATURES, key_column="user_id")
    store = FeatureStore(workspace)
    with pytest.raises(ValidationError, match="view:feature"):
        OnlineStoreFeatureSource(store, ["user_risk"], key_column="user_id")
    with pytest.raises(ValidationError, match="key_column"):
        OnlineStoreFeatureSource(store, FEATURES, key_column="")
    with pytest.raises(ValidationError, match="ModelRegistry"):
        RegistryModelProvider(object(), "fraud")
    reg = ModelRegistry(workspace)
    with pytest.raises(ValidationError, match="candidate_alias"):
        RegistryModelProvider(reg, "fraud", candidate_alias="deployed-prod")
