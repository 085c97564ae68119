"""The feature catalog: owner, description, tags, consumers, usage counts and search."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import IllegalTransitionError, ValidationError
from ._common import SENSITIVITIES, GovernanceBase, text_arg, view_attrs

__all__ = ["CatalogEntry", "CatalogMixin", "CONSUMER_KINDS"]

CONSUMER_KINDS = ("model", "feature_service", "dashboard", "pipeline")


@dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    """What the catalog knows about one feature view version."""

    name: str
    version: int
    owner: str | None
    description: str | None
    sensitivity: str
    tags: dict[str, str]
    state: str
    replacement: str | None
    end_of_life: str | None
    consumers_blocked_from: str | None
    consumers: tuple[str, ...]
    online_reads: int
    offline_reads: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "consumers": list(self.consumers), "tags": dict(self.tags)}


def _tags(value: Any, *, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, (list, tuple, set, frozenset)):
        value = {str(v): "" for v in value}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValidationError(f"{where}: tags must be a dict of strings (or a list of names), got {value!r}.",
                              fix="Pass e.g. tags={'domain': 'payments'}.")
    return {k: str(v) for k, v in value.items()}


class CatalogMixin(GovernanceBase):
    """Catalog operations of ``Governance``."""

    def _upsert(self, con: sqlite3.Connection, view: Any, now: datetime, **override: Any) -> None:
        name, version, sensitivity = view_attrs(view, where="Governance.register")
        owner = override.get("owner") or getattr(view, "owner", None)
        description = override.get("description") or getattr(view, "description", None)
        tags = _tags(override.get("tags") if override.get("tags") is not None else getattr(view, "tags", None),
                     where=f"Governance.register({name!r})")
        con.execute(
            "INSERT INTO gov_views (name, version, owner, description, sensitivity, tags, registered_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO UPDATE SET owner = excluded.owner, "
            "description = excluded.description, sensitivity = excluded.sensitivity, tags = excluded.tags",
            (name, version, owner, description, sensitivity, json.dumps(tags, sort_keys=True), now.isoformat()))

    def register(self, view: Any, *, owner: str | None = None, description: str | None = None,
                 tags: dict[str, str] | Sequence[str] | None = None) -> CatalogEntry:
        """Add or update a view version in the catalog (its attributes, or the overrides given)."""
        name, version, _ = view_attrs(view, where="Governance.register")
        for label, value in (("owner", owner), ("description", description)):
            text_arg(value, where=f"Governance.register({name!r})", name=label, example="payments-ml", optional=True)
        _tags(tags, where=f"Governance.register({name!r})")
        now = self._now()
        with self._tx() as con:
            self._upsert(con, view, now, owner=owner, description=description, tags=tags)
        return self.entry(name, version)

    def entry(self, view: Any, version: int | None = None) -> CatalogEntry:
        """The catalog entry of a view (``version=None``: the latest registered)."""
        name, version = self._ref(view, version, where="Governance.entry")
        self.flush()
        row = self.con.execute("SELECT * FROM gov_views WHERE name = ? AND version = ?", (name, version)).fetchone()
        consumers = tuple(r[0] for r in self.con.execute(
            "SELECT consumer FROM gov_consumers WHERE name = ? AND version = ? ORDER BY consumer", (name, version)))
        usage = dict(self.con.execute("SELECT channel, reads FROM gov_usage WHERE name = ? AND version = ?",
                                      (name, version)).fetchall())
        return CatalogEntry(name=name, version=version, owner=row["owner"], description=row["description"],
                            sensitivity=row["sensitivity"], tags=json.loads(row["tags"]), state=row["state"],
                            replacement=row["replacement"], end_of_life=row["end_of_life"],
                            consumers_blocked_from=row["consumers_blocked_from"], consumers=consumers,
                            online_reads=int(usage.get("online", 0)), offline_reads=int(usage.get("offline", 0)))

    def search(self, text: str | None = None, *, tag: str | None = None, owner: str | None = None,
               sensitivity: str | None = None, state: str | None = None) -> list[CatalogEntry]:
        """Entries whose name or description contains ``text`` (case-insensitive) and that carry
        ``tag`` (a tag key, or ``key=value``), owned by ``owner``, with the given sensitivity/state."""
        for label, value in (("text", text), ("tag", tag), ("owner", owner)):
            text_arg(value, where="Governance.search", name=label, example="txn", optional=True)
        if sensitivity is not None and sensitivity not in SENSITIVITIES:
            raise ValidationError(f"Governance.search: unknown sensitivity {sensitivity!r}.",
                                  fix=f"Use one of {SENSITIVITIES}.")
        out = []
        for row in self.con.execute("SELECT name, version, description, tags, owner, sensitivity, state "
                                    "FROM gov_views ORDER BY name, version"):
            tags = json.loads(row["tags"])
            haystack = f"{row['name']} {row['description'] or ''}".lower()
            if text is not None and text.lower() not in haystack:
                continue
            if tag is not None:
                key, _, value = tag.partition("=")
                if key not in tags or (value and tags[key] != value):
                    continue
            if (owner is not None and row["owner"] != owner) or \
                    (sensitivity is not None and row["sensitivity"] != sensitivity) or \
                    (state is not None and row["state"] != state):
                continue
            out.append(self.entry(row["name"], row["version"]))
        return out

    def add_consumer(self, view: Any, consumer: str, *, actor: str, kind: str = "model",
                     version: int | None = None) -> CatalogEntry:
        """Register ``consumer`` (a model or feature service) as a reader of the view.

        Refused for retired views and for deprecated views once their deprecation blocks new
        consumers (``IllegalTransitionError`` naming the replacement).
        """
        name, version = self._ref(view, version, where="Governance.add_consumer")
        text_arg(consumer, where="Governance.add_consumer", name="consumer", example="fraud_model")
        text_arg(actor, where="Governance.add_consumer", name="actor", example="alice")
        if kind not in CONSUMER_KINDS:
            raise ValidationError(f"Governance.add_consumer: kind must be one of {CONSUMER_KINDS}, got {kind!r}.",
                                  fix="Use kind='model' or kind='feature_service'.")
        now = self._now()
        with self._tx() as con:
            row = con.execute("SELECT state, replacement, consumers_blocked_from FROM gov_views "
                              "WHERE name = ? AND version = ?", (name, version)).fetchone()
            blocked = row["state"] == "retired" or (
                row["state"] == "deprecated" and row["consumers_blocked_from"] is not None
                and now >= datetime.fromisoformat(row["consumers_blocked_from"]))
            if blocked:
                raise IllegalTransitionError(
                    f"Governance.add_consumer: {name} v{version} is {row['state']} and takes no new consumers "
                    f"(blocked since {row['consumers_blocked_from'] or 'retirement'}).",
                    fix=f"Use the replacement {row['replacement']!r} instead." if row["replacement"]
                    else "Use an active feature view.", view=name, version=version, state=row["state"])
            con.execute("INSERT INTO gov_consumers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (name, version, consumer, kind, actor, now.isoformat()))
        return self.entry(name, version)

    def remove_consumer(self, view: Any, consumer: str, *, actor: str, version: int | None = None) -> CatalogEntry:
        """Remove a consumer (e.g. after it migrated to the replacement)."""
        name, version = self._ref(view, version, where="Governance.remove_consumer")
        text_arg(actor, where="Governance.remove_consumer", name="actor", example="alice")
        with self._tx() as con:
            gone = con.execute("DELETE FROM gov_consumers WHERE name = ? AND version = ? AND consumer = ?",
                               (name, version, consumer)).rowcount
            if not gone:
                raise ValidationError(f"Governance.remove_consumer: {consumer!r} is not a consumer of {name} v{version}.",
                                      fix="List them with Governance.entry(view).consumers.")
        return self.entry(name, version)

    def blast_radius(self, view: str) -> list[str]:
        """Every consumer of any version of ``view`` (what breaks if the view breaks)."""
        text_arg(view, where="Governance.blast_radius", name="view", example="user_txn_7d")
        self.flush()
        return [r[0] for r in self.con.execute(
            "SELECT DISTINCT consumer FROM gov_consumers WHERE name = ? ORDER BY consumer", (view,))]

    def usage(self, view: Any, version: int | None = None) -> dict[str, int]:
        """``{"online_reads": n, "offline_reads": m}`` counted by ``check_read`` (buffered counts
        are flushed first, so the answer includes every read made through this object)."""
        entry = self.entry(view, version)
        return {"online_reads": entry.online_reads, "offline_reads": entry.offline_reads}
