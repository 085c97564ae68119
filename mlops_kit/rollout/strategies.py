"""Release strategies: shadow, canary and blue/green, as declarations plus their decisions.

A strategy is a frozen declaration. At the end of every analysis interval the simulator hands
it the measurements of the ``action="abort"`` guardrails and the strategy decides, like Argo
Rollouts: more failed measurements of a guardrail than its ``failure_limit`` abort; more
inconclusive ones than its ``inconclusive_limit`` pause the rollout for a human decision
(``resume`` or ``abort``); otherwise the rollout advances when its bake time is over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from ..errors import DefinitionError
from .guardrails import Guardrail, Measurement, RiskBudget

__all__ = ["ShadowStrategy", "CanaryStrategy", "BlueGreenStrategy", "RolloutState", "Decision",
           "strategy_from_dict"]


@dataclass(frozen=True, kw_only=True)
class Decision:
    """An action the strategy asks for, with its reason and the measurements behind it."""

    action: str
    reason: str
    measurements: tuple[Measurement, ...] = ()


@dataclass
class RolloutState:
    """Mutable progress of one rollout (owned by the simulator)."""

    status: str = "pending"
    phase: str = "warmup"
    weight: float = 0.0
    shadow_fraction: float = 0.0
    step_index: int = -1
    phase_started: datetime | None = None
    risk_consumed: float = 0.0
    deployed: bool = False
    keep_old_until: datetime | None = None


def _td(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise DefinitionError(f"{owner}: {name} must be a positive timedelta, got {value!r}.",
                              fix=f"Use e.g. {name}=timedelta(minutes=30).")


def _multiple(owner: str, name: str, value: timedelta, interval: timedelta) -> None:
    if value % interval != timedelta(0):
        raise DefinitionError(
            f"{owner}: {name}={value} is not a multiple of analysis_interval={interval}.",
            fix="Choose durations that are whole numbers of analysis intervals.",
        )


def _analyse(state: RolloutState, measurements: list[Measurement],
             guardrails: Mapping[str, Guardrail], counters: Mapping[str, Any]) -> Decision | None:
    fails = [m for m in measurements if m.verdict == "fail"
             and counters[m.guardrail].fails > guardrails[m.guardrail].failure_limit]
    if fails:
        return Decision(action="abort", reason="; ".join(m.explain() for m in fails),
                        measurements=tuple(fails))
    inc = [m for m in measurements if m.verdict == "inconclusive"
           and counters[m.guardrail].inconclusives > guardrails[m.guardrail].inconclusive_limit]
    if inc:
        return Decision(action="pause", reason="inconclusive, needs a human decision: "
                        + "; ".join(m.explain() for m in inc), measurements=tuple(inc))
    return None


@dataclass(frozen=True, kw_only=True)
class ShadowStrategy:
    """Mirror a fraction of requests to the candidate; its answers never affect decisions.

    Parameters
    ----------
    fraction: share of requests (0-1] also scored by the candidate (chosen by key hash).
    duration: how long to shadow before the verdict.
    analysis_interval: simulation and analysis step.
    """

    fraction: float = 1.0
    duration: timedelta = timedelta(hours=2)
    analysis_interval: timedelta = timedelta(minutes=5)
    kind: str = field(default="shadow", init=False)

    def __post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise DefinitionError(f"ShadowStrategy: fraction must be in (0, 1], got {f!r}.",
                                  fix="Use e.g. fraction=0.2 to mirror 20 % of requests.")
        _td("ShadowStrategy", "duration", self.duration)
        _td("ShadowStrategy", "analysis_interval", self.analysis_interval)
        _multiple("ShadowStrategy", "duration", self.duration, self.analysis_interval)

    def start(self, state: RolloutState, now: datetime) -> list[Decision]:
        """Begin the rollout at ``now``: set the phase and first exposure; return the decisions."""
        state.status, state.phase, state.phase_started = "progressing", "shadow", now
        state.shadow_fraction, state.weight = float(self.fraction), 0.0
        return [Decision(action="start", reason=f"shadow {self.fraction:.0%} of requests for {self.duration}")]

    def decide(self, state: RolloutState, now: datetime, measurements: list[Measurement],
               guardrails: Mapping[str, Guardrail], counters: Mapping[str, Any]) -> list[Decision]:
        """Decide at the end of an analysis interval from the abort guardrails\' measurements."""
        d = _analyse(state, measurements, guardrails, counters)
        if d is not None:
            return [d]
        if now - state.phase_started >= self.duration:
            return [Decision(action="complete", reason=f"shadow ran {self.duration} with no failed analysis")]
        return []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (durations in seconds); see :func:`strategy_from_dict`."""
        return {"kind": self.kind, "fraction": self.fraction, "duration": self.duration.total_seconds(),
                "analysis_interval": self.analysis_interval.total_seconds()}


@dataclass(frozen=True, kw_only=True)
class CanaryStrategy:
    """Progressive exposure: steps in percent, each baked and analysed before the next.

    Reaching a step of 100 % is the full promotion and completes the rollout.

    Parameters
    ----------
    steps: increasing percents, e.g. (5, 25, 50, 100).
    bake_time: simulated time spent at each step below 100 %.
    analysis_interval: simulation and analysis step.
    risk_budget: optional :class:`RiskBudget`; a rollout that would exceed it is aborted.
    """

    steps: tuple[float, ...] = (5, 25, 50, 100)
    bake_time: timedelta = timedelta(minutes=30)
    analysis_interval: timedelta = timedelta(minutes=5)
    risk_budget: RiskBudget | None = None
    kind: str = field(default="canary", init=False)

    def __post_init__(self) -> None:
        steps = tuple(self.steps) if isinstance(self.steps, (list, tuple)) else ()
        ok = bool(steps) and all(not isinstance(s, bool) and isinstance(s, (int, float)) and 0 < s <= 100
                                 and abs(s * 100 - round(s * 100)) < 1e-6 for s in steps)
        if not ok or any(b <= a for a, b in zip(steps, steps[1:])):
            raise DefinitionError(
                f"CanaryStrategy: steps must be strictly increasing percents in (0, 100] with at most "
                f"two decimals, got {self.steps!r}.", fix="Use e.g. steps=(5, 25, 50, 100).")
        object.__setattr__(self, "steps", steps)
        _td("CanaryStrategy", "bake_time", self.bake_time)
        _td("CanaryStrategy", "analysis_interval", self.analysis_interval)
        _multiple("CanaryStrategy", "bake_time", self.bake_time, self.analysis_interval)
        if self.risk_budget is not None and not isinstance(self.risk_budget, RiskBudget):
            raise DefinitionError(f"CanaryStrategy: risk_budget must be a RiskBudget, got {self.risk_budget!r}.",
                                  fix="Use RiskBudget(pct_hours=10).")

    def start(self, state: RolloutState, now: datetime) -> list[Decision]:
        """Begin the rollout at ``now``: set the phase and first exposure; return the decisions."""
        state.status, state.phase, state.phase_started = "progressing", "canary", now
        state.step_index, state.weight = 0, float(self.steps[0])
        out = [Decision(action="start", reason=f"canary steps {list(self.steps)} %, bake {self.bake_time} each"),
               Decision(action="deploy", reason="the serving alias names the release; routing sets exposure")]
        if state.weight >= 100:
            out.append(Decision(action="complete", reason="first step is 100 %: full promotion"))
        return out

    def _budget_check(self, state: RolloutState, next_weight: float) -> Decision | None:
        if self.risk_budget is None or next_weight >= 100:
            return None
        cost = self.risk_budget.cost(next_weight, self.analysis_interval)
        if state.risk_consumed + cost > self.risk_budget.pct_hours + 1e-9:
            return Decision(action="abort", reason=(
                f"risk budget exhausted: consumed {state.risk_consumed:.3g} of "
                f"{self.risk_budget.pct_hours:.3g} percent-hours; another interval at {next_weight:g} % "
                f"costs {cost:.3g}"))
        return None

    def decide(self, state: RolloutState, now: datetime, measurements: list[Measurement],
               guardrails: Mapping[str, Guardrail], counters: Mapping[str, Any]) -> list[Decision]:
        """Decide at the end of an analysis interval from the abort guardrails\' measurements."""
        d = _analyse(state, measurements, guardrails, counters)
        if d is not None:
            return [d]
        out: list[Decision] = []
        next_weight = state.weight
        if now - state.phase_started >= self.bake_time:
            nxt = self.steps[state.step_index + 1]
            out.append(Decision(action="promote", reason=(
                f"step {state.weight:g} % baked {self.bake_time} with every analysis passing; next {nxt:g} %")))
            next_weight = nxt
        budget = self._budget_check(state, next_weight)
        return [budget] if budget is not None else out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (durations in seconds); see :func:`strategy_from_dict`."""
        return {"kind": self.kind, "steps": list(self.steps), "bake_time": self.bake_time.total_seconds(),
                "analysis_interval": self.analysis_interval.total_seconds(),
                "risk_budget": None if self.risk_budget is None else self.risk_budget.to_dict()}


@dataclass(frozen=True, kw_only=True)
class BlueGreenStrategy:
    """Analyse green on a preview (mirrored traffic), switch instantly, keep blue for a while.

    Parameters
    ----------
    preview_time: pre-switch analysis duration on the preview.
    preview_fraction: share of requests mirrored to the preview (0-1].
    keep_old_for: blue stays loaded this long after the switch; a revert inside it is instant.
    analysis_interval: simulation and analysis step.
    """

    preview_time: timedelta = timedelta(minutes=30)
    preview_fraction: float = 1.0
    keep_old_for: timedelta = timedelta(minutes=30)
    analysis_interval: timedelta = timedelta(minutes=5)
    kind: str = field(default="blue_green", init=False)

    def __post_init__(self) -> None:
        f = self.preview_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise DefinitionError(f"BlueGreenStrategy: preview_fraction must be in (0, 1], got {f!r}.",
                                  fix="Use preview_fraction=1.0 to mirror every request to the preview.")
        for name in ("preview_time", "keep_old_for", "analysis_interval"):
            _td("BlueGreenStrategy", name, getattr(self, name))
        for name in ("preview_time", "keep_old_for"):
            _multiple("BlueGreenStrategy", name, getattr(self, name), self.analysis_interval)

    def start(self, state: RolloutState, now: datetime) -> list[Decision]:
        """Begin the rollout at ``now``: set the phase and first exposure; return the decisions."""
        state.status, state.phase, state.phase_started = "progressing", "preview", now
        state.shadow_fraction, state.weight = float(self.preview_fraction), 0.0
        return [Decision(action="start", reason=f"preview green on {self.preview_fraction:.0%} of requests "
                                                f"for {self.preview_time}")]

    def decide(self, state: RolloutState, now: datetime, measurements: list[Measurement],
               guardrails: Mapping[str, Guardrail], counters: Mapping[str, Any]) -> list[Decision]:
        """Decide at the end of an analysis interval from the abort guardrails\' measurements."""
        d = _analyse(state, measurements, guardrails, counters)
        if state.phase == "preview":
            if d is not None:
                return [d]
            if now - state.phase_started >= self.preview_time:
                return [Decision(action="switch", reason=f"pre-switch analysis passed over {self.preview_time}; "
                                                         f"blue kept for {self.keep_old_for}")]
            return []
        if d is not None and d.action == "abort":
            return [Decision(action="revert", reason=d.reason, measurements=d.measurements)]
        if state.keep_old_until is not None and now >= state.keep_old_until:
            return [Decision(action="complete", reason=f"no failed analysis in {self.keep_old_for} after the "
                                                       "switch; blue scaled down")]
        return []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (durations in seconds); see :func:`strategy_from_dict`."""
        return {"kind": self.kind, "preview_time": self.preview_time.total_seconds(),
                "preview_fraction": self.preview_fraction, "keep_old_for": self.keep_old_for.total_seconds(),
                "analysis_interval": self.analysis_interval.total_seconds()}


def strategy_from_dict(data: Mapping[str, Any]) -> ShadowStrategy | CanaryStrategy | BlueGreenStrategy:
    """Rebuild a strategy from its ``to_dict()`` form."""
    d = dict(data)
    kind = d.pop("kind", None)
    secs = {k: timedelta(seconds=v) for k, v in d.items()
            if k in ("duration", "bake_time", "analysis_interval", "preview_time", "keep_old_for")}
    d.update(secs)
    if kind == "shadow":
        return ShadowStrategy(**d)
    if kind == "canary":
        rb = d.pop("risk_budget", None)
        return CanaryStrategy(steps=tuple(d["steps"]), bake_time=d["bake_time"],
                              analysis_interval=d["analysis_interval"],
                              risk_budget=None if rb is None else RiskBudget.from_dict(rb))
    if kind == "blue_green":
        return BlueGreenStrategy(**d)
    raise DefinitionError(f"strategy_from_dict: unknown kind {kind!r}.",
                          fix="Use 'shadow', 'canary' or 'blue_green'.")
