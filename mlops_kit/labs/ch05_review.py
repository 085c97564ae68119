"""Chapter 5 lab helpers for the notebook's tables, figures, replays and postmortem.

The chapter notebook keeps its cells short by calling these: the harm of one defect per
deployment mode, run summaries, incident measures and figures, decline rates around a
rollback, the replay of a learner's trigger, the corrective actions of the postmortem and
the explore widget. Releases and simulator runs themselves live in :mod:`mlops_kit.labs.ch05`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pandas as pd

from ..rollout import (CorrectiveAction, RiskBudget, RolloutResult, guardrail_covers, plot_guardrails,
                       plot_traffic_split, postmortem_markdown)
from .ch05 import BAD_SEGMENT, START, explore_canary, guardrails, make_world, release_pair, run_canary

__all__ = ["harm_by_mode", "runs_summary", "incident_measures", "incident_figures", "decline_rates",
           "rollback_checks_table", "alias_moves", "first_trigger", "replay_aborts", "corrective_actions",
           "postmortem", "action_records", "show_canary", "canary_explorer"]

_H = timedelta(hours=1)


def harm_by_mode(traffic: pd.DataFrame, *, budget: RiskBudget, plan: pd.DataFrame,
                 hours: float = 6) -> tuple[dict[str, Any], float]:
    """Expected reach of a defect on :data:`BAD_SEGMENT`: a batch run versus the online budget.

    The batch job scores every request of the segment over the day; the online bound is the
    worst case the risk budget allows (percent-hours x requests per hour x segment share).
    Returns the table row (rounded) and the unrounded online bound.
    """
    on_segment = traffic["segment"] == BAD_SEGMENT
    seg_share = float(on_segment.mean())
    per_hour = len(traffic) / hours
    batch_exposed = int(on_segment.sum())
    online_bound = budget.pct_hours / 100 * per_hour * seg_share
    modes = {"batch_exposed_requests": batch_exposed, "online_budget_bound_requests": round(online_bound, 1),
             "ratio": round(batch_exposed / online_bound, 1), "budget_pct_hours": budget.pct_hours,
             "plan_pct_hours": float(plan["cumulative"].iloc[-1])}
    return modes, online_bound


def runs_summary(runs: Mapping[str, RolloutResult]) -> pd.DataFrame:
    """One row per run: status, candidate-served and shadowed requests, the event sequence."""
    return pd.DataFrame([{"strategy": k, "status": r.status,
                          "candidate_requests": int((r.requests["arm"] == "candidate").sum()),
                          "shadowed": int(r.requests["shadow_score"].notna().sum()),
                          "events": " > ".join(r.events["kind"])} for k, r in runs.items()])


def incident_measures(result: RolloutResult, report: Any, traffic: pd.DataFrame) -> dict[str, Any]:
    """Time to detect and recover (minutes), exposure, and candidate requests after recovery."""
    req = result.requests
    after = req[req["event_timestamp"] >= pd.Timestamp(report.recovered_at)]
    segment_size = int((traffic["segment"] == BAD_SEGMENT).sum())
    return {"time_to_detect_min": report.time_to_detect.total_seconds() / 60,
            "time_to_recover_min": report.time_to_recover.total_seconds() / 60,
            "exposure_requests": report.exposure, "candidate_requests_during_fault": report.bad_arm_requests,
            "candidate_requests_after_recovery": int((after["arm"] == "candidate").sum()),
            "share_of_segment_exposed_pct": round(100 * report.exposure / max(segment_size, 1), 2)}


def incident_figures(result: RolloutResult, *, hours: float = 3) -> dict[str, Any]:
    """The incident's traffic split and segment-guardrail figures, cut to the first ``hours``."""
    figs = {"incident_traffic_split": plot_traffic_split(
                result, title="bad candidate: canary aborted by the segment guardrail"),
            "incident_guardrails": plot_guardrails(result, ["segments"])}
    for fig in figs.values():
        fig.axes[0].set_xlim(START, START + timedelta(hours=hours))   # the rest of the day is stable-only
    return figs


def decline_rates(requests: pd.DataFrame) -> dict[str, float]:
    """Mean decision (decline rate) in the four phases of the threshold-flag release."""
    def rate(lo: timedelta, hi: timedelta) -> float:
        t = requests["event_timestamp"]
        sel = requests[(t >= pd.Timestamp(START + lo)) & (t < pd.Timestamp(START + hi))]
        return round(float(sel["decision"].mean()), 4)
    return {"baseline (warm-up)": rate(0 * _H, 1 * _H), "released (threshold 0.3)": rate(2.5 * _H, 3 * _H),
            "after model-only rollback": rate(3 * _H, 4 * _H), "after restore": rate(4 * _H, 6 * _H)}


def rollback_checks_table(partial: Sequence[Any], full: Sequence[Any]) -> pd.DataFrame:
    """The ``verify()`` checks after the model-only rollback and after ``restore()``, one row each."""
    rows = ([{"stage": "model-only", **c.to_dict()} for c in partial]
            + [{"stage": "restore", **c.to_dict()} for c in full])
    return pd.DataFrame(rows)[["stage", "name", "passed", "observed", "expected"]]


def alias_moves(registry: Any, name: str, alias: str = "deployed-prod") -> pd.DataFrame:
    """The alias's moves (from, to, action), oldest first."""
    return pd.DataFrame([{"from": e.from_version, "to": e.to_version, "action": e.action}
                         for e in registry.alias_history(name, alias)])


def first_trigger(result: RolloutResult, trigger: Callable[[pd.DataFrame], bool],
                  guardrail: str = "segments") -> Any:
    """Replay ``trigger`` over the guardrail's measurement history; the time it first fires, or None."""
    ms = result.measurements[result.measurements["guardrail"] == guardrail].reset_index(drop=True)
    for i in range(len(ms)):
        if trigger(ms.iloc[: i + 1]):
            return ms["time"].iloc[i]
    return None


def replay_aborts(registry: Any, clock: Any, *, steps: Sequence[float], segment_threshold: float,
                  window_min: int, budget: RiskBudget, seed: int, scale: float) -> bool:
    """Replay the defective candidate's canary on another day's traffic; True if it aborts at step one."""
    other_day = make_world(seed=seed + 1, scale=scale)
    models = release_pair(registry, clock, "fraud_replay", other_day)[0]
    r = run_canary(other_day, models, steps=tuple(steps), segment_threshold=segment_threshold,
                   window_min=window_min, budget=budget, seed=seed)
    return bool(r.status == "aborted" and r.intervals["weight"].max() <= steps[0])


def corrective_actions(registry: Any, clock: Any, *, steps: Sequence[float], segment_threshold: float,
                       window_min: int, budget: RiskBudget, seed: int, scale: float,
                       full_checks: Sequence[Any], phases: pd.DataFrame) -> list[CorrectiveAction]:
    """The postmortem's four corrective actions, each with an executable check.

    ``full_checks`` are the ``verify()`` checks after ``restore()``; ``phases`` is the feature
    drill's phase table indexed by phase name.
    """
    def covers() -> Any:
        return guardrail_covers(guardrails(segment_threshold=segment_threshold, window_min=window_min),
                                metric="segment_regression", max_threshold=0.3,
                                max_window=timedelta(minutes=30), action="abort")

    def replay() -> bool:
        return replay_aborts(registry, clock, steps=steps, segment_threshold=segment_threshold,
                             window_min=window_min, budget=budget, seed=seed, scale=scale)

    def rematerialized() -> bool:
        row = phases.loc["v1 re-materialized"]
        return bool(row["parity_match_rate"] == 1.0 and row["missing_feature_rate"] == 0)

    return [
        CorrectiveAction(id="CA-1", action="per-segment guardrail on every canary", owner="ml-platform",
                         spec="a segment_regression guardrail with threshold <= 0.3 over <= 30 min aborts",
                         check=covers),
        CorrectiveAction(id="CA-2", action="replay the incident in the release pipeline", owner="ml-platform",
                         spec="the defective candidate's canary, replayed on another day's traffic, aborts at its "
                              "first step", check=replay),
        CorrectiveAction(id="CA-3", action="rollback = restore the release state, never the model alone",
                         owner="on-call", spec="after restore() every verify() check passes (alias, routing, flags)",
                         check=lambda: list(full_checks)),
        CorrectiveAction(id="CA-4", action="feature rollbacks re-materialize the previous version",
                         owner="features-team",
                         spec="after the v1 re-materialization the parity check matches 100 % and nothing is missing",
                         check=rematerialized),
    ]


def postmortem(report: Any, actions: Sequence[CorrectiveAction], *, first_step: float) -> str:
    """The blameless postmortem (markdown) of the segment-regression incident."""
    return postmortem_markdown(
        report, summary="A candidate scorer that inverted its scores on the high-value segment was "
        f"canaried at {first_step:g} %; the per-segment guardrail aborted it and the registry alias "
        "was rolled back.",
        root_cause="The candidate's defect was limited to one segment (8 % of traffic), which the "
        "offline aggregate metrics and the overall error-rate and latency guardrails cannot see.",
        contributing_factors=["Offline evaluation reported aggregate metrics only.",
                              "Segment coverage is thin: at a 5 % step the high-value segment gives about 20 "
                              "requests per 30-minute window, so a canary can promote before the "
                              "segment check is conclusive."],
        corrective_actions=list(actions))


def action_records(actions: Sequence[CorrectiveAction], results: Sequence[Any]) -> list[dict[str, Any]]:
    """One record per corrective action: id, spec, owner and its check result."""
    return [{"id": a.id, "spec": a.spec, "owner": a.owner, **r.to_dict()} for a, r in zip(actions, results)]


def show_canary(world: dict[str, Any], *, seed: int, first_step: float = 15, bake_min: int = 30,
                threshold: float = 0.25, window_min: int = 30) -> dict[str, Any]:
    """Run :func:`~mlops_kit.labs.ch05.explore_canary`, print its summary and display its figures."""
    from IPython.display import display

    summary, figs = explore_canary(world, first_step=first_step, bake_min=bake_min,
                                   segment_threshold=threshold, window_min=window_min, seed=seed)
    print(summary)
    for fig in figs:
        display(fig)
    return summary


def canary_explorer(world: dict[str, Any], *, seed: int) -> Any:
    """Sliders for :func:`show_canary` and the output panel they redraw (an ipywidgets ``VBox``)."""
    import ipywidgets as widgets

    sliders = {"first_step": widgets.IntSlider(value=15, min=1, max=25, step=1, description="first step %"),
               "bake_min": widgets.IntSlider(value=30, min=10, max=60, step=5, description="bake (min)"),
               "threshold": widgets.FloatSlider(value=0.25, min=0.05, max=0.6, step=0.05, description="threshold"),
               "window_min": widgets.IntSlider(value=30, min=10, max=60, step=5, description="window (min)")}
    panel = widgets.Output()

    def redraw(change: Any) -> None:
        panel.clear_output(wait=True)
        with panel:
            show_canary(world, seed=seed, **{name: s.value for name, s in sliders.items()})

    for s in sliders.values():
        s.observe(redraw, names="value")
    return widgets.VBox([widgets.VBox(list(sliders.values())), panel])
