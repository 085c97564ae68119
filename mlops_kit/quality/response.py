"""Graduated responses to drift, as data: for each feature criticality, which level means what.

Actions, from mildest to strongest: ``none``, ``log``, ``ticket``, ``page``, ``mitigate``
(automatic mitigation, e.g. fall back to the last known-good feature set). Drift levels:
``inconclusive``, ``none``, ``moderate``, ``major`` (see ``DriftResult.level``): ``major`` when
PSI >= 0.25, ``moderate`` when PSI >= 0.1 *or the column's drift test failed*, ``none``
otherwise. A policy must
never answer a stronger drift with a milder action, and ``mitigate`` is reserved for the
``critical`` criticality (automatic action only where it is worth its risk).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import DefinitionError, ValidationError
from .drift import DriftResult, psi_band

__all__ = ["ACTIONS", "DRIFT_LEVELS", "CRITICALITIES", "Response", "ResponsePolicy"]

ACTIONS = ("none", "log", "ticket", "page", "mitigate")
DRIFT_LEVELS = ("inconclusive", "none", "moderate", "major")
CRITICALITIES = ("low", "medium", "high", "critical")
_ORDERED = ("none", "moderate", "major")

_DEFAULT_RULES = {
    "low": {"inconclusive": "log", "none": "none", "moderate": "log", "major": "log"},
    "medium": {"inconclusive": "log", "none": "none", "moderate": "log", "major": "ticket"},
    "high": {"inconclusive": "ticket", "none": "none", "moderate": "ticket", "major": "page"},
    "critical": {"inconclusive": "page", "none": "none", "moderate": "page", "major": "mitigate"},
}


@dataclass(frozen=True)
class Response:
    """What to do about one drift observation, and why."""

    action: str
    level: str
    criticality: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "level": self.level, "criticality": self.criticality,
                "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class ResponsePolicy:
    """``rules[criticality][drift level] -> action``; every criticality maps every level.

    Examples
    --------
    >>> policy = ResponsePolicy.default()
    >>> policy.evaluate(criticality="critical", psi=0.31).action
    'mitigate'
    >>> policy.evaluate(criticality="low", psi=0.31).action
    'log'
    >>> policy.evaluate(criticality="critical", psi=0.08, test_failed=True).action
    'page'
    """

    rules: Mapping[str, Mapping[str, str]]
    name: str = "default"

    def __post_init__(self) -> None:
        if not isinstance(self.rules, Mapping) or not self.rules:
            raise DefinitionError(f"ResponsePolicy {self.name!r}: rules must be a non-empty mapping, got {self.rules!r}.",
                                  fix="Pass {criticality: {level: action}}, see ResponsePolicy.default().")
        frozen = {}
        for crit, row in self.rules.items():
            if not isinstance(crit, str) or not crit:
                raise DefinitionError(f"ResponsePolicy {self.name!r}: criticality {crit!r} is not a name.",
                                      fix=f"Use names such as {CRITICALITIES}.")
            if not isinstance(row, Mapping) or set(row) != set(DRIFT_LEVELS):
                raise DefinitionError(
                    f"ResponsePolicy {self.name!r}: rules[{crit!r}] must map exactly the levels {DRIFT_LEVELS}, "
                    f"got {sorted(row) if isinstance(row, Mapping) else row!r}.",
                    fix="Give an action for every drift level, including 'inconclusive'.")
            bad = {lvl: act for lvl, act in row.items() if act not in ACTIONS}
            if bad:
                raise DefinitionError(f"ResponsePolicy {self.name!r}: rules[{crit!r}] has unknown action(s) {bad}.",
                                      fix=f"Use actions from {ACTIONS}.")
            ranks = [ACTIONS.index(row[lvl]) for lvl in _ORDERED]
            if ranks != sorted(ranks):
                raise DefinitionError(
                    f"ResponsePolicy {self.name!r}: rules[{crit!r}] answers stronger drift with a milder action "
                    f"({[row[lvl] for lvl in _ORDERED]} for {list(_ORDERED)}).",
                    fix="Make actions non-decreasing from none to moderate to major.")
            if crit != "critical" and "mitigate" in row.values():
                raise DefinitionError(
                    f"ResponsePolicy {self.name!r}: rules[{crit!r}] uses 'mitigate'; automatic mitigation is "
                    "reserved for critical features.", fix="Use 'page' and let a human decide, or mark it critical.")
            frozen[crit] = MappingProxyType(dict(row))
        object.__setattr__(self, "rules", MappingProxyType(frozen))

    @classmethod
    def default(cls) -> "ResponsePolicy":
        """log -> ticket -> page -> mitigate as criticality rises (mitigate only when critical)."""
        return cls(rules=_DEFAULT_RULES, name="default")

    def evaluate(
        self,
        *,
        criticality: str,
        drift: DriftResult | None = None,
        level: str | None = None,
        psi: float | None = None,
        test_failed: bool | None = None,
    ) -> Response:
        """The action for a feature of ``criticality`` given one of ``drift``, ``level`` or ``psi``.

        ``drift`` (a :class:`DriftResult`) carries both the PSI and the test's verdict. With
        ``psi=`` pass the verdict of the column's drift test as ``test_failed``: a failed test
        makes PSI below 0.1 a ``moderate`` drift; ``test_failed=None`` means no test was run and
        the PSI bands alone decide (the reason says so).
        """
        given = [x is not None for x in (drift, level, psi)]
        if sum(given) != 1:
            raise ValidationError("ResponsePolicy.evaluate: pass exactly one of drift=, level= or psi=.",
                                  fix="E.g. evaluate(criticality='high', drift=column_drift(ref, cur)).")
        if test_failed is not None and (psi is None or not isinstance(test_failed, bool)):
            raise ValidationError(
                f"ResponsePolicy.evaluate: test_failed must be True or False and goes with psi=, got "
                f"test_failed={test_failed!r} with {'psi' if psi is not None else 'drift/level'}.",
                fix="Pass evaluate(psi=..., test_failed=result.verdict == 'drift'), or drift=result alone.")
        if criticality not in self.rules:
            raise ValidationError(f"ResponsePolicy.evaluate: unknown criticality {criticality!r}.",
                                  fix=f"Use one of {sorted(self.rules)}.")
        if drift is not None:
            if not isinstance(drift, DriftResult):
                raise ValidationError(f"ResponsePolicy.evaluate: drift must be a DriftResult, got {type(drift).__name__}.",
                                      fix="Pass the result of column_drift(...).")
            level = drift.level
            basis = drift.message
        elif psi is not None:
            if isinstance(psi, bool) or not isinstance(psi, (int, float)) or psi < 0:
                raise ValidationError(f"ResponsePolicy.evaluate: psi must be a number >= 0, got {psi!r}.",
                                      fix="Pass the PSI value, e.g. psi=0.18.")
            band = psi_band(float(psi))
            level = {"stable": "none", "moderate": "moderate", "major": "major"}[band]
            if level == "none" and test_failed:
                level = "moderate"
            test = ("no test verdict given" if test_failed is None
                    else "the drift test failed" if test_failed else "the drift test passed")
            basis = f"PSI {psi:.3f} is {band} (bands 0.1 / 0.25), {test}"
        else:
            if level not in DRIFT_LEVELS:
                raise ValidationError(f"ResponsePolicy.evaluate: unknown level {level!r}.",
                                      fix=f"Use one of {DRIFT_LEVELS}.")
            basis = f"drift level {level}"
        action = self.rules[criticality][level]
        reason = f"{criticality} feature, drift level {level} -> {action} (policy {self.name!r}): {basis}"
        return Response(action=action, level=level, criticality=criticality, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rules": {c: dict(r) for c, r in self.rules.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResponsePolicy":
        if not isinstance(data, dict) or "rules" not in data:
            raise DefinitionError("ResponsePolicy.from_dict: expected a dict with 'rules'.",
                                  fix="Pass the output of ResponsePolicy.to_dict().")
        return cls(rules=data["rules"], name=data.get("name", "default"))
