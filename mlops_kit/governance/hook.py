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
    ``check_read`` decides from an in-memory cache revalidated on every call (one ``PRAGMA
    data_version``: a commit by any other connection or process is seen by the next read) and
    buffers usage counts, written every ``usage_flush_every`` reads and by ``flush()``,
    ``close()`` and every method that reads usage back; counts still buffered when the process
    dies without ``flush()``/``close()`` are lost (no exit hook is installed).

    Parameters
    ----------
    workspace:
        A ``Workspace`` or its root folder.
    clock:
        Zero-argument callable returning a tz-aware UTC datetime.
    usage_flush_every:
        Write the buffered usage counts after this many counted ``check_read`` calls
        (1: on every call).

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

    def __init__(self, workspace: "Workspace | str | Path", *, clock: Callable[[], datetime] | None = None,
                 usage_flush_every: int = 1000) -> None:
        super().__init__(workspace, clock=clock, usage_flush_every=usage_flush_every)

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
        and channel (buffered in memory, see the class notes), reads of sensitive/restricted
        views are logged in a transaction committed before this returns, and each deprecated
        view raises a ``DeprecatedFeatureWarning`` naming its replacement and end of life.
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
        denied: list[tuple[str, int, str, str]] = []
        deprecations: list[str] = []
        with self._lock:
            self._revalidate()
            for view, name, version, sensitivity in refs:
                state, replacement, end_of_life = self._view_state(view, name, version, now)
                if state == "retired":
                    denied.append((name, version, sensitivity, "retired"))
                elif sensitivity == "restricted" and not self._granted(principal, name):
                    denied.append((name, version, sensitivity, "no grant"))
                elif state == "deprecated":
                    deprecations.append(f"{name} v{version} is deprecated: use {replacement} instead "
                                        f"(end of life {end_of_life}).")
            read_keys = [] if denied else [(name, version, channel) for _, name, version, _ in refs]
            if any(sensitivity in LOGGED_SENSITIVITIES for *_, sensitivity in refs):
                self._log_read(refs, denied, read_keys, principal=principal, purpose=purpose,
                               channel=channel, now=now)
            elif read_keys:
                for key in read_keys:
                    self._count(key, now)
                self._pending_reads += 1
                if self._pending_reads >= self.usage_flush_every:
                    self.flush()
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

    def _view_state(self, view: Any, name: str, version: int, now: datetime) -> tuple[str, str | None, str | None]:
        """``(state, replacement, end_of_life)`` from the cache, registering the view if new."""
        cached = self._view_cache.get((name, version))
        if cached is None:
            sql = "SELECT state, replacement, end_of_life FROM gov_views WHERE name = ? AND version = ?"
            row = self.con.execute(sql, (name, version)).fetchone()
            if row is None:
                with self._tx(invalidate=False) as con:  # only this view's row changes: cached below
                    if con.execute(sql, (name, version)).fetchone() is None:
                        self._upsert(con, view, now)
                    row = con.execute(sql, (name, version)).fetchone()
            cached = self._view_cache[(name, version)] = (row[0], row[1], row[2])
        return cached

    def _granted(self, principal: str | None, name: str) -> bool:
        if principal is None:
            return False
        decision = self._grant_cache.get((principal, name))
        if decision is None:
            decision = self._grant_cache[(principal, name)] = self.has_grant(principal, name)
        return decision

    def _log_read(self, refs: list[tuple[Any, str, int, str]], denied: list[tuple[str, int, str, str]],
                  read_keys: list[tuple[str, int, str]], *, principal: str | None, purpose: str | None,
                  channel: str, now: datetime) -> None:
        """Log a read touching sensitive/restricted views durably (one transaction, committed
        before the data is returned), together with the buffered usage counts and this read's."""
        stamp = now.isoformat()
        outcome = "denied" if denied else "allowed"
        reasons = {(d[0], d[1]): d[3] for d in denied}
        with self._tx(invalidate=False) as con:
            con.executemany("INSERT INTO gov_read_log (at, principal, view, version, sensitivity, purpose, "
                            "channel, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(stamp, principal, name, version, sensitivity, purpose, channel, outcome,
                              reasons.get((name, version))) for _, name, version, sensitivity in refs
                             if sensitivity in LOGGED_SENSITIVITIES])
            self._write_usage(con, extra=read_keys, at=now)
        self._drop_usage()

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
