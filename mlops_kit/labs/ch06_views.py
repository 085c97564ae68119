"""Chapter 6 lab: the tables, figures and write-ups the capstone notebook shows and records.

The notebook keeps its cells short by calling these: each function assembles one table, one
set of dashboard panels, or one drill's corrective actions and postmortem from objects the
notebook already holds. Nothing here decides a check; the notebook's ``rec.check`` calls do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from ..errors import MlopsKitError
from ..rollout import CorrectiveAction, guardrail_covers, incident_report, plot_traffic_split, postmortem_markdown
from .ch06 import MODEL
from .ch06_ops import REVIEW_THRESHOLD, first_times

__all__ = ["set_table", "model_table", "try_unreviewed", "attempt", "approvals_table", "lifecycle_stages", "attestation_table",
           "dashboard_figures", "psi_samples", "dashboard_summary", "detect_minutes", "registry_rollbacks", "outage_actions",
           "drift_actions", "write_up", "drill_summary", "alias_history_table"]


def set_table(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per point-in-time set: rows, first and last event date, fraud rate (4 decimals)."""
    return pd.DataFrame([{"set": k, "rows": len(v), "from": v["event_timestamp"].min().date(),
                          "to": v["event_timestamp"].max().date(), "fraud_rate": round(float(v["is_fraud"].mean()), 4)}
                         for k, v in frames.items()])


def model_table(reports: Mapping[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per model report: number of inputs, eval AUC and the AUC of each segment."""
    return pd.DataFrame([{"model": n, "inputs": len(r["parameters"]["inputs"]), "eval_auc": r["auc"],
                          **{k: v["auc"] for k, v in r["segment_metrics"].items()}} for n, r in reports.items()])


def try_unreviewed(registry: Any, version: int, *, author: str = "dana") -> list[dict[str, Any]]:
    """The author tries two shortcuts for ``version``; returns whether the registry refused each.

    1. "skip the stages": promote straight to ``approved-prod``;
    2. "approve own model": approve it as ``ml-owner``.
    A refusal is a :class:`MlopsKitError`; its class name is recorded as ``error``.
    """
    attempts = []
    for step in ("skip the stages", "approve own model"):
        try:
            if step == "skip the stages":
                registry.promote(MODEL, version, "approved-prod", actor=author, reason="ship it")
            else:
                registry.approve(MODEL, version, actor=author, role="ml-owner", note="looks good to me")
            attempts.append({"attempt": step, "refused": False, "error": ""})
        except MlopsKitError as exc:
            attempts.append({"attempt": step, "refused": True, "error": type(exc).__name__})
    return attempts


def attempt(step: str, action: Any) -> dict[str, Any]:
    """Run one shortcut ``action()``; a :class:`MlopsKitError` is a refusal (its class name is kept)."""
    try:
        action()
        return {"attempt": step, "refused": False, "error": ""}
    except MlopsKitError as exc:
        return {"attempt": step, "refused": True, "error": type(exc).__name__}


def approvals_table(registry: Any, version: int) -> pd.DataFrame:
    """The approvals recorded for ``version``: actor, role, note."""
    return pd.DataFrame([{"actor": a.actor, "role": a.role, "note": a.note} for a in registry.approvals(MODEL, version)])


def lifecycle_stages(*, feat: Mapping[str, int], frames: Mapping[str, pd.DataFrame], snap: Mapping[str, tuple[Any, str]],
                     report: dict[str, Any], version: int, refused: bool, approvals: pd.DataFrame, result: Any,
                     deployed: int, parity_ok: bool, leak_rate: float, auc_floor: float) -> list[dict[str, str]]:
    """The six lifecycle stages of section 6.1, each with ``status`` ok/failed and a one-line detail.

    features is ok when rows were ingested and offline/online parity held (``parity_ok``); training
    set when it has rows and none uses a feature row from after its time (``leak_rate`` 0); model when
    its eval AUC reaches ``auc_floor``; registry when both shortcuts were refused and two approvals
    exist; canary when it completed and ``deployed`` is ``version``; monitoring when no guardrail
    measurement failed.
    """
    verdicts = result.measurements["verdict"]
    ok = {True: "ok", False: "failed"}
    return [
        {"stage": "features", "status": ok[feat["user_daily"] > 0 and feat["user_profile"] > 0 and bool(parity_ok)],
         "detail": f"{feat['user_daily']} daily rows, {feat['user_profile']} profile rows, parity ok: {bool(parity_ok)}"},
        {"stage": "training set", "status": ok[len(frames["train"]) > 0 and leak_rate == 0],
         "detail": f"{len(frames['train'])} rows, leakage rate {leak_rate:g}, snapshot {snap['train'][1][:12]}"},
        {"stage": "model", "status": ok[report["auc"] >= auc_floor], "detail": f"eval AUC {report['auc']:.3f} (floor {auc_floor:g})"},
        {"stage": "registry", "status": "ok" if refused and len(approvals) == 2 else "failed",
         "detail": f"v{version}: gates attested, approvals {sorted(approvals['role'])}"},
        {"stage": "canary", "status": "ok" if result.status == "completed" and deployed == version else "failed",
         "detail": f"{result.status}; deployed-prod v{deployed}"},
        {"stage": "monitoring", "status": "ok" if not (verdicts == "fail").any() else "failed",
         "detail": f"{len(result.measurements)} guardrail measurements, {int((verdicts == 'fail').sum())} failed"},
    ]


def attestation_table(registry: Any, versions: Sequence[int]) -> pd.DataFrame:
    """Every policy attestation of ``versions``: version, stage, policy, verdict, reason."""
    return pd.DataFrame([{"version": a.version, "stage": a.stage, "policy": a.policy_id, "verdict": a.verdict,
                          "reason": a.reason} for v in versions for a in registry.attestations(MODEL, v)])


def _panel(title: str) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.set_title(title)
    return fig, ax


def dashboard_figures(result: Any, hourly: pd.DataFrame, fresh: pd.DataFrame, skew: pd.DataFrame, *,
                      ttl_h: float = 48.0) -> dict[str, Any]:
    """The seven dashboard panels (name -> figure, laid out tight), in the order of the checklist.

    traffic_split, latency (p95/p99, 150 ms guardrail), missing_features (missing-feature and
    error rates), prediction_psi (conclusive 6 h measurements, 0.25 line), kpi_proxy (decline
    rate per arm), feature_freshness (the view's TTL, ``ttl_h``) and training_serving_skew (PSI per input, 0.1 line).
    """
    ms = result.measurements
    figs = {"traffic_split": plot_traffic_split(result, title="release canary: traffic split by arm")}
    fig, ax = _panel("prediction latency")
    ax.plot(hourly["hour"], hourly["latency_p95_ms"], label="p95"); ax.plot(hourly["hour"], hourly["latency_p99_ms"], label="p99")
    ax.axhline(150, color="red", ls="--", lw=1, label="p99 guardrail"); ax.set_ylabel("ms"); ax.legend()
    figs["latency"] = fig
    fig, ax = _panel("feature retrieval and errors")
    ax.plot(hourly["hour"], hourly["missing_feature_rate"], label="missing-feature rate")
    ax.plot(hourly["hour"], hourly["error_rate"], label="error rate"); ax.set_ylim(0, 1); ax.legend()
    figs["missing_features"] = fig
    fig, ax = _panel("prediction PSI over 6 h windows (conclusive measurements only)")
    for name in ("input-drift", "candidate-shift"):
        m = ms[(ms["guardrail"] == name) & ms["value"].notna() & (ms["verdict"] != "inconclusive")]
        ax.plot(m["time"], m["value"], ".-", ms=2, label=name)
    ax.axhline(0.25, color="red", ls="--", lw=1, label="threshold"); ax.legend()
    figs["prediction_psi"] = fig
    fig, ax = _panel(f"KPI proxy: share of payments declined for review (score >= {REVIEW_THRESHOLD}), by arm")
    for arm in ("stable", "candidate"):
        ax.plot(hourly["hour"], hourly[f"decline_rate_{arm}"], label=f"decline rate: {arm}")
    ax.legend()
    figs["kpi_proxy"] = fig
    fig, ax = _panel("feature freshness (daily job at 00:05)")
    ax.plot(fresh["hour"], fresh["feature_age_h"], label="age of served features (h)")
    ax.axhline(ttl_h, color="red", ls="--", lw=1, label="TTL"); ax.legend()
    figs["feature_freshness"] = fig
    fig, ax = _panel("training-serving skew: PSI of each input, training vs served")
    ax.bar(skew["feature"], skew["psi_train_vs_served"]); ax.axhline(0.1, color="red", ls="--", lw=1)
    ax.tick_params(axis="x", rotation=30)
    figs["training_serving_skew"] = fig
    for fig in figs.values():
        fig.tight_layout()
    return figs


def psi_samples(requests: pd.DataFrame, warm_end: Any) -> pd.DataFrame:
    """The two score samples of the prediction-PSI panel, scores rounded to 10 decimals.

    ``reference``: the stable arm's scores before ``warm_end``; ``current``: every score of the
    last six hours of the log.
    """
    ref = requests.loc[(requests["event_timestamp"] < warm_end) & (requests["arm"] == "stable"), "score"]
    cur = requests.loc[requests["event_timestamp"] >= requests["event_timestamp"].max() - pd.Timedelta(hours=6), "score"]
    return pd.concat([pd.DataFrame({"sample": "reference", "score": ref.round(10)}),
                      pd.DataFrame({"sample": "current", "score": cur.round(10)})], ignore_index=True)


def dashboard_summary(figs: Mapping[str, Any], pred_psi: float, skew: pd.DataFrame, fresh: pd.DataFrame,
                      hourly: pd.DataFrame) -> dict[str, Any]:
    """The ``dashboard`` artifact: panel files, prediction PSI (10 bins) and the worst value of each panel."""
    return {"panels": {n: f"dash_{n}.png" for n in figs}, "psi": {"value": pred_psi, "bins": 10},
            "max_skew_psi": float(skew["psi_train_vs_served"].max()), "max_feature_age_h": float(fresh["feature_age_h"].max()),
            "p99_ms_max": float(hourly["latency_p99_ms"].max()), "missing_rate_max": float(hourly["missing_feature_rate"].max())}


def detect_minutes(first_alert: Any, fault_start: Any) -> float | None:
    """Minutes from the fault's start to the first alert; ``None`` when nothing alerted."""
    if first_alert is None:
        return None
    return (pd.Timestamp(first_alert) - pd.Timestamp(fault_start)).total_seconds() / 60


def registry_rollbacks(registry: Any) -> list[Any]:
    """Every ``rollback`` move of ``deployed-prod`` in the registry's alias history."""
    return [e for e in registry.alias_history(MODEL, "deployed-prod") if e.action == "rollback"]


def outage_actions(guards: Sequence[Any], registry: Any, result: Any, *, contained: Any, recovered: Any,
                   fault_start: Any = None, detect_within: timedelta = timedelta(hours=1),
                   rollbacks_before: int = 0) -> list[CorrectiveAction]:
    """The outage drill's corrective actions, each an executable check.

    CA-O1 a ``fallback`` guardrail of ``guards`` fired within ``detect_within`` of ``fault_start``
    (its settings are the ones the drill ran with); CA-O2 >= 95 % of requests from 15 min after
    ``contained`` until ``recovered`` came from the fallback; CA-O3 the registry holds no rollback
    of ``deployed-prod`` beyond the ``rollbacks_before`` it held when the drill started.
    """
    req, ev = result.requests, result.events
    during = req[(req["event_timestamp"] >= pd.Timestamp(contained) + pd.Timedelta(minutes=15))
                 & (req["event_timestamp"] < pd.Timestamp(recovered))] if contained is not None else req.iloc[:0]
    fallbacks = [g for g in guards if getattr(g, "action", None) == "fallback"]
    names = ", ".join(f"{g.name} ({g.metric} > {g.threshold:g} over {g.window}, {g.arm})" for g in fallbacks) or "none"
    start = pd.Timestamp(fault_start) if fault_start is not None else req["event_timestamp"].min()
    fired = ev[(ev["kind"] == "alert") & (ev["time"] >= start) & (ev["time"] <= start + pd.Timedelta(detect_within))]
    fired_names = " ".join(str(d) for d in fired["detail"]) if "detail" in fired.columns else ""
    return [
        CorrectiveAction(id="CA-O1", action="page on feature retrieval", owner="platform",
                         spec=f"a fallback guardrail fires within {detect_within} of an outage: {names}",
                         check=lambda: any(g.name in fired_names for g in fallbacks)),
        CorrectiveAction(id="CA-O2", action="serve the fallback during the outage", owner="ml-serving",
                         spec=">= 95 % of requests from the fallback between containment and store recovery",
                         check=lambda: bool(len(during)) and bool((during["arm"] == "fallback").mean() >= 0.95)),
        CorrectiveAction(id="CA-O3", action="never roll back a healthy model for a store failure", owner="ml-owner",
                         spec="no registry rollback during the outage drill",
                         check=lambda: len(registry_rollbacks(registry)) == rollbacks_before)]


def drift_actions(guards: Sequence[Any], registry: Any, result: Any, *, known_good: int) -> list[CorrectiveAction]:
    """The drift drill's corrective actions, each an executable check.

    CA-D1 an abort guardrail on score_psi <= 0.25 over <= 6 h exists in ``guards``;
    CA-D2 ``deployed-prod`` is back on ``known_good``;
    CA-D3 no candidate request at or after the first abort event.
    """
    ev, req = result.events, result.requests
    after_abort = req[req["event_timestamp"] >= ev.loc[ev["kind"] == "abort", "time"].min()]
    return [
        CorrectiveAction(id="CA-D1", action="input-drift guardrail on every release", owner="ml-owner",
                         spec="an abort guardrail on score_psi <= 0.25 over <= 6 h",
                         check=lambda: guardrail_covers(guards, metric="score_psi", max_threshold=0.25,
                                                        max_window=timedelta(hours=6), action="abort")),
        CorrectiveAction(id="CA-D2", action="roll back to the known-good version", owner="release-manager",
                         spec=f"deployed-prod is back on v{known_good}",
                         check=lambda: int(registry.get_model_version_by_alias(MODEL, "deployed-prod").version) == known_good),
        CorrectiveAction(id="CA-D3", action="no candidate traffic after the abort", owner="ml-serving",
                         spec="0 candidate requests after the abort", check=lambda: int((after_abort["arm"] == "candidate").sum()) == 0)]


def write_up(rec: Any, name: str, res: Any, fault: Any, title: str, root_cause: str, factors: Sequence[str],
             actions: Sequence[CorrectiveAction], *, extra: Mapping[str, Any] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Write a drill up: runs every corrective action and saves ``postmortem_<name>.md``,
    ``drill_<name>_events.csv`` and ``drill_<name>.json`` (incident report, action results, first times,
    and ``store_outage`` = ``extra`` when given: what a real store outage did).

    Returns the incident report and the action results (id, passed, spec).
    """
    report = incident_report(res, fault, title=title, bad_arm="stable")
    text = postmortem_markdown(report, summary=title, root_cause=root_cause, contributing_factors=list(factors),
                               corrective_actions=list(actions))
    results = [{"id": a.id, "passed": a.run().passed, "spec": a.spec} for a in actions]
    rec.save_markdown(f"postmortem_{name}", text)
    rec.save_table(f"drill_{name}_events", res.events)
    rec.save_json(f"drill_{name}", {**report.to_dict(), "corrective_actions": results,
                                    **first_times(res.events, containment=("fallback_on", "abort", "rollback")),
                                    **({"store_outage": dict(extra)} if extra else {})})
    return report, results


def drill_summary(reports: Mapping[str, tuple[Any, str]]) -> pd.DataFrame:
    """One row per drill (name -> (incident report, how it was contained)): minutes to detect and to contain."""
    return pd.DataFrame([{"drill": n, "detected_after_min": r.time_to_detect.total_seconds() / 60,
                          "contained_after_min": r.time_to_recover.total_seconds() / 60, "how": how}
                         for n, (r, how) in reports.items()])


def alias_history_table(registry: Any) -> pd.DataFrame:
    """Every move of the ``deployed-prod`` alias: from, to (nullable ints), action, actor, reason."""
    return pd.DataFrame([{"from": e.from_version, "to": e.to_version, "action": e.action, "actor": e.actor, "reason": e.reason}
                         for e in registry.alias_history(MODEL, "deployed-prod")]).astype({"from": "Int64", "to": "Int64"})
