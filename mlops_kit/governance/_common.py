"""Shared plumbing of the governance mixins: workspace, clock, connection, argument checks."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .._time import ensure_utc, system_clock
from ..errors import NotFoundError, ValidationError
from . import _db

__all__ = ["GovernanceBase", "SENSITIVITIES", "text_arg", "view_attrs"]

SENSITIVITIES = ("public", "internal", "sensitive", "restricted")


def text_arg(value: Any, *, where: str, name: str, example: str, optional: bool = False) -> str | None:
    """A non-empty string argument (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}: {name} must be a non-empty string, got {value!r}.",
                              fix=f"Pass e.g. {name}={example!r}.")
    return value


def view_attrs(view: Any, *, where: str) -> tuple[str, int, str]:
    """``(name, version, sensitivity)`` of a feature-view-like object (duck typing)."""
    name = getattr(view, "name", None)
    version = getattr(view, "version", None)
    sensitivity = getattr(view, "sensitivity", None)
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{where}: {view!r} has no usable .name.",
                              fix="Pass FeatureView objects (with .name, .version, .sensitivity).")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(f"{where}: view {name!r} has version {version!r}; expected an integer >= 1.",
                              fix="Pass FeatureView objects with an integer version.")
    if sensitivity not in SENSITIVITIES:
        raise ValidationError(f"{where}: view {name!r} has sensitivity {sensitivity!r}.",
                              fix=f"Use one of {SENSITIVITIES}.")
    return name, version, sensitivity


class GovernanceBase:
    """Holds the workspace, the clock and one SQLite connection to ``features.sqlite``."""

    def __init__(self, workspace: Any, *, clock: Callable[[], datetime] | None = None) -> None:
        from ..workspace import Workspace

        if isinstance(workspace, (str, os.PathLike)):
            workspace = Workspace(workspace)
        if not isinstance(workspace, Workspace):
            raise ValidationError(f"Governance: workspace must be a Workspace or a path, got {type(workspace).__name__}.",
                                  fix="Pass Workspace(root) or the root folder.")
        if clock is not None and not callable(clock):
            raise ValidationError("Governance: clock must be a zero-argument callable returning a UTC datetime.",
                                  fix="Pass e.g. FixedClock(datetime(2024, 1, 1, tzinfo=UTC)).")
        self.workspace = workspace
        self.clock = clock or system_clock
        self._con: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            self._con = _db.connect(self.workspace.features_db)
        return self._con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _db.transaction(self.con) as con:
            yield con

    def _now(self) -> datetime:
        return ensure_utc(self.clock(), name="Governance clock()")

    def close(self) -> None:
        """Close the database connection (reopened on next use)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def _ref(self, view: Any, version: int | None, *, where: str) -> tuple[str, int]:
        """Resolve a view object or name (+ optional version; None = latest registered)."""
        if not isinstance(view, str):
            name, ver, _ = view_attrs(view, where=where)
            version = ver if version is None else version
        else:
            name = text_arg(view, where=where, name="view", example="user_txn_7d")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValidationError(f"{where}: version must be an integer >= 1, got {version!r}.",
                                  fix="Pass version=1, or leave it None for the latest registered version.")
        if version is None:
            row = self.con.execute("SELECT max(version) FROM gov_views WHERE name = ?", (name,)).fetchone()
            version = row[0]
        elif self.con.execute("SELECT 1 FROM gov_views WHERE name = ? AND version = ?",
                              (name, version)).fetchone() is None:
            version = None
        if version is None:
            raise NotFoundError(f"{where}: feature view {name!r} is not in the catalog.",
                                fix="Register it first with Governance.register(view) (reads register it too).",
                                view=name)
        return name, int(version)
