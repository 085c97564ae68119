"""The live pointer: promotion, rollback, lineage look-ups and manifest maintenance.

A view's live version is a row of ``live_versions`` in ``features.sqlite`` (absent: the
latest applied version is live). It only moves inside one transaction that first re-checks
what it depends on, so readers see the old version or the new one, never a mix, and a
crash before the commit leaves the old one live. Every move is logged in
``live_version_log`` with the largest ingest id at that moment, so that a rollback can carry
back rows ingested into the promoted version after its promotion.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._io import canonical_json
from ..errors import ConflictError, IllegalTransitionError, NotFoundError, QualityGateError, ValidationError
from .backfill_records import BackfillRecord
from .doctor import VerifyReport, repair_store, verify_store

if TYPE_CHECKING:
    import duckdb

    from .._time import Clock
    from ..workspace import Workspace
    from .definitions import FeatureView
    from .materialize import MaterializationReport
    from .metadata import MetadataDB

__all__ = ["PromotionOps"]


def _us(value: datetime) -> int:
    return int(pd.Timestamp(value).value // 1000)


def _dt(micros: int) -> datetime:
    return pd.Timestamp(micros * 1000, tz="UTC").to_pydatetime()


class PromotionOps:
    """Live versions, promotion and rollback, lineage records (part of ``FeatureStore``)."""

    if TYPE_CHECKING:  # provided by FeatureStore
        meta: MetadataDB
        workspace: Workspace
        clock: Clock
        duckdb: duckdb.DuckDBPyConnection
        _plans: dict

        def get_feature_view(self, name: str, version: int | None = None) -> FeatureView: ...
        def _key_dtypes(self, view: FeatureView) -> dict[str, str]: ...
        def _materialize(self, windows: list[tuple[FeatureView, int | None, int]]) -> MaterializationReport: ...
        def _reload(self) -> None: ...

    # -- live versions ----------------------------------------------------------------------
    def live_version(self, view: str) -> int:
        """The version ``"view:feature"`` reads: the promoted one, else the latest applied."""
        return self.get_feature_view(self._view_name(view)).version

    def live_history(self, view: str) -> list[dict[str, Any]]:
        """Every promotion and rollback of ``view``, oldest first."""
        name = self._view_name(view)
        rows = self.meta._query(
            "SELECT seq, action, from_version, to_version, backfill_id, reason, at_us FROM live_version_log "
            "WHERE view=? ORDER BY seq", (name,))
        keys = ("seq", "action", "from_version", "to_version", "backfill_id", "reason", "at")
        return [dict(zip(keys, r[:-1] + (_dt(r[-1]).isoformat(),))) for r in rows]

    def _view_name(self, view: object) -> str:
        if not isinstance(view, str) or not view or "@" in view or ":" in view:
            raise ValidationError(f"expected a feature view name, got {view!r}.",
                                  fix="Pass the bare view name, e.g. 'user_7d'.")
        self.get_feature_view(view)
        return view

    # -- lineage records --------------------------------------------------------------------
    def get_backfill(self, backfill_id: str) -> BackfillRecord:
        """The lineage record of one backfill."""
        rows = self.meta._query("SELECT record FROM backfills WHERE backfill_id=?",
                                (str(backfill_id),))
        if not rows:
            raise NotFoundError(f"unknown backfill {backfill_id!r}.",
                                fix="List them with store.list_backfills(view).", backfill_id=backfill_id)
        return BackfillRecord.from_dict(json.loads(rows[0][0]))

    def list_backfills(self, view: str | None = None) -> list[BackfillRecord]:
        """Every backfill (of ``view`` if given), oldest first."""
        sql, args = "SELECT record FROM backfills ORDER BY seq", ()
        if view is not None:
            sql, args = "SELECT record FROM backfills WHERE view=? ORDER BY seq", (self._view_name(view),)
        return [BackfillRecord.from_dict(json.loads(r[0])) for r in self.meta._query(sql, args)]

    def _save(self, rec: BackfillRecord, con: Any = None) -> BackfillRecord:
        args = (canonical_json(rec.to_dict()), rec.backfill_id)
        if con is not None:
            con.execute("UPDATE backfills SET record=? WHERE backfill_id=?", args)
        else:
            with self.meta.transaction() as tx:
                tx.execute("UPDATE backfills SET record=? WHERE backfill_id=?", args)
        return rec

    def _event(self, rec: BackfillRecord, event: str, **changes: Any) -> BackfillRecord:
        detail = changes.pop("detail", {})
        entry = {"at": self.clock().isoformat(), "event": event, "detail": detail}
        return dataclasses.replace(rec, events=rec.events + (entry,), **changes)


    # -- promotion --------------------------------------------------------------------------
    def promote_backfill(self, backfill_id: str, *, force_reason: str | None = None,
                         _pause: Callable[[str], None] | None = None) -> BackfillRecord:
        """Make a validated backfill's shadow the live version, atomically.

        Refused when validation failed unless ``force_reason`` says why (recorded), when the
        live version moved since the backfill started, or when live rows inside the window
        changed since validation. The shadow's online table is first brought up to the live
        version's materialization watermark, so online reads do not go empty on the switch.
        """
        rec = self.get_backfill(backfill_id)
        if rec.outcome not in ("validated", "validation_failed", "rolled_back"):
            raise IllegalTransitionError(
                f"backfill {backfill_id!r} is {rec.outcome}; only a validated backfill can be promoted.",
                fix="Finish (or resume) and validate the backfill first.",
                allowed_from=["validated", "validation_failed", "rolled_back"])
        if force_reason is not None and (not isinstance(force_reason, str) or not force_reason.strip()):
            raise ValidationError("promote_backfill: force_reason must be a non-empty text.",
                                  fix="Say why the failed validation is acceptable, e.g. 'bug fix changes values'.")
        report = rec.report
        if report is None or (not report.passed and force_reason is None):
            failed = [] if report is None else report.summary()["failed"]
            raise QualityGateError(f"backfill {backfill_id!r} did not pass validation (failed: {failed}); "
                                   "the live version is unchanged.",
                                   fix="Inspect store.get_backfill(id).report.to_frame(); fix the compute or "
                                   "pass force_reason='why this is acceptable'.", failed=failed)
        if self.live_version(rec.view) != rec.base_version:
            raise ConflictError(f"view {rec.view!r}: live version is v{self.live_version(rec.view)}, but backfill "
                                f"{backfill_id!r} was validated against v{rec.base_version}.",
                                fix="Run a new backfill against the current live version.")
        shadow = self.get_feature_view(rec.view, rec.shadow_version)
        start_us, end_us = _us(datetime.fromisoformat(rec.start)), _us(datetime.fromisoformat(rec.end))
        outside = f"(max_ts_us < {start_us} OR min_ts_us >= {end_us})"
        copy = ("INSERT OR IGNORE INTO offline_files SELECT view, ?, path, rows, min_ts_us, max_ts_us, ingest_id "
                f"FROM offline_files WHERE view=? AND version=? AND {outside}")
        with self.meta.transaction() as con:
            con.execute(copy, (shadow.version, rec.view, rec.base_version))
        mark = self.meta.watermark_us(rec.view, rec.base_version)
        if mark is not None:
            self._materialize([(shadow, None, mark)])
        if _pause is not None:
            _pause("promote:before-commit")
        with self.meta.transaction() as con:
            live = con.execute("SELECT version FROM live_versions WHERE view=?", (rec.view,)).fetchone()
            files = [r for r in con.execute("SELECT path, min_ts_us, max_ts_us FROM offline_files WHERE view=? "
                                            "AND version=? ORDER BY ingest_id, path", (rec.view, rec.base_version))]
            window = [p for p, lo, hi in files if not (hi < start_us or lo >= end_us)]
            missing = con.execute(f"SELECT count(*) FROM offline_files l WHERE view=? AND version=? AND {outside} "
                                  "AND path NOT IN (SELECT path FROM offline_files WHERE view=? AND version=?)",
                                  (rec.view, rec.base_version, rec.view, shadow.version)).fetchone()[0]
            if live is None or live[0] != rec.base_version or window != list(report.live_files) or missing:
                raise ConflictError(f"view {rec.view!r} v{rec.base_version} changed while promoting backfill "
                                    f"{backfill_id!r}; nothing was switched.",
                                    fix="Validate again (store.validate_backfill(id)) and retry the promotion.")
            self._move_live(con, rec.view, rec.base_version, shadow.version, "promote", backfill_id, force_reason)
            rec = self._event(rec, "promoted", outcome="promoted", forced_reason=force_reason,
                              detail={"from_version": rec.base_version, "to_version": shadow.version})
            self._save(rec, con)
        self._plans.clear()
        return rec

    def _move_live(self, con: Any, view: str, old: int, new: int, action: str, backfill_id: str | None,
                   reason: str | None) -> None:
        marker = con.execute("SELECT COALESCE(MAX(ingest_id), 0) FROM offline_files").fetchone()[0]
        con.execute("INSERT INTO live_versions VALUES (?,?) ON CONFLICT(view) DO UPDATE SET version=excluded.version",
                    (view, new))
        con.execute("INSERT INTO live_version_log (view, action, from_version, to_version, backfill_id, reason, "
                    "at_us, marker_ingest_id) VALUES (?,?,?,?,?,?,?,?)",
                    (view, action, old, new, backfill_id, reason, _us(self.clock()), marker))

    def rollback_promotion(self, view: str, *, reason: str | None = None) -> int:
        """Make the version live before the last promotion of ``view`` live again; returns it.

        Rows ingested into the promoted version after its promotion are carried back (their
        files are added to the restored version), and the restored version's online table is
        brought up to the promoted version's watermark before the switch.
        """
        name = self._view_name(view)
        row = self.meta._query("SELECT action, from_version, to_version, backfill_id, marker_ingest_id "
                               "FROM live_version_log WHERE view=? ORDER BY seq DESC LIMIT 1", (name,))
        if not row or row[0][0] != "promote":
            raise IllegalTransitionError(f"view {name!r} has no promotion to roll back.",
                                         fix="Promote a backfill first (store.promote_backfill(id)).")
        _, previous, promoted, backfill_id, marker = row[0]
        with self.meta.transaction() as con:
            con.execute("INSERT OR IGNORE INTO offline_files SELECT view, ?, path, rows, min_ts_us, max_ts_us, "
                        "ingest_id FROM offline_files WHERE view=? AND version=? AND ingest_id > ?",
                        (previous, name, promoted, marker))
        mark = self.meta.watermark_us(name, promoted)
        if mark is not None:
            self._materialize([(self.get_feature_view(name, previous), None, mark)])
        with self.meta.transaction() as con:
            live = con.execute("SELECT version FROM live_versions WHERE view=?", (name,)).fetchone()
            if live is None or live[0] != promoted:
                raise ConflictError(f"view {name!r}: the live version moved during the rollback.",
                                    fix="Check store.live_history(view) and retry.")
            self._move_live(con, name, promoted, previous, "rollback", backfill_id, reason)
            if backfill_id is not None:
                rec = self.get_backfill(backfill_id)
                self._save(self._event(rec, "rolled_back", outcome="rolled_back",
                                       detail={"restored_version": previous, "reason": reason}), con)
        self._plans.clear()
        return previous

    # -- manifest maintenance -------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Check the workspace's feature data is whole (see :mod:`mlops_kit.features.doctor`).

        Returns a ``VerifyReport``: every manifest row against its file (missing, edited),
        orphan files, abandoned writes, the online store against its watermarks, and the
        integrity of the workspace's SQLite databases. Safe while other writers run.
        """
        return verify_store(self)

    def repair(self) -> VerifyReport:
        """Quarantine orphan files and clear abandoned ingest reservations; never deletes.

        Manifest rows whose files are gone are reported, not invented. Run it when no other
        process is writing the workspace. Returns the ``VerifyReport`` after the repair.
        """
        return repair_store(self)

    def forget_offline_files(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Drop Parquet files (or whole ``date=`` folders) from the committed list, in one transaction.

        Readers stop listing them at once, in every version that shares them; the files
        themselves are left for the caller to delete. Made to be the ``before_delete``
        callback of ``mlops_kit.governance.apply_retention``. Returns the manifest rows removed.
        """
        if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Iterable):
            raise ValidationError(f"forget_offline_files: expected a list of paths, got {paths!r}.",
                                  fix="Pass e.g. [workspace.offline_dir / 'user_7d/v1/date=2024-01-01'].")
        root = Path(self.workspace.offline_dir).resolve()
        files, folders = [], []
        for item in list(paths):
            if not isinstance(item, (str, os.PathLike)):
                raise ValidationError(f"forget_offline_files: {item!r} is not a path.", fix="Pass str or Path items.")
            path = Path(item)
            path = (path if path.is_absolute() else root / path).resolve()
            if path == root or root not in path.parents:
                raise ValidationError(f"forget_offline_files: {str(item)!r} is not inside the offline folder "
                                      f"{str(root)!r}; nothing was changed.",
                                      fix="Pass files or date= folders under workspace.offline_dir.")
            rel = path.relative_to(root).as_posix()
            (files if path.suffix == ".parquet" else folders).append(rel)
        return self.meta.remove_files(files, folders)
