"""Principals, roles and grants for restricted feature views, and the read log.

A grant names a feature view (every version of it) and a subject: a principal, or a role
that principals hold. Reading a ``restricted`` view needs a grant; ``public``, ``internal``
and ``sensitive`` views are readable by anyone, including the anonymous principal (None).
Reads of ``sensitive`` and ``restricted`` views are logged (who, what, when, purpose,
channel, outcome). Every grant, revoke and role change is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import NotFoundError, ValidationError
from ._common import GovernanceBase, text_arg

__all__ = ["AccessMixin"]


class AccessMixin(GovernanceBase):
    """Access-control operations of ``Governance``."""

    def add_principal(self, principal: str, *, roles: Sequence[str] = (), actor: str, reason: str) -> None:
        """Create or update a principal with its roles (recorded)."""
        where = "Governance.add_principal"
        text_arg(principal, where=where, name="principal", example="svc-fraud-scoring")
        text_arg(actor, where=where, name="actor", example="security-admin")
        text_arg(reason, where=where, name="reason", example="new scoring service")
        if isinstance(roles, str) or not all(isinstance(r, str) and r for r in roles):
            raise ValidationError(f"{where}: roles must be a list of role names, got {roles!r}.",
                                  fix="Pass e.g. roles=['fraud-analyst'].")
        roles = sorted(set(roles))
        now = self._now().isoformat()
        with self._tx() as con:
            con.execute("INSERT INTO gov_principals VALUES (?, ?, ?) ON CONFLICT (principal) DO UPDATE SET "
                        "roles = excluded.roles, updated_at = excluded.updated_at", (principal, json.dumps(roles), now))
            con.execute("INSERT INTO gov_access_events (action, view, subject_type, subject, detail, actor, at, reason) "
                        "VALUES ('set_roles', NULL, 'principal', ?, ?, ?, ?, ?)",
                        (principal, json.dumps(roles), actor, now, reason))

    def roles(self, principal: str) -> list[str]:
        """The roles of a principal (empty for unknown principals and for None)."""
        if principal is None:
            return []
        row = self.con.execute("SELECT roles FROM gov_principals WHERE principal = ?", (principal,)).fetchone()
        return [] if row is None else json.loads(row[0])

    def _subject(self, principal: str | None, role: str | None, *, where: str) -> tuple[str, str]:
        if (principal is None) == (role is None):
            raise ValidationError(f"{where}: pass exactly one of principal= or role=.",
                                  fix="E.g. grant('card_pii', role='fraud-investigator', ...).")
        if principal is not None:
            text_arg(principal, where=where, name="principal", example="svc-fraud-scoring")
            if self.con.execute("SELECT 1 FROM gov_principals WHERE principal = ?", (principal,)).fetchone() is None:
                raise NotFoundError(f"{where}: unknown principal {principal!r}.",
                                    fix="Create it first with Governance.add_principal(...).", principal=principal)
            return "principal", principal
        return "role", text_arg(role, where=where, name="role", example="fraud-investigator")

    def grant(self, view: str, *, principal: str | None = None, role: str | None = None,
              actor: str, reason: str) -> None:
        """Allow a principal (or everyone holding ``role``) to read the restricted ``view``."""
        where = "Governance.grant"
        text_arg(view, where=where, name="view", example="card_pii")
        kind, subject = self._subject(principal, role, where=where)
        text_arg(actor, where=where, name="actor", example="security-admin")
        text_arg(reason, where=where, name="reason", example="chargeback investigations (ticket SEC-12)")
        now = self._now().isoformat()
        with self._tx() as con:
            con.execute("INSERT INTO gov_grants VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                        "granted_by = excluded.granted_by, granted_at = excluded.granted_at, reason = excluded.reason",
                        (view, kind, subject, actor, now, reason))
            con.execute("INSERT INTO gov_access_events (action, view, subject_type, subject, detail, actor, at, reason) "
                        "VALUES ('grant', ?, ?, ?, NULL, ?, ?, ?)", (view, kind, subject, actor, now, reason))

    def revoke(self, view: str, *, principal: str | None = None, role: str | None = None,
               actor: str, reason: str) -> None:
        """Withdraw a grant (refused if it does not exist)."""
        where = "Governance.revoke"
        text_arg(view, where=where, name="view", example="card_pii")
        kind, subject = self._subject(principal, role, where=where)
        text_arg(actor, where=where, name="actor", example="security-admin")
        text_arg(reason, where=where, name="reason", example="left the team")
        now = self._now().isoformat()
        with self._tx() as con:
            gone = con.execute("DELETE FROM gov_grants WHERE view = ? AND subject_type = ? AND subject = ?",
                               (view, kind, subject)).rowcount
            if not gone:
                raise NotFoundError(f"{where}: no grant on {view!r} for {kind} {subject!r}.",
                                    fix="List grants with Governance.grants(view).", view=view)
            con.execute("INSERT INTO gov_access_events (action, view, subject_type, subject, detail, actor, at, reason) "
                        "VALUES ('revoke', ?, ?, ?, NULL, ?, ?, ?)", (view, kind, subject, actor, now, reason))

    def grants(self, view: str | None = None) -> list[dict[str, Any]]:
        """Current grants (of one view, or all)."""
        sql, args = "SELECT * FROM gov_grants", ()
        if view is not None:
            sql, args = sql + " WHERE view = ?", (view,)
        return [dict(r) for r in self.con.execute(sql + " ORDER BY view, subject_type, subject", args)]

    def has_grant(self, principal: str | None, view: str) -> bool:
        """True when ``principal`` holds a grant on ``view`` directly or through a role."""
        if principal is None:
            return False
        roles = self.roles(principal)
        marks = ",".join("?" * len(roles))
        sql = "SELECT 1 FROM gov_grants WHERE view = ? AND ((subject_type = 'principal' AND subject = ?)"
        sql += f" OR (subject_type = 'role' AND subject IN ({marks})))" if roles else ")"
        return self.con.execute(sql, (view, principal, *roles)).fetchone() is not None

    def access_events(self) -> list[dict[str, Any]]:
        """Every grant, revoke and role change, oldest first."""
        return [{k: r[k] for k in r.keys() if k != "seq"}
                for r in self.con.execute("SELECT * FROM gov_access_events ORDER BY seq")]

    def read_log(self, view: str | None = None) -> pd.DataFrame:
        """Logged reads of sensitive/restricted views (allowed and denied), oldest first."""
        sql, args = "SELECT at, principal, view, version, sensitivity, purpose, channel, outcome, reason " \
                    "FROM gov_read_log", ()
        if view is not None:
            sql, args = sql + " WHERE view = ?", (view,)
        rows = [dict(r) for r in self.con.execute(sql + " ORDER BY seq", args)]
        return pd.DataFrame(rows, columns=["at", "principal", "view", "version", "sensitivity", "purpose",
                                           "channel", "outcome", "reason"])
