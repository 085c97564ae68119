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

from ..rollout import (CanaryStrategy, CorrectiveAction, RiskBudget, RolloutResult, guardrail_covers,
                       plot_guardrails, plot_traffic_split, postmortem_markdown)
from .ch05 import (BAD_SEGMENT, BAKE_MIN, START, explore_canary, guardrails, make_sim, make_world, release_pair,
                   run_canary)
from .ch05_ops import feature_drill, feature_store

__all__ = ["harm_by_mode", "runs_summary", "incident_measures", "regression_verdict", "incident_figures", "decline_rates",
           "rollback_verdict", "rollback_checks_table", "alias_moves", "first_trigger", "trigger_replays", "replay_aborts", "restore_drill",
           "rematerialize_drill", "corrective_actions",
           "postmortem", "action_records", "show_canary", "canary_explorer"]

_H = timedelta(hours=1)
_M = timedelta(minutes=1)


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


def regression_verdict(result: RolloutResult, report: Any) -> dict[str, Any]:
    """``rec.check`` arguments for the incident: aborted, the fault touched requests, and the
    candidate served nothing from the recovery on (a run never recovered fails)."""
    req = result.requests
    after = None if report.recovered_at is None else int(
        ((req["event_timestamp"] >= pd.Timestamp(report.recovered_at)) & (req["arm"] == "candidate")).sum())
    passed = result.status == "aborted" and after == 0 and report.exposure > 0
    return dict(passed=bool(passed), observed={"status": result.status, "exposure": report.exposure,
                                               "candidate_requests_after_recovery": after},
                threshold="aborted; 0 candidate requests after recovery",
                detail="the segment regression was caught by the canary and rolled back automatically",
                look_at="the segments guardrail (statistic, min_samples, window)")


def rollback_verdict(partial: Sequence[Any], full: Sequence[Any], rates: Mapping[str, float]) -> dict[str, Any]:
    """``rec.check`` arguments for the threshold-flag release: the model-only rollback left a check
    failing and the decline rate >= 1.5x the warm-up's; the restore passed every check with the rate
    within 25 % of it."""
    base = rates["baseline (warm-up)"]
    broken = not all(c.passed for c in partial) and rates["after model-only rollback"] >= 1.5 * base
    fixed = bool(full) and all(c.passed for c in full) and abs(rates["after restore"] - base) <= 0.25 * base
    return dict(passed=bool(broken and fixed),
                observed={"partial_failed": [c.name for c in partial if not c.passed],
                          "restore_failed": [c.name for c in full if not c.passed], **rates},
                threshold="model-only: >= 1 failed check and decline rate >= 1.5x baseline; restore: all checks "
                          "pass, rate within 25 %",
                detail="a model-only rollback leaves the threshold flag behind; restore() puts back alias, routing "
                       "and flags", look_at="ReleaseState.compare and restore()")


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


def trigger_replays(runs: Mapping[str, RolloutResult], trigger: Callable[[pd.DataFrame], bool],
                    guardrail: str = "segments") -> pd.DataFrame:
    """Replay ``trigger`` over each run's guardrail history next to the simulator's own first abort.

    One row per run: the guardrail's ``consecutive`` setting, when the trigger first fires, when
    the run aborted (None: never) and whether the two agree.
    """
    rows = []
    for name, result in runs.items():
        ms = result.measurements[result.measurements["guardrail"] == guardrail]
        aborts = result.events.loc[result.events["kind"] == "abort", "time"]
        fired = first_trigger(result, trigger, guardrail=guardrail)
        expected = None if aborts.empty else aborts.iloc[0]
        rows.append({"run": name, "consecutive": int(ms["consecutive"].iloc[-1]) if len(ms) else None,
                     "trigger_fires_at": fired, "aborted_at": expected, "agree": fired == expected})
    return pd.DataFrame(rows)


def replay_aborts(registry: Any, clock: Any, *, steps: Sequence[float], segment_threshold: float,
                  window_min: int, budget: RiskBudget, seed: int, scale: float) -> bool:
    """Replay the defective candidate's canary on another day's traffic; True if it aborts at step one."""
    other_day = make_world(seed=seed + 1, scale=scale)
    models = release_pair(registry, clock, "fraud_replay", other_day)[0]
    r = run_canary(other_day, models, steps=tuple(steps), segment_threshold=segment_threshold,
                   window_min=window_min, budget=budget, seed=seed)
    return bool(r.status == "aborted" and r.intervals["weight"].max() <= steps[0])


def restore_drill(registry: Any, clock: Any, world: dict[str, Any], *, name: str, segment_threshold: float,
                  window_min: int, seed: int) -> list[Any]:
    """Release a candidate with a threshold flag, restore the captured release state, run on, verify.

    The rollback procedure itself, re-run from scratch under the given segment guardrail: returns
    the ``verify()`` checks taken an hour after ``restore()`` (alias, stable arm, routing, flags
    against the state before the release).
    """
    models = release_pair(registry, clock, name, world)[0]
    sim = make_sim(world, models, strategy=CanaryStrategy(steps=(10, 50, 100), bake_time=BAKE_MIN * _M),
                   guardrails=guardrails(segment_threshold=segment_threshold, window_min=window_min),
                   candidate_flags={"threshold": 0.3}, seed=seed)
    known_good = sim.snapshot()
    sim.run(until=START + 3 * _H)
    sim.restore(known_good, actor="release-pipeline", reason="corrective action CA-3: rollback drill")
    sim.run(until=START + 4 * _H)
    return sim.verify(known_good)


def rematerialize_drill(ws: Any, world: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """The feature-version rollback re-run in a fresh store: the ``v1 re-materialized`` phase row."""
    store, fclock = feature_store(ws, world, seed=seed)
    drill = feature_drill(store, fclock, ws, world, seed=seed)
    return next(p for p in drill["phases"] if p["phase"] == "v1 re-materialized")


def corrective_actions(registry: Any, clock: Any, *, world: dict[str, Any], steps: Sequence[float],
                       segment_threshold: float, window_min: int, budget: RiskBudget, seed: int, scale: float,
                       feature_ws: Any) -> list[CorrectiveAction]:
    """The postmortem's four corrective actions, each with a check that runs when called.

    No check replays a result computed earlier: CA-1 inspects the guardrails built from the
    settings, CA-2 replays the incident on another day's traffic, CA-3 re-runs the rollback
    drill (a threshold-flag release restored with ``restore()``) in the registry, and CA-4
    re-runs the feature drill in ``feature_ws`` (a fresh workspace).
    """
    def covers() -> Any:
        return guardrail_covers(guardrails(segment_threshold=segment_threshold, window_min=window_min),
                                metric="segment_regression", max_threshold=0.3,
                                max_window=timedelta(minutes=30), action="abort")

    def replay() -> bool:
        return replay_aborts(registry, clock, steps=steps, segment_threshold=segment_threshold,
                             window_min=window_min, budget=budget, seed=seed, scale=scale)

    def restored() -> list[Any]:
        return restore_drill(registry, clock, world, name="fraud_ca3", segment_threshold=segment_threshold,
                             window_min=window_min, seed=seed)

    def rematerialized() -> bool:
        row = rematerialize_drill(feature_ws, world, seed=seed)
        return bool(row["parity_match_rate"] == 1.0 and row["missing_feature_rate"] == 0)

    return [
        CorrectiveAction(id="CA-1", action="per-segment guardrail on every canary", owner="ml-platform",
                         spec="a segment_regression guardrail with threshold <= 0.3 over <= 30 min aborts",
                         check=covers),
        CorrectiveAction(id="CA-2", action="replay the incident in the release pipeline", owner="ml-platform",
                         spec="the defective candidate's canary, replayed on another day's traffic, aborts at its "
                              "first step", check=replay),
        CorrectiveAction(id="CA-3", action="rollback = restore the release state, never the model alone",
                         owner="on-call", spec="a threshold-flag release restored with restore(): an hour later "
                                               "every verify() check passes (alias, routing, flags)",
                         check=restored),
        CorrectiveAction(id="CA-4", action="feature rollbacks re-materialize the previous version",
                         owner="features-team",
                         spec="the feature drill re-run in a fresh store: after the v1 re-materialization the "
                              "parity check matches 100 % and nothing is missing",
                         check=rematerialized),
    ]


def postmortem(report: Any, actions: Sequence[CorrectiveAction], *, first_step: float,
               coverage: pd.DataFrame | None = None) -> str:
    """The blameless postmortem (markdown) of the segment-regression incident.

    ``coverage`` is :func:`~mlops_kit.labs.ch05.segment_coverage`'s table; its measured requests
    per window on :data:`BAD_SEGMENT` at the table's weight go into the contributing factors.
    """
    factors = ["Offline evaluation reported aggregate metrics only."]
    if coverage is not None:
        row = coverage.set_index("segment").loc[BAD_SEGMENT]
        factors.append(f"Segment coverage is thin: at the coverage table's weight the {BAD_SEGMENT} segment gives "
                       f"{row['candidate_per_window_at_weight']:g} candidate requests per coverage window "
                       "(measured), so a small first step can promote before the segment check is conclusive.")
    return postmortem_markdown(
        report, summary=f"A candidate scorer that inverted its scores on the {BAD_SEGMENT} segment was "
        f"canaried at {first_step:g} %; the per-segment guardrail aborted it and the registry alias "
        "was rolled back.",
        root_cause="The candidate's defect was limited to one segment, which the offline aggregate metrics "
        "and the overall error-rate and latency guardrails cannot see.",
        contributing_factors=factors, corrective_actions=list(actions))


def action_records(actions: Sequence[CorrectiveAction], results: Sequence[Any]) -> list[dict[str, Any]]:
    """One record per corrective action: id, spec, owner and its check result."""
    return [{"id": a.id, "spec": a.spec, "owner": a.owner, **r.to_dict()} for a, r in zip(actions, results)]


def show_canary(world: dict[str, Any], *, seed: int, first_step: float, threshold: float, window_min: int,
                bake_min: int = BAKE_MIN) -> dict[str, Any]:
    """Run :func:`~mlops_kit.labs.ch05.explore_canary`, print its summary and display its figures."""
    from IPython.display import display

    summary, figs = explore_canary(world, first_step=first_step, bake_min=bake_min,
                                   segment_threshold=threshold, window_min=window_min, seed=seed)
    print(summary)
    for fig in figs:
        display(fig)
    return summary


def canary_explorer(world: dict[str, Any], *, seed: int, first_step: float, threshold: float, window_min: int,
                    bake_min: int = BAKE_MIN) -> Any:
    """Sliders for :func:`show_canary`, starting from the given settings (the learner's), and the
    output panel they redraw (an ipywidgets ``VBox``)."""
    import ipywidgets as widgets

    sliders = {"first_step": widgets.IntSlider(value=int(round(first_step)), min=1, max=25, step=1,
                                               description="first step %"),
               "bake_min": widgets.IntSlider(value=int(bake_min), min=10, max=60, step=5, description="bake (min)"),
               "threshold": widgets.FloatSlider(value=float(threshold), min=0.05, max=0.6, step=0.05,
                                                description="threshold"),
               "window_min": widgets.IntSlider(value=int(window_min), min=10, max=60, step=5,
                                               description="window (min)")}
    panel = widgets.Output()

    def redraw(change: Any) -> None:
        panel.clear_output(wait=True)
        with panel:
            show_canary(world, seed=seed, **{name: s.value for name, s in sliders.items()})

    for s in sliders.values():
        s.observe(redraw, names="value")
    return widgets.VBox([widgets.VBox(list(sliders.values())), panel])
