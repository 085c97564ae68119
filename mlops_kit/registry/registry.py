"""``ModelRegistry``: the facade over the store, artifacts, lifecycle and audit log.

Reads and registration live here; alias moves, approvals and state transitions live in
:mod:`mlops_kit.registry.lifecycle`. Every write is one SQLite transaction that also
appends exactly one audit entry, so a write and its audit record exist together or not
at all.

Artifacts are skops files by default; loading them (and migrating old pickles) lives in
:mod:`mlops_kit.registry.artifact_ops`. Every load checks the sha256 *before* deserialising.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .._io import canonical_json
from .._time import Clock, ensure_utc, system_clock
from ..errors import MissingMetadataError, NotFoundError, ValidationError
from ._formats import DEFAULT_FORMAT, UnsafeArtifactWarning, check_format, untrusted_types
from ..workspace import Workspace
from .approvals import ApprovalRule
from .artifact_ops import ArtifactMixin, current_artifact
from .artifacts import ArtifactStore
from .audit import AuditLog
from .changelog import render_changelog
from ._names import check_name
from .entities import AliasEvent, Approval, Attestation, ModelVersion, ModelVersionSpec, StateEvent
from .lifecycle import STATES, LifecycleMixin
from .lineage import Lineage
from .metadata import ModelMetadata
from .mlflow_bridge import MlflowMixin
from .policies import default_stage_policies, validate_policies
from .signature import ModelSignature
from .store import AUDITED_TABLES, RegistryStore

__all__ = ["ModelRegistry", "PAUSE_IN_REGISTER_ENV"]

#: Fault-injection hook for crash-safety tests: when set to a number of seconds,
#: ``register_model`` prints a line to stderr and sleeps inside its transaction, after the
#: artifact was written and the rows inserted but before the commit.
PAUSE_IN_REGISTER_ENV = "MLOPS_KIT_REGISTRY_PAUSE_IN_REGISTER"

class ModelRegistry(ArtifactMixin, LifecycleMixin, MlflowMixin):
    """A governed model registry stored in ``workspace.registry_db``.

    Parameters
    ----------
    root_or_workspace:
        A :class:`~mlops_kit.Workspace` or a folder path (wrapped in one).
    clock:
        Zero-argument callable returning the current UTC time; every recorded timestamp
        comes from it (pass a ``FixedClock`` in tests and notebooks).
    stage_policies:
        ``{stage or alias: [policy, ...]}`` gates run by ``promote``; defaults to lineage
        completeness and environment recorded at ``candidate``, ``staging``, ``approved-prod``.
    approval_rule:
        Who must approve before ``approved-prod`` (default: roles ``ml-owner`` and ``risk``).
    """

    def __init__(self, root_or_workspace: Workspace | str | os.PathLike[str], *, clock: Clock | None = None,
                 stage_policies: Mapping[str, Sequence[Any]] | None = None,
                 approval_rule: ApprovalRule | None = None) -> None:
        if isinstance(root_or_workspace, Workspace):
            self.workspace = root_or_workspace
        elif isinstance(root_or_workspace, (str, os.PathLike)):
            self.workspace = Workspace(root_or_workspace)
        else:
            raise ValidationError(f"ModelRegistry: expected a Workspace or a folder path, got "
                                  f"{type(root_or_workspace).__name__}.", fix="Pass Workspace(root) or a path.")
        if clock is not None and not callable(clock):
            raise ValidationError("ModelRegistry: clock must be callable.", fix="Pass FixedClock(...) or None.")
        if approval_rule is not None and not isinstance(approval_rule, ApprovalRule):
            raise ValidationError("ModelRegistry: approval_rule must be an ApprovalRule.",
                                  fix="Pass ApprovalRule(required_roles=(...)).")
        self._clock: Clock = clock or system_clock
        self.approval_rule = approval_rule or ApprovalRule()
        self._policies: dict[str, tuple[Any, ...]] = default_stage_policies()
        for stage, policies in (stage_policies or {}).items():
            self.set_policies(stage, policies)
        self._store = RegistryStore(self.workspace.registry_db)
        self._artifacts = ArtifactStore(self.workspace.artifacts_dir)
        self.audit = AuditLog(self._store, referencing_tables=AUDITED_TABLES)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.workspace.root)!r})"

    def close(self) -> None:
        """Close the database connection."""
        self._store.close()

    def _now(self) -> datetime:
        return ensure_utc(self._clock(), name="registry clock()")

    # -- configuration ---------------------------------------------------------------
    def set_policies(self, stage: str, policies: Sequence[Any]) -> None:
        """Configure the gates ``promote(..., to=stage)`` runs (replaces the stage's list)."""
        check_name("alias", stage, where="set_policies")
        self._policies[stage] = validate_policies(stage, policies)

    def policies_for(self, stage: str) -> tuple[Any, ...]:
        """The gates configured for ``stage`` (empty for an unconfigured free-form alias)."""
        return self._policies.get(stage, ())

    # -- registration -----------------------------------------------------------------
    def register_model(self, name: str, model: Any, *, signature: ModelSignature, metadata: ModelMetadata,
                       lineage: Lineage, author: str, format: str = DEFAULT_FORMAT) -> ModelVersion:
        """Store ``model`` as the next immutable version of ``name``.

        The artifact is a canonical skops file; the types it needs beyond skops' defaults
        (e.g. the kit's scorer classes) are recorded as the version's ``trusted_types`` and
        are the only ones a later load may construct. ``format="pickle"`` is an explicit
        opt-in for a model skops cannot store: it warns, and loading it needs ``trusted=True``.

        Refuses (nothing written) a bad name or author, a model without ``predict``, a
        signature that disagrees with the model's fitted feature names, and any gap in the
        required metadata core (:class:`~mlops_kit.errors.MissingMetadataError` lists all).
        """
        check_name("name", name, where="register_model")
        check_name("author", author, where="register_model")
        fmt = check_format(format, where=f"register_model({name!r})")
        spec = ModelVersionSpec(name=name, signature=signature, metadata=metadata, lineage=lineage, author=author)
        if not callable(getattr(model, "predict", None)):
            raise ValidationError(f"register_model({name!r}): the model ({type(model).__name__}) has no predict().",
                                  fix="Register a fitted estimator.")
        missing = metadata.missing() + lineage.missing()
        if missing:
            raise MissingMetadataError(f"register_model({name!r}): the required metadata core is incomplete; "
                                       f"missing {', '.join(missing)}.",
                                       fix="Record every listed item before registering.", missing=missing)
        fitted = getattr(model, "feature_names_in_", None)
        if fitted is not None and list(map(str, fitted)) != signature.input_names:
            raise ValidationError(f"register_model({name!r}): the signature inputs {signature.input_names} differ "
                                  f"from the model's fitted features {list(map(str, fitted))}.",
                                  fix="Infer the signature from the exact frame the model was fitted on.")
        data = self._artifacts.serialize(model, fmt)
        trusted = untrusted_types(data) if fmt == "skops" else []
        if fmt == "pickle":
            warnings.warn(f"register_model({name!r}): storing the artifact as a pickle because format='pickle' was "
                          "passed; loading it runs code, so every load_model() of it needs trusted=True.",
                          UnsafeArtifactWarning, stacklevel=2)
        digest = self._artifacts.put_bytes(data)
        at = self._now()
        with self._store.write() as conn:
            if not self._artifacts.exists(digest):  # removed by a concurrent gc_artifacts()
                self._artifacts.put_bytes(data)
            row = conn.execute("SELECT MAX(version) FROM versions WHERE name = ?", (name,)).fetchone()
            version = int(row[0] or 0) + 1
            payload = {"name": name, "version": version, "artifact_sha256": digest, "artifact_format": fmt,
                       "trusted_types": trusted, "spec_sha256": spec.fingerprint(), "state": "registered"}
            seq = self.audit.append(conn, at=at.isoformat(), actor=author, action="register_model", payload=payload)
            if version == 1:
                conn.execute("INSERT INTO models (name, created_at, audit_seq) VALUES (?, ?, ?)",
                             (name, at.isoformat(), seq))
            conn.execute("INSERT INTO versions (name, version, created_at, artifact_sha256, state, author, spec_json, "
                         "audit_seq, artifact_format, trusted_types_json) "
                         "VALUES (?, ?, ?, ?, 'registered', ?, ?, ?, ?, ?)",
                         (name, version, at.isoformat(), digest, author, canonical_json(spec.to_dict()), seq, fmt,
                          canonical_json(trusted)))
            for ref in lineage.features:
                conn.execute("INSERT OR IGNORE INTO feature_refs (name, version, view, view_version, fingerprint) "
                             "VALUES (?, ?, ?, ?, ?)", (name, version, ref.view, ref.version, ref.fingerprint))
            conn.execute("INSERT INTO state_events (name, version, from_state, to_state, actor, reason, at, audit_seq) "
                         "VALUES (?, ?, NULL, 'registered', ?, 'registered', ?, ?)",
                         (name, version, author, at.isoformat(), seq))
            pause = os.environ.get(PAUSE_IN_REGISTER_ENV)
            if pause:
                print(f"paused in register_model {name} v{version}", file=sys.stderr, flush=True)
                time.sleep(float(pause))
        return self.get_model_version(name, version)

    # -- reads ---------------------------------------------------------------------------
    def _version_from_row(self, conn: Any, row: Any) -> ModelVersion:
        aliases = tuple(r[0] for r in conn.execute(
            "SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias", (row["name"], row["version"])))
        digest, fmt, trusted = current_artifact(conn, row)
        return ModelVersion(spec=ModelVersionSpec.from_dict(json.loads(row["spec_json"])), _version=int(row["version"]),
                            _created_at=datetime.fromisoformat(row["created_at"]), _artifact_sha256=digest,
                            _artifact_format=fmt, _trusted_types=trusted, _state=row["state"], _aliases=aliases)

    def _require_model(self, conn: Any, name: Any, where: str) -> str:
        check_name("name", name, where=where)
        if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
            known = [r[0] for r in conn.execute("SELECT name FROM models ORDER BY name")]
            raise NotFoundError(f"{where}: no model named {name!r} (registered: {known}).",
                                fix="Register it first or check the spelling.", name=name)
        return name

    def _require_version(self, conn: Any, name: Any, version: Any, where: str) -> Any:
        self._require_model(conn, name, where)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValidationError(f"{where}: version must be an int >= 1, got {version!r}.",
                                  fix="Pass the version number, e.g. version=2.")
        row = conn.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT version FROM versions WHERE name = ? ORDER BY version", (name,))]
            raise NotFoundError(f"{where}: model {name!r} has no version {version} (versions: {known}).",
                                fix="Pick an existing version.", name=name, version=version)
        return row

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """One version (a snapshot of its current state and aliases)."""
        with self._store.read() as conn:
            return self._version_from_row(conn, self._require_version(conn, name, version, "get_model_version"))

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version ``alias`` points at; :class:`NotFoundError` if the alias is unset."""
        with self._store.read() as conn:
            self._require_model(conn, name, "get_model_version_by_alias")
            check_name("alias", alias, where="get_model_version_by_alias")
            row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            if row is None:
                held = [r[0] for r in conn.execute("SELECT alias FROM aliases WHERE name = ? ORDER BY alias", (name,))]
                raise NotFoundError(f"get_model_version_by_alias: model {name!r} has no alias {alias!r} (set: {held}).",
                                    fix="Promote a version to that alias first.", name=name, alias=alias)
            return self._version_from_row(conn, self._require_version(conn, name, int(row[0]), "alias"))

    def search_model_versions(self, name: str | None = None, *, state: str | None = None, author: str | None = None,
                              alias: str | None = None, feature_view: str | None = None) -> list[ModelVersion]:
        """Versions matching every given filter, ordered by name then version."""
        if state is not None and state not in STATES:
            raise ValidationError(f"search_model_versions: unknown state {state!r}.", fix=f"Use one of {STATES}.")
        clauses, params = [], []
        for column, value, kind in (("v.name", name, "name"), ("v.author", author, "author")):
            if value is not None:
                check_name(kind, value, where="search_model_versions")
                clauses.append(f"{column} = ?")
                params.append(value)
        if state is not None:
            clauses.append("v.state = ?")
            params.append(state)
        if alias is not None:
            check_name("alias", alias, where="search_model_versions")
            clauses.append("EXISTS (SELECT 1 FROM aliases a WHERE a.name = v.name AND a.version = v.version "
                           "AND a.alias = ?)")
            params.append(alias)
        if feature_view is not None:
            check_name("feature_view", feature_view, where="search_model_versions")
            clauses.append("EXISTS (SELECT 1 FROM feature_refs f WHERE f.name = v.name AND f.version = v.version "
                           "AND f.view = ?)")
            params.append(feature_view)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        with self._store.read() as conn:
            rows = conn.execute(f"SELECT * FROM versions v{where} ORDER BY v.name, v.version", params).fetchall()
            return [self._version_from_row(conn, row) for row in rows]

    def list_models(self) -> list[str]:
        """Registered model names."""
        with self._store.read() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM models ORDER BY name")]

    def _events(self, table: str, cls: Any, where: str, params: tuple, conn: Any) -> list[Any]:
        rows = conn.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY id", params).fetchall()
        return [cls.from_dict({k: row[k] for k in row.keys() if k != "id"}) for row in rows]

    def alias_history(self, name: str, alias: str) -> list[AliasEvent]:
        """Every move of ``alias`` in order: from which version to which, by whom, when and why."""
        with self._store.read() as conn:
            self._require_model(conn, name, "alias_history")
            check_name("alias", alias, where="alias_history")
            return self._events("alias_events", AliasEvent, "name = ? AND alias = ?", (name, alias), conn)

    def state_history(self, name: str, version: int) -> list[StateEvent]:
        """Every lifecycle transition of one version."""
        with self._store.read() as conn:
            self._require_version(conn, name, version, "state_history")
            return self._events("state_events", StateEvent, "name = ? AND version = ?", (name, version), conn)

    def approvals(self, name: str, version: int) -> list[Approval]:
        """Approvals recorded on one version."""
        with self._store.read() as conn:
            self._require_version(conn, name, version, "approvals")
            return self._events("approvals", Approval, "name = ? AND version = ?", (name, version), conn)

    def attestations(self, name: str, version: int) -> list[Attestation]:
        """Every policy evaluation stored on one version (passing and failing)."""
        with self._store.read() as conn:
            self._require_version(conn, name, version, "attestations")
            rows = conn.execute("SELECT * FROM attestations WHERE name = ? AND version = ? ORDER BY id",
                                (name, version)).fetchall()
        return [Attestation.from_dict({**json.loads(r["body_json"]), "at": r["at"], "name": r["name"],
                                       "version": r["version"], "audit_seq": r["audit_seq"]}) for r in rows]

    # -- lineage ----------------------------------------------------------------------
    def lineage(self, name: str, version: int) -> dict[str, Any]:
        """The version's lineage document (JSON-ready; draw it with ``draw_lineage``)."""
        mv = self.get_model_version(name, version)
        return {"model": {"name": mv.name, "version": mv.version, "artifact_sha256": mv.artifact_sha256,
                          "state": mv.state, "created_at": mv.created_at.isoformat()},
                "code": {"revision": mv.metadata.code_revision, "training_run_id": mv.metadata.training_run_id},
                "environment": dict(mv.metadata.environment),
                "preprocessing_fingerprint": mv.metadata.preprocessing_fingerprint,
                "lineage": mv.lineage.to_dict()}

    def dependents(self, feature_view: str, version: int | None = None) -> list[ModelVersion]:
        """Model versions that read ``feature_view`` (optionally only its ``version``): the blast radius."""
        check_name("feature_view", feature_view, where="dependents")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValidationError(f"dependents: version must be an int >= 1 or None, got {version!r}.",
                                  fix="Pass the feature view version, e.g. version=3.")
        sql = "SELECT DISTINCT name, version FROM feature_refs WHERE view = ?"
        params: tuple = (feature_view,)
        if version is not None:
            sql += " AND view_version = ?"
            params += (version,)
        with self._store.read() as conn:
            keys = conn.execute(sql + " ORDER BY name, version", params).fetchall()
            return [self._version_from_row(conn, self._require_version(conn, k[0], k[1], "dependents")) for k in keys]

    def changelog(self, name: str, version: int | None = None) -> str:
        """Markdown: what changed in ``version`` (or every version) against the one before."""
        versions = self.search_model_versions(name)
        if not versions:
            self.get_model_version(name, 1)  # raises the NotFoundError
        if version is not None:
            current = self.get_model_version(name, version)
            earlier = [v for v in versions if v.version < current.version]
            return render_changelog(earlier[-1] if earlier else None, current)
        parts = [render_changelog(prev, cur) for prev, cur in zip([None, *versions[:-1]], versions)]
        return f"# Changelog: {name}\n\n" + "\n".join(reversed(parts))
