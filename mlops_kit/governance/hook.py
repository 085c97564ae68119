"""Read-time governance hook for the feature store (catalog, lifecycle, access control).

The feature store calls ``Governance.check_read`` before every offline or online read.
This module is the single place that decides whether a read may happen (lifecycle state,
sensitivity and grants), warns on deprecated features, counts usage and logs reads of
sensitive or restricted features.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AccessDeniedError, DeprecatedFeatureWarning, ValidationError
from .access import AccessMixin
from .catalog import CatalogMixin
from .lifecycle import LifecycleMixin
from .privacy import RetentionResult, apply_retention
from ._common import view_attrs

if TYPE_CHECKING:  # pragma: no cover
    from ..workspace import Workspace

__all__ = ["Governance", "CHANNELS", "LOGGED_SENSITIVITIES"]

CHANNELS = ("offline", "online")
LOGGED_SENSITIVITIES = ("sensitive", "restricted")


class Governance(CatalogMixin, LifecycleMixin, AccessMixin):
    """Catalog, lifecycle and access control of a workspace's feature views.

    State lives in the workspace's ``features.sqlite`` (tables ``gov_*``); every operation is
    one transaction and takes "now" from ``clock`` (default: the wall clock, at the edge).

    Parameters
    ----------
    workspace:
        A ``Workspace`` or its root folder.
    clock:
        Zero-argument callable returning a tz-aware UTC datetime.

    Examples
    --------
    >>> import tempfile, types
    >>> from datetime import datetime, timezone
    >>> from mlops_kit._time import FixedClock
    >>> gov = Governance(tempfile.mkdtemp(), clock=FixedClock(datetime(2024, 1, 1, tzinfo=timezone.utc)))
    >>> pii = types.SimpleNamespace(name="card_pii", version=1, sensitivity="restricted")
    >>> gov.check_read([pii], principal=None, purpose="training", channel="offline")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mlops_kit.errors.AccessDeniedError: read refused for anonymous principal: card_pii v1 (restricted, no grant). Fix: ...
    """

    def __init__(self, workspace: "Workspace | str | Path", *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(workspace, clock=clock)

    def check_read(
        self,
        views: Sequence[Any],
        *,
        principal: str | None,
        purpose: str | None,
        channel: str,
    ) -> None:
        """Raise if the read is not allowed; warn, count and log otherwise.

        For each view (any object with ``.name``, ``.version``, ``.sensitivity``): the view is
        registered in the catalog if new; a ``retired`` view, or a ``restricted`` one without a
        grant for ``principal`` (None is the anonymous principal, holding no grant), refuses
        the whole read with ``AccessDeniedError`` listing every refused view (denials of
        sensitive/restricted views are logged). Otherwise usage counts go up by one per view
        and channel, reads of sensitive/restricted views are logged, and each deprecated view
        raises a ``DeprecatedFeatureWarning`` naming its replacement and end of life.
        """
        if channel not in CHANNELS:
            raise ValidationError(f"check_read: channel must be one of {CHANNELS}, got {channel!r}.",
                                  fix="Use channel='offline' for training reads, 'online' for serving reads.")
        if principal is not None and (not isinstance(principal, str) or not principal.strip()):
            raise ValidationError(f"check_read: principal must be a non-empty string or None, got {principal!r}.",
                                  fix="Pass the reading service or person, e.g. principal='svc-fraud-scoring'.")
        if purpose is not None and not isinstance(purpose, str):
            raise ValidationError(f"check_read: purpose must be a string or None, got {purpose!r}.",
                                  fix="Pass e.g. purpose='training fraud_model v7'.")
        if isinstance(views, (str, bytes)) or hasattr(views, "name") or not hasattr(views, "__iter__"):
            views = [views]  # one view object (or bad input, refused below)
        refs = list({(r[1], r[2]): r for r in ((view, *view_attrs(view, where="check_read"))
                                                  for view in views)}.values())
        if not refs:
            raise ValidationError("check_read: no views given.", fix="Pass the feature views the read touches.")
        now = self._now()
        stamp = now.isoformat()
        denied: list[tuple[str, int, str, str]] = []
        deprecations: list[str] = []
        with self._tx() as con:
            for view, name, version, sensitivity in refs:
                if con.execute("SELECT 1 FROM gov_views WHERE name = ? AND version = ?",
                               (name, version)).fetchone() is None:
                    self._upsert(con, view, now)
                row = con.execute("SELECT state, replacement, end_of_life FROM gov_views WHERE name = ? AND "
                                  "version = ?", (name, version)).fetchone()
                if row["state"] == "retired":
                    denied.append((name, version, sensitivity, "retired"))
                elif sensitivity == "restricted" and not self.has_grant(principal, name):
                    denied.append((name, version, sensitivity, "no grant"))
                elif row["state"] == "deprecated":
                    deprecations.append(f"{name} v{version} is deprecated: use {row['replacement']} instead "
                                        f"(end of life {row['end_of_life']}).")
            outcome = "denied" if denied else "allowed"
            denied_keys = {(d[0], d[1]): d[3] for d in denied}
            for _, name, version, sensitivity in refs:
                if sensitivity in LOGGED_SENSITIVITIES:
                    con.execute("INSERT INTO gov_read_log (at, principal, view, version, sensitivity, purpose, "
                                "channel, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (stamp, principal, name, version, sensitivity, purpose, channel, outcome,
                                 denied_keys.get((name, version))))
                if not denied:
                    con.execute("INSERT INTO gov_usage VALUES (?, ?, ?, 1, ?) ON CONFLICT (name, version, channel) "
                                "DO UPDATE SET reads = reads + 1, last_read_at = excluded.last_read_at",
                                (name, version, channel, stamp))
        if denied:
            who = "anonymous principal" if principal is None else f"principal {principal!r}"
            listing = "; ".join(f"{n} v{v} ({s}, {why})" for n, v, s, why in denied)
            raise AccessDeniedError(
                f"read refused for {who}: {listing}.",
                fix="Ask a data owner for a grant (Governance.grant) or read the replacement of retired views.",
                principal=principal, denied=[{"view": n, "version": v, "sensitivity": s, "reason": why}
                                             for n, v, s, why in denied])
        for message in deprecations:
            warnings.warn(message, DeprecatedFeatureWarning, stacklevel=2)

    def apply_retention(self, *, max_age: Any, actor: str, target: Any = None, dry_run: bool = False,
                        before_delete: Callable[[list[Path]], None] | None = None) -> RetentionResult:
        """Delete offline partitions older than ``max_age`` (see ``apply_retention``), logged in
        the ``gov_retention_log`` table. ``target`` defaults to the workspace's offline folder;
        ``before_delete`` lets the feature store drop the folders from its manifest first."""
        if not isinstance(actor, str) or not actor.strip():
            raise ValidationError(f"Governance.apply_retention: actor must be a non-empty string, got {actor!r}.",
                                  fix="Pass actor='retention-job'.")
        result = apply_retention(self.workspace.offline_dir if target is None else target, max_age=max_age,
                                 now=self._now(), dry_run=dry_run, before_delete=before_delete)
        with self._tx() as con:
            for item in result.deleted:
                con.execute("INSERT INTO gov_retention_log (at, path, partition_date, max_age_seconds, dry_run, "
                            "actor) VALUES (?, ?, ?, ?, ?, ?)",
                            (result.now.isoformat(), item["path"], item["partition_date"],
                             result.max_age.total_seconds(), int(dry_run), actor))
        return result

    def retention_log(self) -> list[dict[str, Any]]:
        """Every partition deletion (or dry-run candidate) recorded by ``apply_retention``."""
        return [{k: r[k] for k in r.keys() if k != "seq"}
                for r in self.con.execute("SELECT * FROM gov_retention_log ORDER BY seq")]
