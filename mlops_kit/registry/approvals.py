"""Separation of duties for production: approvals from distinct principals in required roles.

A version may take the ``approved-prod`` alias only when, for every required role, a
principal other than the version's author has approved it in that role. Each principal
approves a version at most once (one role), so the roles are always covered by distinct
people. Optionally, ``principals`` maps who may act in which role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ApprovalError, DefinitionError
from .entities import Approval

__all__ = ["ApprovalRule"]


@dataclass(frozen=True, kw_only=True)
class ApprovalRule:
    """Which roles must approve a version for production, and who may hold them.

    Parameters
    ----------
    required_roles:
        Roles that must each be covered by a distinct non-author principal.
    principals:
        ``{principal: [roles]}``. When given, an approval in a role the principal does not
        hold is refused. When empty, any principal may approve in any required role.
    """

    required_roles: tuple[str, ...] = ("ml-owner", "risk")
    principals: Mapping[str, Iterable[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        roles = self.required_roles
        if isinstance(roles, str) or not roles or not all(isinstance(r, str) and r for r in roles):
            raise DefinitionError(f"ApprovalRule: required_roles must be a non-empty list of role names, got {roles!r}.",
                                  fix="Pass e.g. required_roles=('ml-owner', 'risk').")
        if len(set(roles)) != len(roles):
            raise DefinitionError(f"ApprovalRule: duplicate roles in {roles!r}.", fix="List each role once.")
        object.__setattr__(self, "required_roles", tuple(roles))
        if not isinstance(self.principals, Mapping):
            raise DefinitionError("ApprovalRule: principals must be a mapping {principal: [roles]}.",
                                  fix="Pass e.g. principals={'ana': ['ml-owner'], 'raj': ['risk']}.")
        clean = {}
        for who, held in self.principals.items():
            if not isinstance(who, str) or not who or isinstance(held, str):
                raise DefinitionError(f"ApprovalRule: bad principals entry {who!r}: {held!r}.",
                                      fix="Map each principal name to a list of roles.")
            clean[who] = frozenset(held)
        object.__setattr__(self, "principals", clean)

    def check_approver(self, *, actor: str, role: str, author: str, existing: Iterable[Approval]) -> None:
        """Refuse an approval that breaks the rule (raises :class:`ApprovalError`)."""
        if role not in self.required_roles:
            raise ApprovalError(f"approve: role {role!r} is not one of the required roles {list(self.required_roles)}.",
                                fix="Approve in one of the required roles.", role=role)
        if actor == author:
            raise ApprovalError(f"approve: {actor!r} is the author of this version and cannot approve it "
                                "(separation of duties).", fix="Ask someone else in that role to approve.",
                                actor=actor)
        if self.principals and role not in self.principals.get(actor, frozenset()):
            raise ApprovalError(f"approve: {actor!r} does not hold the role {role!r}.",
                                fix="Ask a principal who holds that role.", actor=actor, role=role)
        for approval in existing:
            if approval.actor == actor:
                raise ApprovalError(f"approve: {actor!r} already approved this version (as {approval.role!r}); "
                                    "each role needs a distinct principal.",
                                    fix="Ask a different principal to approve.", actor=actor)

    def missing_roles(self, approvals: Iterable[Approval], *, author: str) -> list[str]:
        """Required roles not yet covered by a distinct non-author approval."""
        covered = {a.role for a in approvals if a.actor != author}
        return [role for role in self.required_roles if role not in covered]

    def to_dict(self) -> dict[str, Any]:
        return {"required_roles": list(self.required_roles),
                "principals": {k: sorted(v) for k, v in self.principals.items()}}
