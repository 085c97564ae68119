"""Small training and evaluation helpers for the chapters' leakage experiments.

``training_set`` joins the feature tables onto the entity rows as of each row's time with
pandas ``merge_asof`` (an in-memory reference join; the feature store does the same in
DuckDB). ``fit_evaluate`` trains a gradient-boosting or logistic model and reports AUC.
``leakage_experiment`` runs the whole story: offline AUC with leaky features, offline AUC
with point-in-time features, and the AUC each model really gets in production, where
features are only what the scoring service knew at the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import _catalog as C
from ..errors import ValidationError
from .leaky import current_profile_features, leaky_merchant_risk
from .pipelines import (entity_frame, merchant_risk, time_split, user_profile_features,
                        user_transaction_stats)
from .world import World, require_columns

__all__ = ["training_set", "feature_matrix", "fit_evaluate", "ModelReport", "leakage_experiment",
           "MODEL_KINDS"]

MODEL_KINDS = ("hgb", "logistic")
_ONE_HOT = {"merchant_category": C.CATEGORIES, "channel": C.CHANNELS,
            "risk_tier": C.RISK_TIERS, "account_status": C.ACCOUNT_STATUSES}
_NUMERIC = ("amount", "txn_count_1h", "txn_count_24h", "amount_sum_24h", "txn_count_7d",
            "amount_avg_7d", "amount_avg_30d", "txn_count_30d", "chargeback_count_30d",
            "fraud_rate_30d", "credit_limit")


def _asof(left: pd.DataFrame, right: pd.DataFrame, key: str) -> pd.DataFrame:
    right = right.drop(columns=["created_timestamp"], errors="ignore")
    right = right.sort_values("event_timestamp", kind="stable")
    return pd.merge_asof(left, right, on="event_timestamp", by=key, direction="backward",
                         allow_exact_matches=True)


def training_set(world: World, *, leaky: bool = False) -> pd.DataFrame:
    """Entity rows with user stats, merchant risk and profile features joined as of each row.

    ``leaky=True`` swaps in the leaky merchant risk (labels not yet known) and the current
    profile (today's account status for all of history). Rows keep ``entity_frame`` order.
    """
    if not isinstance(world, World):
        raise ValidationError(f"training_set: expected a World, got {type(world).__name__}.",
                              fix="Pass the result of generate_world(...).")
    return _assemble(world, user_transaction_stats(world), leaky=leaky)


def _assemble(world: World, stats: pd.DataFrame, *, leaky: bool) -> pd.DataFrame:
    rows = entity_frame(world)
    rows["_row"] = np.arange(len(rows))
    merchant = leaky_merchant_risk(world) if leaky else merchant_risk(world)
    profile = current_profile_features(world) if leaky else user_profile_features(world)
    frame = _asof(rows, stats, "user_id")
    frame = _asof(frame, merchant, "merchant_id")
    frame = _asof(frame, profile, "user_id")
    return frame.sort_values("_row").drop(columns="_row").reset_index(drop=True)


def feature_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric model inputs from a training set: raw numbers, amount ratios, one-hot codes.

    Missing numbers become 0 (ratios 1); categories use the world's fixed vocabularies, so
    train and test matrices always have the same columns.
    """
    require_columns(frame, list(_NUMERIC) + list(_ONE_HOT), table="training set")
    out = pd.DataFrame(index=frame.index)
    for name in _NUMERIC:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
    out["log_amount"] = np.log1p(out["amount"])
    for window in ("7d", "30d"):
        ratio = out["amount"] / out[f"amount_avg_{window}"]
        ratio = ratio.replace([np.inf, -np.inf], np.nan).fillna(1.0)
        out[f"amount_ratio_{window}"] = ratio
        out[f"log_amount_ratio_{window}"] = np.log(ratio.clip(lower=1e-3))
    out = out.fillna(0.0)
    for name in ("txn_count_1h", "txn_count_24h", "amount_sum_24h", "chargeback_count_30d"):
        out[f"log1p_{name}"] = np.log1p(out[name].clip(lower=0))
    for name, vocabulary in _ONE_HOT.items():
        values = frame[name].astype("str")
        for value in vocabulary:
            out[f"{name}={value}"] = (values == value).to_numpy(dtype=np.float64)
    return out


@dataclass(frozen=True, kw_only=True)
class ModelReport:
    """A fitted model and its test AUC."""

    kind: str
    auc: float
    n_train: int
    n_test: int
    test_positives: int
    features: tuple[str, ...]
    estimator: Any = field(repr=False, compare=False)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Fraud probability for each row of a training-set-shaped frame."""
        return self.estimator.predict_proba(feature_matrix(frame)[list(self.features)])[:, 1]

    def auc_on(self, frame: pd.DataFrame) -> float:
        """ROC AUC of this model on another labelled frame."""
        require_columns(frame, ("is_fraud",), table="frame")
        return float(roc_auc_score(frame["is_fraud"].astype(int), self.predict_proba(frame)))


def fit_evaluate(train: pd.DataFrame, test: pd.DataFrame, *, model: str = "logistic",
                 seed: int = 0) -> ModelReport:
    """Fit ``model`` ("hgb" or "logistic") on ``train`` and report ROC AUC on ``test``.

    Examples
    --------
    >>> from mlops_kit.datasets import Scenario, generate_world, time_split
    >>> split = time_split(training_set(generate_world(Scenario.small(), seed=0)))
    >>> 0.5 < fit_evaluate(split.train, split.test).auc <= 1.0
    True
    """
    if model not in MODEL_KINDS:
        raise ValidationError(f"fit_evaluate: unknown model {model!r}.",
                              fix=f"Use one of {MODEL_KINDS}.", model=model)
    for name, frame in (("train", train), ("test", test)):
        require_columns(frame, ("is_fraud",), table=name)
        if frame["is_fraud"].nunique() < 2:
            raise ValidationError(f"fit_evaluate: {name} holds a single class ({len(frame)} rows).",
                                  fix="Use a larger world or a later cutoff so both classes appear.")
    x_train, x_test = feature_matrix(train), feature_matrix(test)
    y_train = train["is_fraud"].astype(int).to_numpy()
    if model == "hgb":
        estimator = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.08, max_leaf_nodes=15,
                                                   l2_regularization=1.0, early_stopping=False,
                                                   random_state=seed)
    else:
        estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    estimator.fit(x_train, y_train)
    scores = estimator.predict_proba(x_test)[:, 1]
    return ModelReport(kind=model, auc=float(roc_auc_score(test["is_fraud"].astype(int), scores)),
                       n_train=len(train), n_test=len(test),
                       test_positives=int(test["is_fraud"].sum()),
                       features=tuple(x_train.columns), estimator=estimator)


def leakage_experiment(world: World, *, model: str = "logistic", seed: int = 0,
                       test_share: float = 0.5) -> dict[str, Any]:
    """Offline leaky AUC vs offline point-in-time AUC vs the AUC each model gets in production.

    The rows are split in time: training (first ``1 - test_share``), then the later part
    halved into an offline test period and a production period. In production a model
    sees the features the scoring service had (the point-in-time values), whatever it
    was trained on.

    Returns
    -------
    dict
        ``offline_leaky_auc``, ``offline_pit_auc``, ``production_leaky_auc``,
        ``production_pit_auc``, ``leakage_gap`` (offline leaky minus offline PIT), row counts
        and the two cutoffs.
    """
    if model not in MODEL_KINDS:
        raise ValidationError(f"leakage_experiment: unknown model {model!r}.",
                              fix=f"Use one of {MODEL_KINDS}.", model=model)
    if isinstance(test_share, bool) or not isinstance(test_share, (int, float)) or not 0.1 <= test_share <= 0.8:
        raise ValidationError(f"leakage_experiment: test_share must be in [0.1, 0.8], got {test_share!r}.",
                              fix="Pass e.g. test_share=0.5 (half for offline test and production).")
    if not isinstance(world, World):
        raise ValidationError(f"leakage_experiment: expected a World, got {type(world).__name__}.",
                              fix="Pass the result of generate_world(...).")
    stats = user_transaction_stats(world)  # shared: the user stats are honest in both sets
    honest, leaky = _assemble(world, stats, leaky=False), _assemble(world, stats, leaky=True)
    first = time_split(honest, test_share=test_share)
    later = time_split(first.test, test_share=0.5)
    cut1, cut2 = pd.Timestamp(first.cutoff), pd.Timestamp(later.cutoff)

    def period(frame: pd.DataFrame, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> pd.DataFrame:
        ts = frame["event_timestamp"]
        mask = np.ones(len(frame), dtype=bool)
        if lo is not None:
            mask &= (ts >= lo).to_numpy()
        if hi is not None:
            mask &= (ts < hi).to_numpy()
        return frame[mask]

    pit = fit_evaluate(period(honest, None, cut1), period(honest, cut1, cut2), model=model, seed=seed)
    lk = fit_evaluate(period(leaky, None, cut1), period(leaky, cut1, cut2), model=model, seed=seed)
    production = period(honest, cut2, None)
    result = {
        "model": model,
        "offline_leaky_auc": lk.auc,
        "offline_pit_auc": pit.auc,
        "production_leaky_auc": lk.auc_on(production),
        "production_pit_auc": pit.auc_on(production),
        "n_train": pit.n_train, "n_offline_test": pit.n_test, "n_production": len(production),
        "train_cutoff": first.cutoff.isoformat(), "production_from": later.cutoff.isoformat(),
    }
    result["leakage_gap"] = result["offline_leaky_auc"] - result["offline_pit_auc"]
    return result
