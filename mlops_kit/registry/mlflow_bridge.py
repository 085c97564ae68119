"""Export a kit model version to an MLflow tracking server (registered model, version, aliases).

What maps to what::

    kit                                  MLflow
    model name                           registered model (tag mlops_kit.model)
    immutable version N                  one model version, tag mlops_kit.version_id = "name/vN"
    skops artifact + trusted types       scikit-learn flavour, serialization_format="skops"
    signature (columns, dtypes, output)  ModelSignature (long/double/boolean/string/datetime)
    metadata (params, metrics, code)     the run's params, metrics and tags
    lineage (views, snapshots)           tags mlops_kit.feature_views / .snapshots / .lineage
    full record + audit head             artifact mlops_kit/record.json, tag mlops_kit.audit_head
    aliases approved-prod, deployed-prod separate MLflow aliases of the same names

Exports are idempotent and never half-reported: the tag ``mlops_kit.export_complete=true``
is written last, after the model, tags, record and aliases. A second export of the same kit
version finds it by ``mlops_kit.version_id`` and creates nothing (it only re-points the
aliases the kit has since moved onto it); an earlier attempt that never completed is deleted
and done again (``MlflowExport.cleaned`` lists it). Before anything is written the export
refuses an MLflow model of the same name holding versions the kit did not export, and an
alias that someone moved in MLflow (:class:`~mlops_kit.errors.MlflowConflictError`).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MlflowConflictError, MlflowExportError, MlopsKitError, ValidationError
from ._mlflow_client import (KIT_TO_MLFLOW, RECORD_PATH, TAG, calling, check_alias, connect, finish_run,
                             mask)
from ._names import check_name
from .signature import ModelSignature

__all__ = ["MlflowExport", "MlflowMixin", "export_to_mlflow", "to_mlflow_signature"]

_TAG_LIMIT = 5000  # MLflow's limit on a tag value
_EXPERIMENT = "mlops-kit"


@dataclass(frozen=True)
class MlflowExport:
    """What an export did: the MLflow version of a kit version, its URI and the aliases set."""

    name: str
    version: int
    mlflow_name: str
    mlflow_version: int
    created: bool  # False: the kit version was already exported (nothing new was written)
    aliases: tuple[str, ...]
    run_id: str
    cleaned: tuple[int, ...] = field(default=())  # incomplete earlier attempts that were removed

    @property
    def model_uri(self) -> str:
        return f"models:/{self.mlflow_name}/{self.mlflow_version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "mlflow_name": self.mlflow_name,
                "mlflow_version": self.mlflow_version, "created": self.created, "aliases": list(self.aliases),
                "run_id": self.run_id, "cleaned": list(self.cleaned), "model_uri": self.model_uri}


def to_mlflow_signature(signature: ModelSignature) -> Any:
    """The MLflow ``ModelSignature`` with the same columns, dtypes and outputs (nullable -> not required)."""
    from mlflow.models.signature import ModelSignature as MlflowSignature
    from mlflow.types.schema import ColSpec, Schema

    def schema(columns: Any) -> Any:
        return Schema([ColSpec(KIT_TO_MLFLOW[c.dtype], c.name, required=not c.nullable) for c in columns])

    return MlflowSignature(inputs=schema(signature.inputs),
                           outputs=schema(signature.outputs) if signature.outputs else None)


def _version_tags(mv: Any, audit_head: str) -> dict[str, str]:
    lineage = mv.lineage
    tags = {TAG["version_id"]: f"{mv.name}/v{mv.version}", TAG["model"]: mv.name, TAG["version"]: str(mv.version),
            TAG["artifact"]: mv.artifact_sha256, TAG["spec"]: mv.spec.fingerprint(), TAG["state"]: mv.state,
            TAG["code"]: mv.metadata.code_revision or "", TAG["run"]: mv.metadata.training_run_id or "",
            TAG["views"]: ",".join(f"{f.view}:v{f.version}" for f in lineage.features),
            TAG["snapshots"]: ",".join(f"{s.name}:{s.sha256}" for s in lineage.snapshots),
            TAG["audit_head"]: audit_head, TAG["aliases"]: ",".join(mv.aliases),
            TAG["lineage"]: json.dumps(lineage.to_dict(), sort_keys=True, separators=(",", ":"))}
    return {k: v for k, v in tags.items() if len(v) <= _TAG_LIMIT}  # the record artifact holds everything


def _requirements(mv: Any) -> list[str]:
    import importlib.metadata

    recorded = dict(mv.metadata.environment.get("packages") or {})
    pins = []
    for package in ("scikit-learn", "skops", "numpy", "scipy"):
        version = recorded.get(package)
        if not version:
            try:
                version = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                continue
        pins.append(f"{package}=={version}")
    return pins


def _preflight(client: Any, target: str, mv: Any, version_id: str, replace_aliases: bool,
               where: str) -> tuple[Any, list[Any], list[Any]]:
    """The registered model (or None), complete and incomplete earlier exports; raises on any clash."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(target)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code) and "not found" not in str(exc).lower():
            raise
        return None, [], []
    versions = client.search_model_versions(f"name='{target}'")
    foreign = sorted(int(v.version) for v in versions if TAG["version_id"] not in (v.tags or {}))
    owner = (model.tags or {}).get(TAG["model"])
    if foreign or (owner is not None and owner != mv.name):
        raise MlflowConflictError(
            f"{where}: MLflow already has a model {target!r} that the kit did not export"
            + (f" (versions {foreign} carry no {TAG['version_id']} tag)" if foreign else f" (it belongs to {owner!r})")
            + "; nothing was written.",
            fix=f"Export under another MLflow name, e.g. mlflow_name='{mv.name}-kit', or retire that MLflow model.",
            reason="name-clash", mlflow_name=target, versions=foreign)
    mine = [v for v in versions if (v.tags or {}).get(TAG["version_id"]) == version_id]
    complete = [v for v in mine if v.tags.get(TAG["complete"]) == "true"]
    incomplete = [v for v in mine if v.tags.get(TAG["complete"]) != "true"]
    for v in complete:
        if v.tags.get(TAG["artifact"]) != mv.artifact_sha256:
            raise MlflowConflictError(
                f"{where}: MLflow version {v.version} of {target!r} claims to be kit {version_id} but holds artifact "
                f"{v.tags.get(TAG['artifact'], '?')[:12]}..., not {mv.artifact_sha256[:12]}...; nothing was written.",
                fix="Another registry exported a model of the same name: export under mlflow_name='<other name>'.",
                reason="version-clash", mlflow_name=target, mlflow_version=int(v.version))
    holder = int(complete[0].version) if complete else None
    current = dict(model.aliases or {})
    for alias in mv.aliases:
        held = current.get(alias)
        if held is None or int(held) == holder:
            continue
        recorded = (model.tags or {}).get(TAG["alias_prefix"] + alias)
        if recorded != str(held) and not replace_aliases:
            raise MlflowConflictError(
                f"{where}: the MLflow alias {target}@{alias} points at version {held}, which the kit did not put "
                f"there (its last export set it to {recorded or 'nothing'}); nothing was written.",
                fix="Find out who moved it in MLflow; to move it to the kit's version anyway pass "
                    "replace_aliases=True (--replace-aliases).",
                reason="alias-clash", mlflow_name=target, alias=alias, mlflow_version=int(held))
    return model, complete, incomplete


def _set_aliases(client: Any, target: str, mlflow_version: int, aliases: tuple[str, ...]) -> None:
    for alias in aliases:
        client.set_registered_model_alias(target, alias, str(mlflow_version))
        client.set_registered_model_tag(target, TAG["alias_prefix"] + alias, str(mlflow_version))


def _write(client: Any, registry: Any, mv: Any, target: str, tags: dict[str, str], step: list[str]) -> tuple[Any, Any]:
    import mlflow.sklearn

    step[0] = "load the kit artifact"
    model = registry.load_model(mv.name, version=mv.version)
    step[0] = "create the run"
    experiment = client.get_experiment_by_name(_EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(_EXPERIMENT)
    run = client.create_run(experiment_id, run_name=f"{mv.name}-v{mv.version}",
                            tags={TAG["version_id"]: tags[TAG["version_id"]], "mlflow.source.git.commit":
                                  mv.metadata.code_revision or ""})
    try:
        from mlflow.entities import Metric, Param

        step[0] = "log parameters and metrics"
        params = [Param(k, v if isinstance(v, str) else json.dumps(v, sort_keys=True))
                  for k, v in sorted(mv.metadata.parameters.items())]
        metrics = [Metric(k, float(v), 0, 0) for k, v in sorted(mv.metadata.metrics.items())]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        step[0] = "log the model"
        with tempfile.TemporaryDirectory(prefix="mlops-kit-mlflow-") as tmp:
            path = Path(tmp) / "model"
            mlflow.sklearn.save_model(model, str(path), serialization_format="skops",
                                      skops_trusted_types=list(mv.trusted_types),
                                      signature=to_mlflow_signature(mv.signature),
                                      pip_requirements=_requirements(mv),
                                      metadata={"mlops_kit": tags[TAG["version_id"]]})
            client.log_artifacts(run.info.run_id, str(path), "model")
        step[0] = "create the model version"
        created = client.create_model_version(target, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                              tags=tags, description=mv.metadata.description or None)
        return run, created
    except BaseException:
        finish_run(client, run.info.run_id, "FAILED")
        raise


def export_to_mlflow(registry: Any, name: str, version: int, *, tracking_uri: str, mlflow_name: str | None = None,
                     replace_aliases: bool = False) -> MlflowExport:
    """Export kit version ``name`` v``version`` to the MLflow server at ``tracking_uri``.

    Raises
    ------
    ValidationError, NotFoundError
        A bad argument or an unknown kit version (nothing was contacted).
    MlflowUnavailableError
        mlflow is not installed, the server does not answer, or it refused the credentials.
    MlflowConflictError
        The MLflow name holds versions the kit did not export, or an alias was moved in MLflow.
    MlflowExportError
        A step failed after writing began; the partial version is removed (or, if the
        server went away, left without the complete tag for the next export to remove).
    """
    where = f"export_to_mlflow({name!r}, {version!r})"
    mv = registry.get_model_version(name, version)
    target = check_name("mlflow_name", mlflow_name if mlflow_name is not None else name, where=where)
    if not isinstance(replace_aliases, bool):
        raise ValidationError(f"{where}: replace_aliases must be a bool, got {replace_aliases!r}.",
                              fix="Pass replace_aliases=True or False.")
    aliases = tuple(check_alias(a, where) for a in mv.aliases)
    client = connect(tracking_uri, where=where)
    uri = client.tracking_uri
    version_id = f"{mv.name}/v{mv.version}"
    with calling(uri, where):
        model, complete, incomplete = _preflight(client, target, mv, version_id, replace_aliases, where)
        if complete:
            done = complete[0]
            held = dict(model.aliases or {})
            _set_aliases(client, target, int(done.version),
                         tuple(a for a in aliases if str(held.get(a)) != str(done.version)))
            return MlflowExport(name=mv.name, version=mv.version, mlflow_name=target, mlflow_version=int(done.version),
                                created=False, aliases=aliases, run_id=done.run_id or "")
        cleaned = tuple(sorted(int(v.version) for v in incomplete))
        for number in cleaned:
            client.delete_model_version(target, str(number))
        if model is None:
            client.create_registered_model(target, tags={TAG["model"]: mv.name},
                                           description=f"Exported from the mlops-kit registry model {mv.name!r}.")
    tags = _version_tags(mv, registry.audit.head())
    step = ["start"]
    created = run = None
    with calling(uri, where):
        try:
            run, created = _write(client, registry, mv, target, tags, step)
            step[0] = "log the kit record"
            record = {"format": "mlops-kit/mlflow-export", "schema": 1, "version_id": version_id,
                      "model_version": mv.to_dict(), "audit_head": tags[TAG["audit_head"]],
                      "exported_at": registry._now().isoformat(), "lineage_document": registry.lineage(name, version),
                      "mlflow": {"name": target, "version": int(created.version)}}
            client.log_text(run.info.run_id, json.dumps(record, indent=2, sort_keys=True), RECORD_PATH)
            step[0] = "set the aliases"
            _set_aliases(client, target, int(created.version), aliases)
            step[0] = "finish the run"
            finish_run(client, run.info.run_id, "FINISHED")
            step[0] = "mark the export complete"
            client.set_model_version_tag(target, str(created.version), TAG["complete"], "true")
        except Exception as exc:
            left = _clean_failed(client, target, created, run)
            detail = exc.message if isinstance(exc, MlopsKitError) else f"{type(exc).__name__}: {str(exc)[:300]}"
            raise MlflowExportError(
                f"{where}: exporting to {mask(uri)} failed at '{step[0]}' ({detail}); no MLflow version was marked "
                "complete" + (f" (version {left} is left without the complete tag)" if left else "") + ".",
                fix="Fix the cause and export again: the next export removes any incomplete version first.",
                step=step[0], mlflow_name=target, incomplete_version=left) from exc
    return MlflowExport(name=mv.name, version=mv.version, mlflow_name=target, mlflow_version=int(created.version),
                        created=True, aliases=aliases, run_id=run.info.run_id, cleaned=cleaned)


def _clean_failed(client: Any, target: str, created: Any, run: Any) -> int | None:
    """Delete the half-written version; return its number if it could not be deleted."""
    if run is not None:
        with contextlib.suppress(Exception):  # best effort: the run's status is informational only
            finish_run(client, run.info.run_id, "FAILED")
    if created is None:
        return None
    try:
        client.delete_model_version(target, str(created.version))
        return None
    except Exception:  # the server may be gone: the missing complete tag still marks it
        return int(created.version)


class MlflowMixin:
    """``export_to_mlflow`` / ``import_from_mlflow`` as :class:`ModelRegistry` methods."""

    def export_to_mlflow(self, name: str, version: int, *, tracking_uri: str, mlflow_name: str | None = None,
                         replace_aliases: bool = False) -> MlflowExport:
        """Export one version to MLflow (see :func:`mlops_kit.registry.export_to_mlflow`)."""
        return export_to_mlflow(self, name, version, tracking_uri=tracking_uri, mlflow_name=mlflow_name,
                                replace_aliases=replace_aliases)

    def import_from_mlflow(self, model_uri: str, *, name: str, author: str, tracking_uri: str,
                           **options: Any) -> Any:
        """Register an MLflow model version here (see :func:`mlops_kit.registry.import_from_mlflow`)."""
        from .mlflow_import import import_from_mlflow

        return import_from_mlflow(self, model_uri, name=name, author=author, tracking_uri=tracking_uri, **options)
