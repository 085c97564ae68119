"""Human decisions and control-plane operations of the simulator (a mixin of RolloutSimulator).

Resume / abort / promote answer a paused or running rollout; ``set_flag`` changes a flag;
``snapshot`` / ``verify`` / ``restore`` capture, check and put back the whole release state
(alias, routing, flags) in one call; ``partial_rollback`` moves the model only, which is how
a rollback that leaves the system broken is demonstrated.
"""

from __future__ import annotations

from typing import Any

from ..errors import RolloutError, ValidationError
from .control import CheckResult, ReleaseState, validate_flags
from .strategies import CanaryStrategy, Decision

__all__ = ["ControlActions"]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a non-empty string, got {value!r}.",
                              fix=f"Say who acts and why, e.g. {name}='on-call: p95 breach'.")
    return value


class ControlActions:
    """Operations a person (or notebook) performs on a running simulation."""

    def _require(self, allowed: tuple[str, ...], what: str) -> None:
        if self.state.status not in allowed:
            raise RolloutError(f"cannot {what}: the rollout is {self.state.status!r}.",
                               fix=f"{what} is allowed only when the rollout is one of {list(allowed)}.")

    def resume(self, *, actor: str, reason: str) -> None:
        """A human accepts an inconclusive analysis: continue the paused rollout."""
        _text(actor, "actor"), _text(reason, "reason")
        self._require(("paused",), "resume")
        self.state.status = "progressing"
        self.monitor.reset_inconclusive()
        self._event(self.now, "resume", reason, actor)

    def abort(self, *, actor: str, reason: str) -> None:
        """A human aborts: routing to 0 % and, if the release was deployed, the registry rollback."""
        _text(actor, "actor"), _text(reason, "reason")
        self._require(("paused", "progressing", "pending"), "abort")
        self._execute(Decision(action="abort", reason=reason), self.now, actor)

    def promote(self, *, actor: str, reason: str) -> None:
        """A human promotes a canary to its next step now (skipping the rest of the bake time)."""
        _text(actor, "actor"), _text(reason, "reason")
        if not isinstance(self.strategy, CanaryStrategy):
            raise RolloutError("promote applies to canary rollouts only.", fix="Use resume() for other strategies.")
        self._require(("paused", "progressing"), "promote")
        self.state.status = "progressing"
        self._execute(Decision(action="promote", reason=reason), self.now, actor)

    def set_flag(self, name: str, value: Any, *, actor: str, reason: str) -> None:
        """Change one global flag (from the next interval on)."""
        _text(actor, "actor"), _text(reason, "reason")
        new = validate_flags({name: value})
        if name == "feature_version" and self.fetched_columns and value not in self.sources:
            raise ValidationError(f"feature_version={value!r} has no feature source.",
                                  fix=f"Use one of {sorted(map(str, self.sources))}.")
        old = self.flags.get(name)
        self.flags = {**self.flags, **new}
        self._event(self.now, "flag_set", f"{name}: {old!r} -> {value!r}: {reason}", actor, flag=name)

    def snapshot(self) -> ReleaseState:
        """The current release state: serving alias, stable arm, routing and flags."""
        return ReleaseState(serving_version=str(self.models.resolve(self.models.serving_alias)[0]),
                            stable_version=self._stable[0], candidate_weight=self.state.weight,
                            flags=dict(self.flags), candidate_flags=dict(self.candidate_flags))

    def verify(self, state: ReleaseState | None = None) -> list[CheckResult]:
        """Checks that the system matches ``state`` (default: the state before the release)."""
        target = self.initial_state if state is None else state
        if not isinstance(target, ReleaseState):
            raise ValidationError(f"verify: state must be a ReleaseState, got {type(target).__name__}.",
                                  fix="Take one with snapshot().")
        return target.compare(self.snapshot())

    def restore(self, state: ReleaseState | None = None, *, actor: str, reason: str) -> list[CheckResult]:
        """One call puts back model alias, routing and flags; returns the verification checks."""
        _text(actor, "actor"), _text(reason, "reason")
        target = self.initial_state if state is None else state
        if not isinstance(target, ReleaseState):
            raise ValidationError(f"restore: state must be a ReleaseState, got {type(target).__name__}.",
                                  fix="Take one with snapshot().")
        v = str(self.models.resolve(self.models.serving_alias)[0])
        if v != target.serving_version:
            v = str(self.models.rollback(actor=actor, reason=reason, to=target.serving_version))
        self._stable = self._pin(target.stable_version, self.models.load(target.stable_version))
        if self.state.status in ("pending", "progressing", "paused"):
            self.state.status = "aborted"
        elif self.state.status == "completed":
            self.state.status = "rolled_back"
        self.state.weight, self.state.shadow_fraction, self._revert_at = float(target.candidate_weight), 0.0, None
        self.flags, self.candidate_flags = dict(target.flags), dict(target.candidate_flags)
        self._event(self.now, "restore", f"alias {self.models.serving_alias} -> {v}, stable arm "
                    f"{target.stable_version}, candidate weight {target.candidate_weight:g} %, flags "
                    f"{dict(target.flags)}: {reason}", actor, state=target.to_dict())
        return self.verify(target)

    def partial_rollback(self, *, actor: str, reason: str) -> str:
        """Roll back the model only (registry alias + the arm that serves it); routing and flags stay."""
        _text(actor, "actor"), _text(reason, "reason")
        v = str(self.models.rollback(actor=actor, reason=reason))
        self._stable = self._pin(v, self.models.load(v))
        self._event(self.now, "partial_rollback", f"model only: {self.models.serving_alias} -> {v}; routing "
                    f"and flags unchanged ({dict(self.flags)}): {reason}", actor, version=v)
        return v

