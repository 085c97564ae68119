"""Helpers for the registry tests: small fitted models on synthetic data, complete metadata."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from mlops_kit._time import FixedClock
from mlops_kit._time import FixedClock
from mlops_kit.registry import (
    DataSnapshot,
    FeatureRef,
    Lineage,
    ModelMetadata,
    ModelRegistry,
    capture_environment,
    infer_signature,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
EVAL_SET = hashlib.sha256(b"eval-set-1").hexdigest()


def make_data(seed: int = 0, n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "amount": rng.gamma(2.0, 30.0, n),
        "n_tx_24h": rng.integers(0, 20, n).astype("int64"),
        "country": rng.choice(["DE", "FR", "NL"], n),
    })
    logit = 0.02 * X["amount"] - 0.2 * X["n_tx_24h"] + (X["country"] == "NL") * 1.0 - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y.to_numpy()


def numeric(X: pd.DataFrame) -> pd.DataFrame:
    return X[["amount", "n_tx_24h"]]


def fit_model(seed: int = 0, C: float = 1.0) -> tuple[LogisticRegression, pd.DataFrame]:
    X, y = make_data(seed)
    model = LogisticRegression(C=C, max_iter=500).fit(numeric(X), y)
    return model, numeric(X)


def metadata(auc: float = 0.80, *, run: str = "run-1", C: float = 1.0, segments=None, eval_set=EVAL_SET,
             **overrides) -> ModelMetadata:
    fields = dict(code_revision="a1b2c3d", training_run_id=run,
                  environment=capture_environment(["numpy", "pandas", "scikit-learn"]),
                  parameters={"C": C, "max_iter": 500}, metrics={"auc": auc}, eval_set_id=eval_set,
                  segment_metrics=segments or {"DE": {"auc": auc}, "FR": {"auc": auc}})
    fields.update(overrides)
    return ModelMetadata(**fields)


def lineage(view_version: int = 3, snapshot: bytes = b"train-snap-1") -> Lineage:
    snap = DataSnapshot(name="train", sha256=hashlib.sha256(snapshot).hexdigest(), role="training", rows=300)
    ref = FeatureRef(view="user_stats", version=view_version, fingerprint=f"fp-user-stats-v{view_version}",
                     features=("amount", "n_tx_24h"), snapshots=("train",))
    return Lineage(features=(ref,), snapshots=(snap,))


def register(reg: ModelRegistry, name: str = "fraud", *, seed: int = 0, auc: float = 0.80, author: str = "alice",
             view_version: int = 3, **meta):
    C = meta.pop("C", 1.0)
    model, X = fit_model(seed, C=C)
    return reg.register_model(name, model, signature=infer_signature(X, outputs=model.predict_proba(X)[:, 1]),
                              metadata=metadata(auc, C=C, **meta), lineage=lineage(view_version), author=author)


def to_production(reg: ModelRegistry, name: str, version: int, *, author_ok: bool = True):
    """Walk a version through candidate -> staging -> approvals -> approved-prod -> deploy."""
    reg.promote(name, version, "candidate", actor="alice")
    reg.promote(name, version, "staging", actor="alice")
    reg.approve(name, version, actor="olivia", role="ml-owner", note="metrics reviewed")
    reg.approve(name, version, actor="rita", role="risk", note="risk assessment ok")
    reg.promote(name, version, "approved-prod", actor="olivia")
    return reg.deploy(name, actor="deployer")


def move_aliases(root: str, worker: int, versions: list[int], moves: int, barrier=None) -> None:
    """Concurrency worker: its own registry; moves its private alias and the shared alias ``hot``."""
    reg = ModelRegistry(root, clock=FixedClock(T0))
    if barrier is not None:
        barrier.wait(timeout=60)  # every worker starts moving at the same moment
    try:
        for k in range(moves):
            if k % 2 == 0:
                reg.promote("fraud", versions[k], "hot", actor=f"worker-{worker}", reason=f"move {k}")
            else:
                reg.promote("fraud", versions[k], f"w{worker}", actor=f"worker-{worker}", reason=f"move {k}")
    finally:
        reg.close()
