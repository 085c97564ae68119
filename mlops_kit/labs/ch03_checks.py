"""Chapter 3 lab helpers: the source's catalog entry, a quick training step, the triage cases and
the checks of the two exercises (each returns a list of problems; empty means right)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ..datasets import _catalog as C
from ..errors import DefinitionError, ValidationError
from ..quality import NullRateCheck, QualitySuite, ResponsePolicy, psi
from ..quality.response import ACTIONS, DRIFT_LEVELS
from . import ch03

__all__ = ["register_source", "quick_model", "triage_cases", "check_null_check", "check_critical_rules",
           "policy_with"]

CONSUMERS = (("user_activity", "pipeline"), ("fraud_scorer", "model"), ("chargeback_forecast", "model"))


def register_source(governance: Any) -> list[str]:
    """Put the upstream table in the catalog with its consumers; returns its blast radius."""
    source = SimpleNamespace(name=ch03.SOURCE, version=1, sensitivity="sensitive", owner="payments-data",
                             description="card transactions as delivered by the payments platform",
                             tags={"domain": "payments", "layer": "source"})
    governance.register(source)
    for consumer, kind in CONSUMERS:
        governance.add_consumer(ch03.SOURCE, consumer, actor="fraud-ml", kind=kind)
    return governance.blast_radius(ch03.SOURCE)


def quick_model(batch: pd.DataFrame, labels: pd.DataFrame, *, seed: int = 0) -> dict[str, Any]:
    """The training step behind the gate: a logistic scorer on the delivery, AUC on its last 2 days."""
    if batch["amount"].isna().any():
        raise ValidationError("quick_model: amount holds nulls.", fix="Train only on data that passed the gate.")
    frame = batch.merge(labels[["transaction_id", "is_fraud"]], on="transaction_id", how="inner")
    x = pd.DataFrame({"log_amount": np.log1p(frame["amount"].to_numpy(dtype=float))})
    for col, vocab in (("channel", C.CHANNELS), ("merchant_category", C.CATEGORIES)):
        for value in vocab:
            x[f"{col}={value}"] = (frame[col] == value).astype(float)
    y = frame["is_fraud"].astype(int).to_numpy()
    split = frame["event_timestamp"] < frame["event_timestamp"].max().normalize() - pd.Timedelta(days=1)
    model = LogisticRegression(max_iter=500, random_state=seed).fit(x[split.to_numpy()], y[split.to_numpy()])
    test = ~split.to_numpy()
    auc = roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]) if len(set(y[test])) == 2 else float("nan")
    return {"rows": int(len(frame)), "auc": round(float(auc), 4)}


def triage_cases(data: Any, *, bug_segment: str = "business") -> pd.DataFrame:
    """Three drift alarms on ``amount`` and their triage.

    * covariate drift world: offline and online see the same shift, serving agrees;
    * default world, serving bug: for one segment the online path receives minor units
      (cents) after a payments API change, offline is untouched;
    * concept drift world: no feature moves, the fraud mix by merchant category does.
    """
    rows = []
    for case, world in (("covariate drift", data.covariate), ("serving bug", data.default),
                        ("concept drift", data.concept)):
        ref, cur = ch03.drift_frames(world)
        online = cur["amount"].copy()
        if case == "serving bug":
            online[cur["segment"] == bug_segment] *= 100
        shift = ch03.label_shift(ref, cur)["fraud_mix_tvd"]
        measured = {"offline_psi": round(psi(ref["amount"], cur["amount"]), 4),
                    "online_psi": round(psi(ref["amount"], online), 4),
                    "parity_mismatch": round(float((online != cur["amount"]).mean()), 4),
                    "label_shift": shift}
        segment_psi = {s: round(psi(ref.loc[ref["segment"] == s, "amount"], online[cur["segment"] == s]), 3)
                       for s in sorted(cur["segment"].unique())}
        verdict = ch03.triage(**measured)
        rows.append({"case": case, **measured, "worst_segment_online": max(segment_psi, key=segment_psi.get),
                     "worst_segment_psi": max(segment_psi.values()), **verdict})
    return pd.DataFrame(rows)


def check_null_check(check: Any, broken: pd.DataFrame, fixed: pd.DataFrame) -> list[str]:
    """Exercise 3.1: a blocking, segmented null-rate check on amount that stops the broken
    delivery and lets the fixed one through."""
    if check is None:
        return ["null_check is not defined yet: complete exercise 3.1 above"]
    if not isinstance(check, NullRateCheck):
        return [f"expected a NullRateCheck, got {type(check).__name__}"]
    problems = []
    if check.column != "amount":
        problems.append(f"the check watches {check.column!r}; the broken column is 'amount'")
    if check.severity != "block":
        problems.append("severity is 'warn': null amounts break training, so the check must block")
    if "segment" not in check.segment_by:
        problems.append("no segment_by=('segment',): a global rate averages the broken segment away")
    if check.max_rate > 0.05:
        problems.append(f"max_rate {check.max_rate} tolerates more than 5 % missing amounts")
    if not problems:
        suite = QualitySuite(view=ch03.SOURCE, checks=[check])
        on_broken = suite.run(broken).results[0].verdict
        on_fixed = suite.run(fixed).results[0].verdict
        if on_broken != "fail":
            problems.append(f"on the broken delivery the check says {on_broken!r}, expected 'fail'")
        if on_fixed != "pass":
            problems.append(f"on the fixed delivery the check says {on_fixed!r}, expected 'pass'")
    return problems


def policy_with(critical_rules: dict[str, str]) -> ResponsePolicy:
    """The default policy with the learner's row for critical features."""
    rules = {c: dict(r) for c, r in ResponsePolicy.default().rules.items()}
    rules["critical"] = dict(critical_rules)
    return ResponsePolicy(rules=rules, name="chapter-3")


def check_critical_rules(critical_rules: Any) -> list[str]:
    """Exercise 3.2: the drift responses for a critical feature."""
    if critical_rules is None:
        return ["critical_rules is not defined yet: complete exercise 3.2 above"]
    if not isinstance(critical_rules, dict):
        return [f"expected a dict level -> action, got {type(critical_rules).__name__}"]
    if set(critical_rules) != set(DRIFT_LEVELS):
        return [f"give an action for exactly the levels {list(DRIFT_LEVELS)}, got {sorted(critical_rules)}"]
    bad = {k: v for k, v in critical_rules.items() if v not in ACTIONS}
    if bad:
        return [f"unknown action(s) {bad}; use {list(ACTIONS)}"]
    try:
        policy_with(critical_rules)
    except DefinitionError as exc:
        return [str(exc).split(" Fix:")[0]]
    problems = []
    rank = ACTIONS.index
    if rank(critical_rules["none"]) > rank("log"):
        problems.append("no drift on a critical feature should not open tickets or page anyone (alert fatigue)")
    if critical_rules["moderate"] not in ("ticket", "page"):
        problems.append("moderate drift on a critical feature needs a human soon: 'ticket' or 'page'")
    if critical_rules["major"] != "mitigate":
        problems.append("major drift on a critical feature: fall back automatically ('mitigate')")
    if rank(critical_rules["inconclusive"]) < rank("ticket"):
        problems.append("'inconclusive' means the monitor is blind on a critical feature: at least a ticket")
    return problems
