"""Feature lifecycle through an explicit transition table, every move recorded.

``active -> deprecated`` (with a replacement and an end-of-life date; reads warn; new
consumers are refused from ``consumers_blocked_from``, by default at once), ``deprecated ->
active`` (the deprecation is withdrawn), ``deprecated -> retired`` (reads refused; only once
the end of life is reached and no consumer is left, unless forced). ``retired`` is final.
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any

from .._time import ensure_utc
from ..errors import IllegalTransitionError, ValidationError
from ._common import GovernanceBase, text_arg

__all__ = ["TRANSITIONS", "STATES", "LifecycleMixin"]

STATES = ("active", "deprecated", "retired")
TRANSITIONS = MappingProxyType({
    "active": ("deprecated",),
    "deprecated": ("active", "retired"),
    "retired": (),
})


class LifecycleMixin(GovernanceBase):
    """Lifecycle operations of ``Governance``."""

    def state(self, view: Any, version: int | None = None) -> str:
        """``'active'``, ``'deprecated'`` or ``'retired'``."""
        name, version = self._ref(view, version, where="Governance.state")
        return self.con.execute("SELECT state FROM gov_views WHERE name = ? AND version = ?",
                                (name, version)).fetchone()[0]

    def _move(self, view: Any, version: int | None, to: str, *, actor: str, reason: str,
              replacement: str | None = None, end_of_life: datetime | None = None,
              consumers_blocked_from: datetime | None = None, check: Any = None) -> str:
        where = f"Governance.{ {'deprecated': 'deprecate', 'retired': 'retire', 'active': 'reactivate'}[to] }"
        name, version = self._ref(view, version, where=where)
        text_arg(actor, where=where, name="actor", example="alice")
        text_arg(reason, where=where, name="reason", example="superseded by user_txn_7d v2")
        now = self._now()
        with self._tx() as con:
            current = con.execute("SELECT state FROM gov_views WHERE name = ? AND version = ?",
                                  (name, version)).fetchone()[0]
            allowed = TRANSITIONS[current]
            if to not in allowed:
                raise IllegalTransitionError(
                    f"{name} v{version}: cannot move from {current!r} to {to!r}; allowed from {current!r}: "
                    f"{list(allowed) or 'none (final state)'}.",
                    fix="Follow the lifecycle active -> deprecated -> retired.",
                    view=name, version=version, current=current, target=to, allowed=list(allowed))
            if check is not None:
                check(con, name, version, now)
            iso = [None if t is None else t.isoformat() for t in (end_of_life, consumers_blocked_from)]
            if to == "active":
                con.execute("UPDATE gov_views SET state = 'active', replacement = NULL, end_of_life = NULL, "
                            "consumers_blocked_from = NULL WHERE name = ? AND version = ?", (name, version))
            elif to == "deprecated":
                con.execute("UPDATE gov_views SET state = 'deprecated', replacement = ?, end_of_life = ?, "
                            "consumers_blocked_from = ? WHERE name = ? AND version = ?",
                            (replacement, iso[0], iso[1], name, version))
            else:
                con.execute("UPDATE gov_views SET state = 'retired' WHERE name = ? AND version = ?", (name, version))
            con.execute("INSERT INTO gov_transitions (name, version, from_state, to_state, actor, at, reason, "
                        "replacement, end_of_life, consumers_blocked_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (name, version, current, to, actor, now.isoformat(), reason, replacement, *iso))
        return to

    def deprecate(self, view: Any, *, replacement: str, end_of_life: datetime, actor: str, reason: str,
                  consumers_blocked_from: datetime | None = None, version: int | None = None) -> str:
        """Mark a view version deprecated in favour of ``replacement`` (e.g. ``"user_txn_7d:v2"``).

        ``end_of_life`` must be in the future; new consumers are refused from
        ``consumers_blocked_from`` (default: now), which must not be after ``end_of_life``.
        """
        text_arg(replacement, where="Governance.deprecate", name="replacement", example="user_txn_7d:v2")
        now = self._now()
        eol = ensure_utc(end_of_life, name="Governance.deprecate(end_of_life)")
        if eol <= now:
            raise ValidationError(f"Governance.deprecate: end_of_life {eol.isoformat()} is not after now "
                                  f"({now.isoformat()}).", fix="Give consumers time to migrate: a future date.")
        blocked = now if consumers_blocked_from is None else ensure_utc(
            consumers_blocked_from, name="Governance.deprecate(consumers_blocked_from)")
        if blocked > eol:
            raise ValidationError(f"Governance.deprecate: consumers_blocked_from {blocked.isoformat()} is after "
                                  f"end_of_life {eol.isoformat()}.", fix="Block new consumers at or before end of life.")
        return self._move(view, version, "deprecated", actor=actor, reason=reason, replacement=replacement,
                          end_of_life=eol, consumers_blocked_from=blocked)

    def reactivate(self, view: Any, *, actor: str, reason: str, version: int | None = None) -> str:
        """Withdraw a deprecation (deprecated -> active)."""
        return self._move(view, version, "active", actor=actor, reason=reason)

    def retire(self, view: Any, *, actor: str, reason: str, force: bool = False, version: int | None = None) -> str:
        """Retire a deprecated view: reads are refused from now on.

        Refused before the end of life or while consumers are registered (they would break),
        unless ``force=True`` (recorded in the transition's reason).
        """
        def check(con: Any, name: str, ver: int, now: datetime) -> None:
            if force:
                return
            eol = con.execute("SELECT end_of_life FROM gov_views WHERE name = ? AND version = ?",
                              (name, ver)).fetchone()[0]
            left = [r[0] for r in con.execute("SELECT consumer FROM gov_consumers WHERE name = ? AND version = ? "
                                              "ORDER BY consumer", (name, ver))]
            problems = []
            if eol is not None and now < datetime.fromisoformat(eol):
                problems.append(f"its end of life {eol} is not reached")
            if left:
                problems.append(f"consumers still registered: {left}")
            if problems:
                raise IllegalTransitionError(f"{name} v{ver}: cannot retire yet: {'; '.join(problems)}.",
                                             fix="Migrate the consumers and wait for the end of life, or pass force=True.",
                                             view=name, version=ver, consumers=left)

        return self._move(view, version, "retired", actor=actor, reason=reason + (" [forced]" if force else ""),
                          check=check)

    def history(self, view: Any, version: int | None = None) -> list[dict[str, Any]]:
        """Every lifecycle transition of the view version, oldest first (who, when, from, to, why)."""
        name, version = self._ref(view, version, where="Governance.history")
        rows = self.con.execute("SELECT * FROM gov_transitions WHERE name = ? AND version = ? ORDER BY seq",
                                (name, version)).fetchall()
        return [{k: row[k] for k in row.keys() if k != "seq"} for row in rows]
