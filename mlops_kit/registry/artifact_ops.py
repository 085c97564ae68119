"""Loading, migrating and collecting a registry's artifacts (mixed into ``ModelRegistry``).

A version's current artifact is the one its ``versions`` row names, unless an
``artifact_events`` row replaced it later (the newest event wins). Versions stay
immutable: :meth:`ArtifactMixin.migrate_artifacts` never edits a ``versions`` row, it
appends one event and one audit entry per rewritten artifact, in one transaction.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

from .._io import canonical_json
from ..errors import IntegrityError, ValidationError
from ._formats import UnsafeArtifactWarning, dump_skops, load_pickle, load_skops, sniff_format, untrusted_types
from ._names import check_name
from .entities import ArtifactEvent

__all__ = ["ArtifactMixin", "current_artifact"]


def current_artifact(conn: Any, row: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """``(sha256, format, trusted types)`` of a version row's current artifact.

    A row written by schema version 1 has no recorded format: it is a pickle.
    """
    event = conn.execute("SELECT artifact_sha256, artifact_format, trusted_types_json FROM artifact_events "
                         "WHERE name = ? AND version = ? ORDER BY id DESC LIMIT 1",
                         (row["name"], row["version"])).fetchone()
    if event is not None:
        return str(event[0]), str(event[1]), tuple(json.loads(event[2]))
    keys = row.keys()
    fmt = row["artifact_format"] if "artifact_format" in keys else None
    trusted = row["trusted_types_json"] if "trusted_types_json" in keys else None
    return str(row["artifact_sha256"]), str(fmt or "pickle"), tuple(json.loads(trusted)) if trusted else ()


def _flag(value: Any, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{where}: {name} must be a bool, got {value!r}.", fix=f"Pass {name}=True or False.")
    return value


class ArtifactMixin:
    """``load_model``, ``artifact_history``, ``migrate_artifacts`` and ``gc_artifacts``."""

    _store: Any
    _artifacts: Any
    audit: Any

    def load_model(self, name: str, version: int | None = None, alias: str | None = None, *,
                   trusted: bool = False) -> Any:
        """Load a version's model after verifying its artifact hash (pass exactly one of version/alias).

        A skops artifact constructs only the types recorded at registration; a file asking
        for any other is refused (:class:`~mlops_kit.errors.RegistryError` naming them). A
        pickle artifact is refused unless ``trusted=True`` (then it loads with an
        :class:`UnsafeArtifactWarning`); ``trusted=True`` on a skops artifact accepts every
        type it names.
        """
        _flag(trusted, "trusted", f"load_model({name!r})")
        if (version is None) == (alias is None):
            raise ValidationError(f"load_model({name!r}): pass exactly one of version= or alias=.",
                                  fix="e.g. load_model('fraud', alias='deployed-prod').")
        getter: Any = self
        mv = getter.get_model_version(name, version) if alias is None else getter.get_model_version_by_alias(name, alias)
        return self._artifacts.load(mv.artifact_sha256, fmt=mv.artifact_format, trusted_types=mv.trusted_types,
                                    trusted=trusted, where=f"load_model({name!r} v{mv.version})")

    def artifact_history(self, name: str, version: int) -> list[ArtifactEvent]:
        """Every replacement of one version's artifact, oldest first (empty if never migrated)."""
        requirer: Any = self
        with self._store.read() as conn:
            requirer._require_version(conn, name, version, "artifact_history")
            rows = conn.execute("SELECT * FROM artifact_events WHERE name = ? AND version = ? ORDER BY id",
                                (name, version)).fetchall()
        return [ArtifactEvent.from_dict({**{k: r[k] for k in r.keys() if k not in ("id", "trusted_types_json")},
                                         "trusted_types": json.loads(r["trusted_types_json"])}) for r in rows]

    def migrate_artifacts(self, *, actor: str = "registry-migration", dry_run: bool = False) -> list[dict[str, Any]]:
        """Rewrite every pickle artifact as skops; return one report per pickle version.

        Each legacy artifact is hash-verified, unpickled (so run this only on a workspace
        whose artifacts this registry wrote), stored as canonical skops under its new
        content address, loaded back with the recorded trusted types, and recorded by an
        append-only ``artifact_events`` row plus a ``migrate_artifact`` audit entry. The
        original ``versions`` row and the pickle file are left as they were. A model skops
        cannot store is reported as ``skipped`` with the reason and stays a pickle. A
        second run finds nothing to do. With ``dry_run`` nothing is written or unpickled.
        """
        check_name("actor", actor, where="migrate_artifacts")
        _flag(dry_run, "dry_run", "migrate_artifacts")
        clock: Any = self
        reports: list[dict[str, Any]] = []
        unpickled = 0
        with self._store.write() as conn:
            rows = conn.execute("SELECT * FROM versions ORDER BY name, version").fetchall()
            for row in rows:
                digest, fmt, _ = current_artifact(conn, row)
                if fmt != "pickle":
                    continue
                report = {"name": row["name"], "version": int(row["version"]), "from_sha256": digest,
                          "artifact_sha256": None, "trusted_types": [], "status": "would migrate", "reason": ""}
                reports.append(report)
                if dry_run:
                    continue
                where = f"migrate_artifacts({row['name']!r} v{row['version']})"
                data = self._artifacts.read_verified(digest)
                if sniff_format(data) != "pickle":
                    raise IntegrityError(f"{where}: the artifact is recorded as a pickle but is not a pickle stream; "
                                         "nothing was migrated.", fix="Restore the original artifact first.",
                                         artifact_sha256=digest)
                model = load_pickle(data)
                unpickled += 1
                try:
                    new = dump_skops(model)
                except Exception as exc:  # skops refuses unsupported types with several exception types
                    report.update(status="skipped", reason=f"skops cannot store it: {type(exc).__name__}: {exc}")
                    continue
                trusted = untrusted_types(new)
                load_skops(new, trusted, where=where)  # the new file loads with exactly these types
                new_digest = self._artifacts.put_bytes(new)
                at = clock._now().isoformat()
                payload = {"name": row["name"], "version": int(row["version"]), "from_sha256": digest,
                           "artifact_sha256": new_digest, "artifact_format": "skops", "trusted_types": trusted}
                seq = self.audit.append(conn, at=at, actor=actor, action="migrate_artifact", payload=payload)
                conn.execute("INSERT INTO artifact_events (name, version, from_sha256, artifact_sha256, "
                             "artifact_format, trusted_types_json, action, actor, at, audit_seq) "
                             "VALUES (?, ?, ?, ?, 'skops', ?, 'migrate_artifact', ?, ?, ?)",
                             (row["name"], int(row["version"]), digest, new_digest, canonical_json(trusted), actor,
                              at, seq))
                report.update(artifact_sha256=new_digest, trusted_types=trusted, status="migrated")
        if unpickled:
            warnings.warn(f"migrate_artifacts: unpickled {unpickled} hash-verified legacy artifact(s) to rewrite them "
                          "as skops; unpickling runs code, so this is only safe for artifacts this registry wrote.",
                          UnsafeArtifactWarning, stacklevel=2)
        return reports

    def gc_artifacts(self, *, dry_run: bool = False) -> list[str]:
        """Delete artifact files no version references (e.g. left by a crashed registration).

        Runs under the registry's write lock, so a registration in progress cannot lose its
        artifact. A migrated version keeps both its original and its current artifact.
        Returns the removed (or, with ``dry_run``, removable) digests.
        """
        _flag(dry_run, "dry_run", "gc_artifacts")
        with self._store.write() as conn:
            used = {r[0] for r in conn.execute("SELECT artifact_sha256 FROM versions UNION "
                                               "SELECT artifact_sha256 FROM artifact_events")}
            orphans = sorted(set(self._artifacts.all_digests()) - used)
            if not dry_run:
                for digest in orphans:
                    self._artifacts.path_for(digest).unlink(missing_ok=True)
        return orphans
