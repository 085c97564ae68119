"""Version states, alias moves, approvals, deploy and rollback (the registry's write paths).

States form an explicit transition table; an illegal move names the allowed targets::

    registered  -> candidate | rejected | archived
    candidate   -> staging | rejected | archived
    staging     -> approved | rejected | archived
    approved    -> deployed | rejected | archived
    deployed    -> rolled-back | archived
    rolled-back -> rejected | archived
    rejected    -> archived
    archived    -> (final)

Aliases are mutable pointers. The stage aliases ``candidate``, ``staging`` and
``approved-prod`` move only through :meth:`promote` (which runs the stage's policies and,
for ``approved-prod``, requires the approvals); ``deployed-prod`` moves only through
:meth:`deploy` (to the version holding ``approved-prod``) and :meth:`rollback` (to the last
known-good deployed version). Free-form aliases move through :meth:`promote` too.
Each call is one transaction with exactly one audit entry.
"""

from __future__ import annotations

import json
from typing import Any

from .._io import canonical_json
from ..errors import (
    ApprovalError,
    ConflictError,
    IllegalTransitionError,
    PolicyViolationError,
    RegistryError,
    ValidationError,
)
from ._names import check_name
from .entities import Approval, Attestation
from .policies import PolicyContext

__all__ = ["LifecycleMixin", "STATES", "TRANSITIONS", "STAGE_ALIASES", "DEPLOYED_ALIAS"]

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "registered": ("candidate", "rejected", "archived"),
    "candidate": ("staging", "rejected", "archived"),
    "staging": ("approved", "rejected", "archived"),
    "approved": ("deployed", "rejected", "archived"),
    "deployed": ("rolled-back", "archived"),
    "rolled-back": ("rejected", "archived"),
    "rejected": ("archived",),
    "archived": (),
}
STATES = tuple(TRANSITIONS)
STAGE_ALIASES = {"candidate": "candidate", "staging": "staging", "approved-prod": "approved"}
DEPLOYED_ALIAS = "deployed-prod"
#: States reached only through promote / deploy / rollback (never by a bare transition()).
_GATED = {"staging": "promote(name, version, to='staging')",
          "approved": "promote(name, version, to='approved-prod')",
          "deployed": "deploy(name)", "rolled-back": "rollback(name)"}
_INACTIVE = ("rejected", "archived", "rolled-back")


def _text(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}: {field} must be a non-empty string, got {value!r}.",
                              fix=f"Say {field} in a few words.")
    return value


class LifecycleMixin:
    """Write paths of :class:`~mlops_kit.registry.ModelRegistry` (mixed into it)."""

    # helpers --------------------------------------------------------------------------
    def _alias_holder(self, conn: Any, name: str, alias: str) -> int | None:
        row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
        return None if row is None else int(row[0])

    def _move_alias(self, conn: Any, *, name: str, alias: str, to: int | None, action: str, actor: str,
                    reason: str, at: str, seq: int) -> dict[str, Any]:
        before = self._alias_holder(conn, name, alias)
        if to is None:
            conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
        else:
            conn.execute("INSERT INTO aliases (name, alias, version) VALUES (?, ?, ?) "
                         "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version", (name, alias, to))
        conn.execute("INSERT INTO alias_events (name, alias, from_version, to_version, action, actor, reason, at, "
                     "audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (name, alias, before, to, action, actor, reason, at, seq))
        return {"alias": alias, "from_version": before, "to_version": to}

    def _set_state(self, conn: Any, *, name: str, version: int, to_state: str, actor: str, reason: str,
                   at: str, seq: int) -> dict[str, Any]:
        before = conn.execute("SELECT state FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()[0]
        conn.execute("UPDATE versions SET state = ? WHERE name = ? AND version = ?", (to_state, name, version))
        conn.execute("INSERT INTO state_events (name, version, from_state, to_state, actor, reason, at, audit_seq) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (name, version, before, to_state, actor, reason, at, seq))
        return {"version": version, "from_state": before, "to_state": to_state}

    @staticmethod
    def _check_move(state: str, to_state: str, where: str) -> None:
        if to_state not in TRANSITIONS[state]:
            raise IllegalTransitionError(
                f"{where}: a version in state {state!r} cannot move to {to_state!r}; allowed: "
                f"{list(TRANSITIONS[state]) or 'none (final state)'}.",
                fix="Follow the transition table (registered -> candidate -> staging -> approved -> deployed).",
                from_state=state, to_state=to_state, allowed=list(TRANSITIONS[state]))

    def _approvals(self, conn: Any, name: str, version: int) -> list[Approval]:
        rows = conn.execute("SELECT * FROM approvals WHERE name = ? AND version = ? ORDER BY id",
                            (name, version)).fetchall()
        return [Approval.from_dict({k: r[k] for k in r.keys() if k != "id"}) for r in rows]

    # promote ----------------------------------------------------------------------------
    def promote(self, name: str, version: int, to: str, *, actor: str, reason: str = "promotion") -> Any:
        """Point alias ``to`` at ``version`` after running the stage's policies.

        For the stage aliases the version's state advances (``candidate`` -> ``candidate``,
        ``staging`` -> ``staging``, ``approved-prod`` -> ``approved``) and must be reachable
        by the transition table; ``approved-prod`` also needs the approvals. Every policy
        result is stored as an attestation; if any fails, the attestations and a
        ``promotion_blocked`` audit entry are committed, the alias does not move, and
        :class:`PolicyViolationError` lists every reason.
        """
        check_name("alias", to, where="promote")
        check_name("actor", actor, where="promote")
        _text(reason, "reason", "promote")
        if to == DEPLOYED_ALIAS:
            raise IllegalTransitionError("promote: 'deployed-prod' moves only through deploy() and rollback().",
                                         fix="Promote to 'approved-prod', then call deploy(name, actor=...).")
        at = self._now().isoformat()
        blocked: list[Attestation] = []
        with self._store.write() as conn:
            row = self._require_version(conn, name, version, "promote")
            state = row["state"]
            target_state = STAGE_ALIASES.get(to)
            if state in _INACTIVE:
                raise IllegalTransitionError(f"promote: {name!r} v{version} is {state!r} and cannot take alias {to!r}.",
                                             fix="Register or pick a version that is not rejected, archived or "
                                             "rolled back.", state=state)
            if target_state is not None and target_state != state:
                self._check_move(state, target_state, f"promote({name!r} v{version} to {to!r})")
            if self._alias_holder(conn, name, to) == version:
                raise ConflictError(f"promote: alias {to!r} already points at {name!r} v{version}.",
                                    fix="Nothing to do; promote a different version.", alias=to)
            if to == "approved-prod":
                gaps = self.approval_rule.missing_roles(self._approvals(conn, name, version), author=row["author"])
                if gaps:
                    raise ApprovalError(f"promote: {name!r} v{version} lacks approvals in roles {gaps} "
                                        "(from principals other than the author).",
                                        fix="Call approve(name, version, actor=..., role=..., note=...) for each.",
                                        missing_roles=gaps)
            candidate = self._version_from_row(conn, row)
            prod_v = self._alias_holder(conn, name, DEPLOYED_ALIAS)
            production = None if prod_v is None else self._version_from_row(
                conn, self._require_version(conn, name, prod_v, "promote"))
            context = PolicyContext(candidate=candidate, production=production, stage=to)
            results = [Attestation(policy_id=r.policy_id, stage=to, inputs=dict(r.inputs), observed=r.observed,
                                   threshold=r.threshold, verdict="pass" if r.passed else "fail", reason=r.reason,
                                   at=self._now(), name=name, version=version)
                       for r in (p.evaluate(context) for p in self.policies_for(to))]
            blocked = [a for a in results if not a.passed]
            summary = [{"policy_id": a.policy_id, "verdict": a.verdict} for a in results]
            payload: dict[str, Any] = {"name": name, "version": version, "alias": to, "reason": reason,
                                       "attestations": summary}
            action = "promotion_blocked" if blocked else "promote"
            seq = self.audit.append(conn, at=at, actor=actor, action=action, payload=payload)
            for att in results:
                body = json.loads(canonical_json(att.body()))
                conn.execute("INSERT INTO attestations (name, version, stage, policy_id, body_json, verdict, at, "
                             "audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (name, version, to, att.policy_id, canonical_json(body), att.verdict,
                              att.at.isoformat(), seq))
            if not blocked:
                self._move_alias(conn, name=name, alias=to, to=version, action="promote", actor=actor,
                                 reason=reason, at=at, seq=seq)
                if target_state is not None and target_state != state:
                    self._set_state(conn, name=name, version=version, to_state=target_state, actor=actor,
                                    reason=reason, at=at, seq=seq)
        if blocked:
            raise PolicyViolationError(
                f"promote: {name!r} v{version} to {to!r} blocked by {len(blocked)} polic"
                f"{'y' if len(blocked) == 1 else 'ies'}: " + "; ".join(f"{a.policy_id}: {a.reason}" for a in blocked),
                fix="Fix what the failing policies report (attestations are stored on the version).",
                failures=[a.to_dict() for a in blocked])
        return self.get_model_version(name, version)

    # approvals --------------------------------------------------------------------------
    def approve(self, name: str, version: int, *, actor: str, role: str, note: str) -> Approval:
        """Record ``actor``'s approval of ``version`` in ``role`` (never by the author; once per principal)."""
        check_name("actor", actor, where="approve")
        check_name("role", role, where="approve")
        _text(note, "note", "approve")
        at = self._now().isoformat()
        with self._store.write() as conn:
            row = self._require_version(conn, name, version, "approve")
            if row["state"] in _INACTIVE:
                raise IllegalTransitionError(f"approve: {name!r} v{version} is {row['state']!r}; it cannot be approved.",
                                             fix="Approve an active version.", state=row["state"])
            self.approval_rule.check_approver(actor=actor, role=role, author=row["author"],
                                              existing=self._approvals(conn, name, version))
            seq = self.audit.append(conn, at=at, actor=actor, action="approve",
                                    payload={"name": name, "version": version, "role": role, "note": note})
            conn.execute("INSERT INTO approvals (name, version, actor, role, note, at, audit_seq) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, version, actor, role, note, at, seq))
        return Approval.from_dict({"name": name, "version": version, "actor": actor, "role": role, "note": note,
                                   "at": at, "audit_seq": seq})

    # deploy / rollback ------------------------------------------------------------------
    def deploy(self, name: str, *, actor: str, reason: str = "deploy the approved version") -> Any:
        """Move ``deployed-prod`` to the version that holds ``approved-prod``."""
        check_name("actor", actor, where="deploy")
        _text(reason, "reason", "deploy")
        at = self._now().isoformat()
        with self._store.write() as conn:
            self._require_model(conn, name, "deploy")
            target = self._alias_holder(conn, name, "approved-prod")
            if target is None:
                raise RegistryError(f"deploy: no version of {name!r} holds 'approved-prod'.",
                                    fix="Approve and promote a version to 'approved-prod' first.")
            if self._alias_holder(conn, name, DEPLOYED_ALIAS) == target:
                raise ConflictError(f"deploy: {name!r} v{target} is already deployed.",
                                    fix="Nothing to do; approve a new version to deploy it.")
            state = conn.execute("SELECT state FROM versions WHERE name = ? AND version = ?",
                                 (name, target)).fetchone()[0]
            seq = self.audit.append(conn, at=at, actor=actor, action="deploy",
                                    payload={"name": name, "version": target, "reason": reason})
            self._move_alias(conn, name=name, alias=DEPLOYED_ALIAS, to=target, action="deploy", actor=actor,
                             reason=reason, at=at, seq=seq)
            if state != "deployed":
                self._check_move(state, "deployed", "deploy")
                self._set_state(conn, name=name, version=target, to_state="deployed", actor=actor, reason=reason,
                                at=at, seq=seq)
        return self.get_model_version(name, target)

    def rollback(self, name: str, *, actor: str, to: int | None = None, reason: str = "rollback") -> Any:
        """Return ``deployed-prod`` to the last known-good version (or ``to``) in one call.

        Known-good: held ``deployed-prod`` before, is still in state ``deployed`` (never
        rejected, archived or rolled back from) and is not the current one. The version
        rolled back from becomes ``rolled-back``; if it also held ``approved-prod``, that
        alias follows to the same target so a later ``deploy`` cannot redeploy it.
        """
        check_name("actor", actor, where="rollback")
        _text(reason, "reason", "rollback")
        if to is not None and (isinstance(to, bool) or not isinstance(to, int) or to < 1):
            raise ValidationError(f"rollback: to must be a version number or None, got {to!r}.",
                                  fix="Pass e.g. to=3, or leave it out for the last known-good version.")
        at = self._now().isoformat()
        with self._store.write() as conn:
            self._require_model(conn, name, "rollback")
            current = self._alias_holder(conn, name, DEPLOYED_ALIAS)
            if current is None:
                raise RegistryError(f"rollback: nothing of {name!r} is deployed.", fix="Deploy a version first.")
            history = [r[0] for r in conn.execute(
                "SELECT to_version FROM alias_events WHERE name = ? AND alias = ? AND to_version IS NOT NULL "
                "ORDER BY id", (name, DEPLOYED_ALIAS))]
            states = dict(conn.execute("SELECT version, state FROM versions WHERE name = ?", (name,)).fetchall())
            good = [v for v in dict.fromkeys(reversed(history)) if v != current and states.get(v) == "deployed"]
            if to is None:
                if not good:
                    raise RegistryError(f"rollback: {name!r} has no known-good version to return to "
                                        f"(deployed so far: {sorted(set(history))}).",
                                        fix="Deploy a fixed version instead, or pause traffic.")
                target = good[0]
            else:
                self._require_version(conn, name, to, "rollback")
                if to not in good:
                    why = ("it is the current version" if to == current else
                           f"it is {states[to]!r}" if to in history else "it was never deployed")
                    raise RegistryError(f"rollback: cannot return {name!r} to v{to}: {why}; known-good: {good}.",
                                        fix="Pick one of the known-good versions or leave to=None.")
                target = to
            seq = self.audit.append(conn, at=at, actor=actor, action="rollback",
                                    payload={"name": name, "from_version": current, "to_version": target,
                                             "reason": reason})
            self._move_alias(conn, name=name, alias=DEPLOYED_ALIAS, to=target, action="rollback", actor=actor,
                             reason=reason, at=at, seq=seq)
            if self._alias_holder(conn, name, "approved-prod") == current:
                self._move_alias(conn, name=name, alias="approved-prod", to=target, action="rollback",
                                 actor=actor, reason=reason, at=at, seq=seq)
            self._set_state(conn, name=name, version=current, to_state="rolled-back", actor=actor, reason=reason,
                            at=at, seq=seq)
        return self.get_model_version(name, target)

    # manual transitions -----------------------------------------------------------------
    def transition(self, name: str, version: int, to_state: str, *, actor: str, reason: str) -> Any:
        """Move a version's state by hand (``candidate``, ``rejected``, ``archived``).

        The other states are reached only through promote/deploy/rollback. Rejecting or
        archiving removes the aliases the version holds (recorded in their history); a
        version holding ``deployed-prod`` must be rolled back first.
        """
        check_name("actor", actor, where="transition")
        _text(reason, "reason", "transition")
        if to_state not in STATES:
            raise ValidationError(f"transition: unknown state {to_state!r}.", fix=f"Use one of {list(STATES)}.")
        at = self._now().isoformat()
        with self._store.write() as conn:
            row = self._require_version(conn, name, version, "transition")
            self._check_move(row["state"], to_state, f"transition({name!r} v{version})")
            if to_state in _GATED:
                raise IllegalTransitionError(f"transition: {to_state!r} is reached only through {_GATED[to_state]}.",
                                             fix=f"Call {_GATED[to_state]} so its gates run.")
            held = [r[0] for r in conn.execute("SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias",
                                               (name, version))]
            if DEPLOYED_ALIAS in held:
                raise RegistryError(f"transition: {name!r} v{version} is serving ('deployed-prod').",
                                    fix="Roll it back first: rollback(name, actor=...).")
            seq = self.audit.append(conn, at=at, actor=actor, action="transition",
                                    payload={"name": name, "version": version, "from_state": row["state"],
                                             "to_state": to_state, "reason": reason, "aliases_removed": held})
            for alias in held if to_state in ("rejected", "archived") else []:
                self._move_alias(conn, name=name, alias=alias, to=None, action="remove", actor=actor,
                                 reason=reason, at=at, seq=seq)
            self._set_state(conn, name=name, version=version, to_state=to_state, actor=actor, reason=reason,
                            at=at, seq=seq)
        return self.get_model_version(name, version)
