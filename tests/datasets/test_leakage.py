"""Leakage: point-in-time features learn fraud; leaky ones inflate offline AUC.

The two training sets are built HERE with pandas ``merge_asof`` straight from the raw
world tables, sharing no code with ``mlops_kit.datasets.pipelines``: "known at T" means
ingested by T (transactions), received by T (chargebacks), in effect at T (profiles).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops_kit.datasets import Scenario, generate_world, leakage_experiment


@pytest.fixture(scope="module")
def world():
    return generate_world(Scenario.default(), seed=0)


def _cumulative(events: pd.DataFrame, key: str, time_col: str, value_cols: list[str]) -> pd.DataFrame:
    """Per key, running totals of value_cols ordered by time_col (a step function of time)."""
    ordered = events.sort_values([time_col]).copy()
    for col in value_cols:
        ordered[f"cum_{col}"] = ordered.groupby(key)[col].cumsum()
    ordered = ordered[[key, time_col] + [f"cum_{c}" for c in value_cols]]
    return ordered.rename(columns={time_col: "t"})


def _as_of(rows: pd.DataFrame, steps: pd.DataFrame, key: str, at: pd.Series, strict: bool) -> pd.DataFrame:
    """Running totals of ``steps`` for each row's key at time ``at`` (<= at, or < at if strict)."""
    query = pd.DataFrame({"_i": np.arange(len(rows)), key: rows[key].to_numpy(), "t": at.to_numpy()})
    query = query.sort_values("t")
    joined = pd.merge_asof(query, steps, on="t", by=key, allow_exact_matches=not strict)
    joined = joined.sort_values("_i").reset_index(drop=True)
    return joined.drop(columns=["_i", key, "t"]).fillna(0.0)


def build_training_set(world, *, leaky: bool) -> pd.DataFrame:
    txn = world.transactions.sort_values(["transaction_id", "ingested_at"]).drop_duplicates("transaction_id")
    rows = txn.merge(world.labels, on="transaction_id").sort_values("event_timestamp").reset_index(drop=True)
    t = rows["event_timestamp"]
    out = pd.DataFrame({"is_fraud": rows["is_fraud"].astype(int), "log_amount": np.log(rows["amount"])})
    for cat in sorted(rows["merchant_category"].unique()):
        out[f"cat_{cat}"] = (rows["merchant_category"] == cat).astype(float)
    out["online"] = (rows["channel"] == "online").astype(float)

    # user velocity: transactions the service had INGESTED in the last hour / day / week
    ev = txn.assign(one=1.0)
    steps = _cumulative(ev, "user_id", "ingested_at", ["one", "amount"])
    for name, width in (("1h", "1h"), ("24h", "24h"), ("7d", "7D")):
        now = _as_of(rows, steps, "user_id", t, strict=True)
        then = _as_of(rows, steps, "user_id", t - pd.Timedelta(width), strict=True)
        out[f"n_{name}"] = np.log1p(now["cum_one"] - then["cum_one"])
        if name == "7d":
            count = (now["cum_one"] - then["cum_one"]).to_numpy()
            avg = np.where(count > 0, (now["cum_amount"] - then["cum_amount"]).to_numpy() / np.maximum(count, 1), np.nan)
            out["log_ratio_7d"] = np.nan_to_num(np.log(rows["amount"].to_numpy() / avg), nan=0.0)

    # merchant fraud: chargebacks RECEIVED (honest) or fraud that HAPPENED (leaky) in 30 days
    fraud = txn.merge(world.labels, on="transaction_id")
    fraud = fraud[fraud["is_fraud"]].assign(one=1.0)
    when = "event_timestamp" if leaky else "label_timestamp"
    cb = _cumulative(fraud, "merchant_id", when, ["one"])
    now = _as_of(rows, cb, "merchant_id", t, strict=True)
    then = _as_of(rows, cb, "merchant_id", t - pd.Timedelta("30D"), strict=True)
    out["merchant_fraud_30d"] = np.log1p(now["cum_one"] - then["cum_one"])

    # account status and risk tier: in effect at T (honest) or today's (leaky)
    profiles = world.profiles.sort_values("valid_from")
    if leaky:
        current = profiles.groupby("user_id").tail(1).set_index("user_id")
        state = current.reindex(rows["user_id"])[["account_status", "risk_tier"]].reset_index(drop=True)
    else:
        q = pd.DataFrame({"_i": np.arange(len(rows)), "user_id": rows["user_id"], "t": t})
        p = profiles.rename(columns={"valid_from": "t"})[["user_id", "t", "account_status", "risk_tier"]]
        state = pd.merge_asof(q.sort_values("t"), p, on="t", by="user_id").sort_values("_i").reset_index(drop=True)
    out["restricted"] = (state["account_status"] == "restricted").astype(float)
    out["tier_high"] = (state["risk_tier"] == "high").astype(float)
    out["tier_medium"] = (state["risk_tier"] == "medium").astype(float)
    out["event_timestamp"] = t
    return out


def _auc(frame: pd.DataFrame, cutoff: pd.Timestamp) -> float:
    train, test = frame[frame["event_timestamp"] < cutoff], frame[frame["event_timestamp"] >= cutoff]
    cols = [c for c in frame.columns if c not in ("is_fraud", "event_timestamp")]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(train[cols], train["is_fraud"])
    return float(roc_auc_score(test["is_fraud"], model.predict_proba(test[cols])[:, 1]))


def test_leaky_features_inflate_offline_auc_over_point_in_time(world):
    honest = build_training_set(world, leaky=False)
    leaky = build_training_set(world, leaky=True)
    cutoff = honest["event_timestamp"].quantile(0.6)
    pit_auc, leaky_auc = _auc(honest, cutoff), _auc(leaky, cutoff)
    message = f"point-in-time AUC={pit_auc:.3f}, leaky AUC={leaky_auc:.3f}, gap={leaky_auc - pit_auc:+.3f}"
    print(message)
    assert pit_auc >= 0.75, message
    assert leaky_auc - pit_auc >= 0.05, message


def test_package_leakage_experiment_tells_the_same_story(world):
    result = leakage_experiment(world)
    message = ", ".join(f"{k}={v:.3f}" for k, v in result.items() if k.endswith("auc") or k.endswith("gap"))
    print(message)
    assert result["offline_pit_auc"] >= 0.75, message
    assert result["leakage_gap"] >= 0.05, message
    # the leaky model's offline promise does not survive production; the PIT estimate is closer
    offline_error_leaky = result["offline_leaky_auc"] - result["production_leaky_auc"]
    offline_error_pit = abs(result["offline_pit_auc"] - result["production_pit_auc"])
    assert offline_error_leaky > offline_error_pit + 0.05, message
    assert result["production_leaky_auc"] <= result["production_pit_auc"] + 0.01, message


def test_fit_evaluate_and_experiment_refuse_bad_input(world):
    from mlops_kit.datasets import fit_evaluate, time_split, training_set
    from mlops_kit.errors import ValidationError

    with pytest.raises(ValidationError, match="unknown model"):
        leakage_experiment(world, model="forest")
    with pytest.raises(ValidationError, match="test_share"):
        leakage_experiment(world, test_share=0.99)
    small = generate_world(Scenario.small(), seed=0)
    split = time_split(training_set(small))
    with pytest.raises(ValidationError, match="single class"):
        fit_evaluate(split.train[~split.train["is_fraud"]], split.test)
    report = fit_evaluate(split.train, split.test, model="hgb")
    assert 0.5 < report.auc <= 1 and report.auc_on(split.test) == pytest.approx(report.auc)
