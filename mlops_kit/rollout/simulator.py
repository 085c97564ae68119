"""The rollout simulator: a discrete-event run on a simulated clock, one analysis interval at a time.

Every interval the data plane (:mod:`._engine`) serves all requests of the interval with
arrays; at the interval's end every guardrail is measured and the control plane acts: the
strategy promotes, pauses or aborts; fallback guardrails switch serving to the fallback model
and back; every action is an event on the timeline with the measurements that caused it.
Actions take effect from the next interval. Same inputs and seed give identical results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .._time import UTC, ensure_utc
from ..errors import DefinitionError, RolloutError, ValidationError
from ._actions import ControlActions, _text
from ._analysis import GuardrailMonitor, Window
from ._engine import new_log, serve_interval
from ._setup import check_config, prepare_traffic
from .control import DEFAULT_FLAGS, Event, validate_flags
from .faults import Fault, LatencyModel
from .guardrails import Guardrail, Measurement
from .result import RolloutResult
from .router import Router
from .sources import FeatureSource, ModelProvider
from .strategies import CanaryStrategy, Decision, RolloutState

__all__ = ["RolloutSimulator"]


@dataclass
class _Serve:
    weight: float
    shadow_fraction: float
    fallback: bool
    flags: dict
    candidate_flags: dict
    stable_model: Any
    candidate_model: Any
    stable_code: int
    candidate_code: int


class RolloutSimulator(ControlActions):
    """Simulate a release of the candidate model over recorded traffic.

    Parameters
    ----------
    traffic : DataFrame with ``key_column``, ``event_timestamp``, ``segment_column``, ``label``,
        ``label_timestamp`` (NaT: never arrives) and any request-time feature columns.
    models : a :class:`ModelProvider`; the stable arm serves ``serving_alias``, the candidate
        arm ``candidate_alias`` (both resolved at construction).
    strategy : ShadowStrategy, CanaryStrategy or BlueGreenStrategy.
    feature_columns : model input columns in order; those not in the traffic are fetched.
    features : a :class:`FeatureSource`, or ``{feature_version: FeatureSource}`` chosen by the
        ``feature_version`` flag.
    guardrails : :class:`Guardrail` objects (abort / fallback / alert).
    fill_values : value a missing feature is served with (default 0.0).
    flags, candidate_flags : global flags and the release's flag changes (candidate arm only
        until the release completes).
    fallback_model : model served while a fallback guardrail has tripped.
    fallback_recover_after : passing measurements in a row that end the fallback.
    warmup : time before the rollout starts (its stable scores are the reference period).
    redeploy_time : how long a rollback takes once the old version is no longer loaded.
    salt, overrides : routing salt and ``{segment: 'candidate'|'stable'}`` cohort overrides.
    seed : everything random derives from it.
    """

    def __init__(self, *, traffic: pd.DataFrame, models: ModelProvider, strategy: Any,
                 feature_columns: Sequence[str], features: FeatureSource | Mapping[Any, FeatureSource] | None = None,
                 guardrails: Sequence[Guardrail] = (), key_column: str = "key", segment_column: str = "segment",
                 fill_values: Mapping[str, float] | None = None, latency: LatencyModel | None = None,
                 faults: Sequence[Fault] = (), flags: Mapping[str, Any] | None = None,
                 candidate_flags: Mapping[str, Any] | None = None, fallback_model: Any = None,
                 fallback_recover_after: int = 3, warmup: timedelta = timedelta(0),
                 redeploy_time: timedelta = timedelta(minutes=10), salt: str = "rollout",
                 overrides: Mapping[str, str] | None = None, seed: int = 0,
                 actor: str = "rollout-controller") -> None:
        if not isinstance(traffic, pd.DataFrame):
            raise ValidationError(f"traffic must be a pandas DataFrame, got {type(traffic).__name__}.",
                                  fix="Pass the requests as a DataFrame (one row per request).")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValidationError(f"seed must be a non-negative integer, got {seed!r}.", fix="Use e.g. seed=7.")
        for name in ("resolve", "load", "deploy", "rollback"):
            if not callable(getattr(models, name, None)):
                raise DefinitionError(f"models has no {name}() method; it must be a ModelProvider.",
                                      fix="Use InMemoryModelProvider or RegistryModelProvider.")
        if isinstance(fallback_recover_after, bool) or not isinstance(fallback_recover_after, int) \
                or fallback_recover_after < 1:
            raise ValidationError(f"fallback_recover_after must be an integer >= 1, got {fallback_recover_after!r}.",
                                  fix="Use e.g. 3.")
        self.actor = _text(actor, "actor")
        self.flags = {**DEFAULT_FLAGS, "fallback": False, **validate_flags(flags or {})}
        self.candidate_flags = validate_flags(candidate_flags or {}, owner="candidate_flags")
        if features is None:
            sources: dict[Any, FeatureSource] = {}
        elif isinstance(features, Mapping):
            sources = dict(features)
        else:
            sources = {self.flags["feature_version"]: features}
        self.guardrails, self.faults = tuple(guardrails), tuple(faults)
        seg_names = sorted(traffic[segment_column].astype(str).unique()) \
            if segment_column in traffic.columns else None
        request, fetched = check_config(
            strategy=strategy, guardrails=self.guardrails, faults=self.faults, feature_columns=feature_columns,
            sources=sources, traffic_columns=list(traffic.columns),
            fallback_model=fallback_model, warmup=warmup, redeploy_time=redeploy_time, segment_names=seg_names)
        for v in {self.flags["feature_version"], self.candidate_flags.get("feature_version",
                                                                          self.flags["feature_version"])}:
            if fetched and v not in sources:
                raise DefinitionError(f"flag feature_version={v!r} names no feature source ({sorted(map(str, sources))}).",
                                      fix="Pass features={version: source} covering every version flagged.")
        data = prepare_traffic(traffic, key_column=key_column, segment_column=segment_column, request_columns=request)
        self.__dict__.update({k: v for k, v in data.items() if k != "order"})
        self.sources, self.strategy, self.seed = sources, strategy, int(seed)
        self.feature_columns, self.request_columns, self.fetched_columns = list(feature_columns), request, fetched
        self.fill_values = dict(fill_values or {})
        self.latency = latency if latency is not None else LatencyModel()
        if not isinstance(self.latency, LatencyModel):
            raise DefinitionError("latency must be a LatencyModel.", fix="Use LatencyModel(base_ms=15, ...).")
        self.router = Router(salt=salt, arms=("candidate", "stable"), overrides=dict(overrides or {}))
        self.buckets = self.router.buckets(self.keys)
        self.shadow_buckets = Router(salt=salt + ":shadow").buckets(self.keys)
        self.models, self.fallback_model = models, fallback_model
        self.fallback_recover_after, self.warmup, self.redeploy_time = fallback_recover_after, warmup, redeploy_time
        self.versions: list[str] = ["fallback"]
        self.fallback_code = 0
        self._stable = self._pin(*models.resolve(models.serving_alias))
        self._candidate = self._pin(*models.resolve(models.candidate_alias))
        if self._stable[0] == self._candidate[0]:
            raise RolloutError(f"serving and candidate aliases both hold version {self._stable[0]!r}: nothing to release.",
                               fix=f"Point {models.candidate_alias!r} at the version to release.")
        self._previous: tuple | None = None
        self.interval = strategy.analysis_interval
        step = np.int64(self.interval // timedelta(microseconds=1)) * 1000
        self._t0 = int(self.t_ns[0] - self.t_ns[0] % step)
        k = int((self.t_ns[-1] - self._t0) // step) + 1
        self._bounds = np.searchsorted(self.t_ns, self._t0 + step * np.arange(k + 1), side="left")
        self._n_intervals, self._i = k, 0
        if warmup // self.interval >= k:
            raise ValidationError(f"the traffic spans {k} analysis intervals of {self.interval}; warmup {warmup} "
                                  "leaves none for the rollout.", fix="Shorten the warmup or pass more traffic.")
        self._log = new_log(len(self.t_ns), self.t_ns, self.label_t, self.seg)
        self.state = RolloutState()
        self.monitor = GuardrailMonitor(self.guardrails)
        self._events: list[Event] = []
        self._measurements: list[Measurement] = []
        self._intervals: list[dict] = []
        self._revert_at: datetime | None = None
        self._cache: dict = {}
        self._fallback_since: datetime | None = None
        self.initial_state = self.snapshot()

    # ------------------------------------------------------------------ helpers
    def _pin(self, version: Any, model: Any) -> tuple[str, Any, int]:
        version = str(version)
        if version not in self.versions:
            self.versions.append(version)
        return version, model, self.versions.index(version)

    def _time(self, i: int) -> datetime:
        return pd.Timestamp(self._t0 + int(i * (self.interval // timedelta(microseconds=1))) * 1000,
                            tz=UTC).to_pydatetime()

    @property
    def now(self) -> datetime:
        """Simulated time: the end of the last served interval."""
        return self._time(self._i)

    def _event(self, at: datetime, kind: str, detail: str, actor: str | None = None, **data: Any) -> None:
        self._events.append(Event(time=at, seq=len(self._events), kind=kind, actor=actor or self.actor,
                                  detail=detail, data=data))

    # ------------------------------------------------------------------ actions
    def _execute(self, d: Decision, at: datetime, actor: str | None = None) -> None:
        st, data = self.state, {"measurements": [m.to_dict() for m in d.measurements]} if d.measurements else {}
        if d.action == "start":
            self._event(at, "start", d.reason, actor, strategy=self.strategy.kind)
        elif d.action == "deploy":
            v = self.models.deploy(actor=actor or self.actor, reason=d.reason)
            st.deployed = True
            self._event(at, "deploy", f"{self.models.serving_alias} -> {v}: {d.reason}", actor, version=str(v))
        elif d.action == "promote":
            st.step_index += 1
            st.weight, st.phase_started = float(self.strategy.steps[st.step_index]), at
            self._event(at, "promote", d.reason, actor, weight=st.weight, **data)
            if st.weight >= 100:
                self._execute(Decision(action="complete", reason="reached 100 %: full promotion"), at, actor)
        elif d.action == "pause":
            st.status = "paused"
            self._event(at, "pause", d.reason, actor, **data)
        elif d.action in ("abort", "revert"):
            st.status, st.weight, st.shadow_fraction = "aborted", 0.0, 0.0
            self._event(at, d.action, f"routing to 0 %: {d.reason}", actor, weight=0.0, **data)
            if st.deployed:
                v = self.models.rollback(actor=actor or self.actor, reason=d.reason)
                self._event(at, "rollback", f"registry: {self.models.serving_alias} -> {v}", actor, version=str(v))
        elif d.action == "switch":
            st.weight, st.shadow_fraction, st.phase, st.phase_started = 100.0, 0.0, "post-switch", at
            st.keep_old_until = at + self.strategy.keep_old_for
            self._event(at, "switch", d.reason, actor, weight=100.0)
            self._execute(Decision(action="deploy", reason="blue/green switch"), at, actor)
        elif d.action == "complete":
            st.status, st.shadow_fraction = "completed", 0.0
            if st.weight >= 100:
                self._previous, self._stable = self._stable, self._candidate
                st.weight = 0.0
                self.flags = {**self.flags, **self.candidate_flags}
                self.candidate_flags = {}
            self._event(at, "complete", d.reason, actor, stable_version=self._stable[0])

    def _post_release(self, failed: list[Measurement], at: datetime) -> None:
        if not failed or self._previous is None or self._revert_at is not None:
            return
        st = self.state
        instant = st.keep_old_until is not None and at < st.keep_old_until
        self._revert_at = at if instant else at + self.redeploy_time
        self._event(at, "rollback_started", ("old version still loaded: instant revert" if instant else
                    f"old version scaled down: redeploy takes {self.redeploy_time}") + "; "
                    + "; ".join(m.explain() for m in failed), measurements=[m.to_dict() for m in failed])
        if instant:
            self._finish_revert(at)

    def _finish_revert(self, at: datetime) -> None:
        v = self.models.rollback(actor=self.actor, reason="post-release guardrail failed")
        self._stable, self._previous, self._revert_at = self._pin(v, self.models.load(v)), None, None
        self.state.status = "rolled_back"
        self._event(at, "rollback", f"registry: {self.models.serving_alias} -> {v}; stable arm serves it",
                    version=str(v))

    def _analyse(self, i: int, at: datetime) -> None:
        lo_hi = {}
        ref = (0, int(self._bounds[self.warmup // self.interval])) if self.warmup > timedelta(0) else None
        shadow = self.state.shadow_fraction > 0
        by_action: dict[str, list[Measurement]] = {"abort": [], "fallback": [], "alert": []}
        for g in self.guardrails:
            k = g.window // self.interval
            if k not in lo_hi:
                lo_hi[k] = int(self._bounds[max(0, i - k + 1)])
            w = Window(log=self._log, lo=lo_hi[k], hi=int(self._bounds[i + 1]), t_end_ns=int(
                pd.Timestamp(at).value), shadow=shadow, segment_names=self.segment_names, ref=ref,
                       cache=self._cache)
            m = self.monitor.measure(g, w, at)
            self._measurements.append(m)
            by_action[g.action].append(m)
            if m.verdict == "fail" and m.streak == g.consecutive:
                self._event(at, "alert", m.explain(), guardrail=g.name, action=g.action, measurement=m.to_dict())
        fb = by_action["fallback"]
        if not self.flags["fallback"] and any(m.verdict == "fail" for m in fb):
            self.flags["fallback"], self._fallback_since = True, at
            bad = [m for m in fb if m.verdict == "fail"]
            self._event(at, "fallback_on", "serving the fallback model: " + "; ".join(m.explain() for m in bad),
                        measurements=[m.to_dict() for m in bad])
        elif self.flags["fallback"] and fb and self._fallback_since != at and all(
                self.monitor.states[m.guardrail].passes >= self.fallback_recover_after for m in fb):
            self.flags["fallback"] = False
            self._event(at, "fallback_off", f"store healthy for {self.fallback_recover_after} measurements: "
                        + "; ".join(m.explain() for m in fb))
        ab = by_action["abort"]
        if self.state.status == "progressing":
            guards = {g.name: g for g in self.guardrails}
            for d in self.strategy.decide(self.state, at, ab, guards, self.monitor.states):
                self._execute(d, at)
        elif self.state.status == "completed":
            self._post_release([m for m in ab if m.verdict == "fail"], at)

    # ------------------------------------------------------------------ run
    def run(self, until: datetime | None = None) -> RolloutResult:
        """Simulate until the traffic ends, ``until``, or a pause that needs a human decision."""
        if self.state.status == "paused":
            raise RolloutError("the rollout is paused for a human decision.",
                               fix="Call resume(actor=..., reason=...) or abort(actor=..., reason=...) first.")
        until_dt = None if until is None else ensure_utc(until, name="until")
        start_i = self.warmup // self.interval
        while self._i < self._n_intervals:
            i = self._i
            t_start, t_end = self._time(i), self._time(i + 1)
            if until_dt is not None and t_start >= until_dt:
                break
            if self.state.status == "pending" and i >= start_i:
                self.monitor.reset()
                for d in self.strategy.start(self.state, t_start):
                    self._execute(d, t_start)
            if self._revert_at is not None and t_start >= self._revert_at:
                self._finish_revert(t_start)
            st = self.state
            serve = _Serve(weight=st.weight, shadow_fraction=st.shadow_fraction, fallback=bool(self.flags["fallback"]),
                           flags=self.flags, candidate_flags=self.candidate_flags, stable_model=self._stable[1],
                           candidate_model=self._candidate[1], stable_code=self._stable[2],
                           candidate_code=self._candidate[2])
            lo, hi = int(self._bounds[i]), int(self._bounds[i + 1])
            totals = serve_interval(self, self._log, lo, hi, i, t_start, serve)
            if st.status == "progressing" and isinstance(self.strategy, CanaryStrategy) and st.weight < 100:
                st.risk_consumed += st.weight * self.interval.total_seconds() / 3600
            self._intervals.append({"interval": i, "start": t_start, "end": t_end, "status": st.status,
                                    "phase": st.phase, "weight": st.weight, "shadow_fraction": st.shadow_fraction,
                                    "fallback": serve.fallback, "stable_version": self._stable[0],
                                    "candidate_version": self._candidate[0],
                                    "risk_consumed": st.risk_consumed, **totals})
            self._i = i + 1
            self._analyse(i, t_end)
            if self.state.status == "paused":
                break
        return self.result()

    def result(self) -> RolloutResult:
        """Everything recorded so far (tables of intervals, measurements, events, requests)."""
        upto = int(self._bounds[self._i])
        return RolloutResult.build(self, upto)
