"""Chapter 4 lab, governance steps: alias snapshots and a recorded round of approval attempts.

Small helpers the notebook calls so its cells stay short; each acts on a real
:class:`~mlops_kit.registry.ModelRegistry` and returns plain data.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from .._time import FixedClock
from ..errors import ApprovalError, NotFoundError

__all__ = ["resolve_alias", "alias_split", "approval_attempts"]


def resolve_alias(registry: Any, name: str, alias: str) -> int | None:
    """The version ``alias`` of model ``name`` points at, or ``None`` while the alias is unset."""
    try:
        return registry.get_model_version_by_alias(name, alias).version
    except NotFoundError:
        return None


def alias_split(registry: Any, name: str) -> dict[str, int | None]:
    """Where ``approved-prod`` and ``deployed-prod`` point right now (``None`` when unset)."""
    return {alias: resolve_alias(registry, name, alias) for alias in ("approved-prod", "deployed-prod")}


def _refusal(exc: Exception) -> str:
    return "refused: " + str(exc).split(" Fix:")[0]


def approval_attempts(registry: Any, name: str, version: int, attempts: Iterable[tuple[str, str]], *,
                      clock: FixedClock, early_promote: tuple[str, str] | None = None,
                      step: timedelta = timedelta(minutes=5)) -> list[dict[str, str]]:
    """Try each ``(actor, role)`` approval of ``version`` in order and log what the registry said.

    The clock advances by ``step`` before each attempt. With ``early_promote=(after, promoter)``,
    right after ``after``'s attempt ``promoter`` tries to promote ``version`` to ``approved-prod``
    (before the approvals are complete); a refusal is logged with the role ``"promote"``.
    Each log entry is ``{"actor", "role", "result"}`` where result is ``"recorded"`` or
    ``"refused: <reason>"``.
    """
    log: list[dict[str, str]] = []
    for actor, role in attempts:
        clock.advance(step)
        try:
            registry.approve(name, version, actor=actor, role=role, note=f"v{version} reviewed by {actor}")
            log.append({"actor": actor, "role": role, "result": "recorded"})
        except ApprovalError as exc:
            log.append({"actor": actor, "role": role, "result": _refusal(exc)})
        if early_promote is not None and actor == early_promote[0]:
            try:
                registry.promote(name, version, "approved-prod", actor=early_promote[1], reason="too early")
            except ApprovalError as exc:
                log.append({"actor": early_promote[1], "role": "promote", "result": _refusal(exc)})
    return log
