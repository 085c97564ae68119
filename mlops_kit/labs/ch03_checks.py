"""Chapter 3 lab helpers: the source's catalog entry, a quick training step, the triage cases and
the checks of the two exercises (each returns a list of problems; empty means right)."""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["register_source", "quick_model", "triage_cases", "gate_verdict", "access_verdict", "level_of", "responses_verdict",
           "check_null_check", "check_critical_rules", "policy_with"]

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


def triage_cases(cases: dict[str, tuple[Any, Callable[[pd.DataFrame], pd.Series] | None]], *, drift_at: float,
                 parity_at: float, label_at: float) -> pd.DataFrame:
    """Measure each drift alarm on ``amount`` and triage it with :func:`ch03.triage` and these thresholds.

    ``cases`` maps a name to ``(world, online)``: ``online(current) -> Series`` is what the serving
    path received for the current window's transactions (``None``: the same values as offline,
    i.e. a healthy serving path). Measured: offline PSI, online PSI, the share of transactions
    whose online value differs from offline, the shift of the fraud mix, the worst segment online.
    """
    if not isinstance(cases, dict) or not cases:
        raise ValidationError("triage_cases: cases must be a non-empty dict name -> (world, online).",
                              fix="Pass e.g. {'serving bug': (data.default, serving_bug)}.")
    rows = []
    for case, (world, online_of) in cases.items():
        if online_of is not None and not callable(online_of):
            raise ValidationError(f"triage_cases: the online path of {case!r} must be callable or None.",
                                  fix="Pass a function current_frame -> Series of served amounts.")
        ref, cur = ch03.drift_frames(world)
        online = cur["amount"].copy() if online_of is None else pd.Series(online_of(cur), index=cur.index)
        measured = {"offline_psi": round(psi(ref["amount"], cur["amount"]), 4),
                    "online_psi": round(psi(ref["amount"], online), 4),
                    "parity_mismatch": round(float((online != cur["amount"]).mean()), 4),
                    "label_shift": ch03.label_shift(ref, cur)["fraud_mix_tvd"]}
        segment_psi = {s: round(psi(ref.loc[ref["segment"] == s, "amount"], online[cur["segment"] == s]), 3)
                       for s in sorted(cur["segment"].unique())}
        verdict = ch03.triage(**measured, drift_at=drift_at, parity_at=parity_at, label_at=label_at)
        rows.append({"case": case, **measured, "worst_segment_online": max(segment_psi, key=segment_psi.get),
                     "worst_segment_psi": max(segment_psi.values()), **verdict})
    return pd.DataFrame(rows)


def gate_verdict(first: dict[str, Any], second: dict[str, Any], trainings: list[int], fixed: pd.DataFrame,
                 *, null_check_id: str) -> dict[str, Any]:
    """``rec.check`` arguments for the quality gate: the broken delivery blocked before training with
    every blocking failure listed (the learner's null check among them) while the global null check
    stays green; training ran once, on the fixed delivery."""
    error = first.get("error")
    blocking = sorted(r["check_id"] for r in error.details["failures"]) if error is not None else []
    overall = [r for r in first["report"].results if r.check_id == "amount_nulls_overall"]
    green = bool(overall) and overall[0].verdict == "pass"
    passed = (not first["trained"] and len(blocking) >= 3 and null_check_id in blocking and green
              and second["trained"] and trainings == [len(fixed)])
    return dict(passed=bool(passed), observed={"blocking": blocking, "trainings": list(trainings),
                                               "global_null_rate": round(overall[0].observed, 4) if overall else None},
                threshold=">= 3 blocking failures incl. your null check, training not reached on the broken delivery",
                detail="the gate lists every blocking failure of the broken delivery at once while the global null "
                       "check stays green; training ran only on the fixed delivery",
                look_at="transactions_suite: severities and segment_by; gated_training")


def access_verdict(attempts: list[dict[str, Any]], read_log: pd.DataFrame, *, view: str = "card_holder"
                   ) -> dict[str, Any]:
    """``rec.check`` arguments for the restricted view: refused to an anonymous reader and to a
    service without a grant, read after the grant, and every attempt in the read log."""
    allowed = [bool(a["allowed"]) for a in attempts]
    logged = read_log[read_log["view"] == view]["outcome"].tolist()
    return dict(passed=allowed == [False, False, True] and logged == ["denied", "denied", "allowed"],
                observed=logged, threshold="denied, denied, allowed",
                detail=f"the restricted {view} view was refused to an anonymous reader and to a service without "
                       "a grant, read after the grant, and every attempt is in the read log",
                look_at="Governance.grant and the principal passed to get_historical_features")


def level_of(psi_value: float | None, verdict: str) -> str:
    """The drift level the chapter states: inconclusive, else major at PSI >= 0.25, moderate at
    PSI >= 0.1 or a failed test, none otherwise."""
    if verdict == "inconclusive" or psi_value is None:
        return "inconclusive"
    if psi_value >= 0.25:
        return "major"
    return "moderate" if psi_value >= 0.1 or verdict == "drift" else "none"


def responses_verdict(rows: pd.DataFrame, rules: dict[str, str]) -> dict[str, Any]:
    """``rec.check`` arguments for a response table of a critical feature: every row's action is
    ``rules[level]`` with the level recomputed from its PSI and test verdict, and the table holds a
    row the test flags while PSI stays under 0.1 (the case a PSI-only policy answers with silence)."""
    expected = [rules[level_of(r.psi, r.verdict)] for r in rows.itertuples()]
    wrong = [f"x{1 + r.magnitude:.2f}: {r.action} (expected {e})" for r, e in zip(rows.itertuples(), expected)
             if r.action != e]
    test_only = [float(r.magnitude) for r in rows.itertuples() if r.verdict == "drift" and r.psi < 0.1]
    return dict(passed=not wrong and bool(test_only), observed={"wrong": wrong, "test_only_magnitudes": test_only},
                threshold="every action = your rule for the level of PSI and test verdict; >= 1 test-only drift row",
                detail="the response follows the drift level of both the PSI and the drift test",
                look_at="ch03.drift_at and ResponsePolicy.evaluate(psi=..., test_failed=...)")


def check_null_check(check: Any, broken: pd.DataFrame, fixed: pd.DataFrame, *, owner: str | None = None
                     ) -> list[str]:
    """Exercise 3.1: a blocking, segmented null-rate check on amount that stops the broken
    delivery and lets the fixed one through; with ``owner`` (the producer the catalog lists for
    the table), the check's owner must name that team first (a contact may follow)."""
    if owner is not None and (not isinstance(owner, str) or not owner.strip()):
        raise ValidationError(f"check_null_check: owner must be a non-empty team name, got {owner!r}.",
                              fix="Pass the catalog's owner of the source, e.g. gov.entry(ch03.SOURCE).owner.")
    if check is None:
        return ["null_check is not defined yet: complete exercise 3.1 above"]
    if not isinstance(check, NullRateCheck):
        return [f"expected a NullRateCheck, got {type(check).__name__}"]
    problems = []
    if owner is not None and check.owner.split()[:1] != [owner.strip()]:
        problems.append(f"the owner is {check.owner!r}; a blocking failure of this table goes to the team that "
                        "produces it (the catalog entry printed above)")
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
        problems.append("'none': a stable feature should not open work for anyone (alert fatigue)")
    if rank(critical_rules["moderate"]) < rank("ticket") or critical_rules["moderate"] == "mitigate":
        problems.append("'moderate': a possible shift on a critical feature needs a person to look soon, and is not "
                        "sure enough for an automatic action")
    if critical_rules["major"] != "mitigate":
        problems.append("'major': a critical feature that certainly moved keeps harming decisions while a person "
                        "is being found")
    if rank(critical_rules["inconclusive"]) < rank("ticket"):
        problems.append("'inconclusive': the monitor cannot see a critical feature; that is not the same as 'none'")
    return problems
