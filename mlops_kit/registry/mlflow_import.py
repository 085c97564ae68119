"""Import an MLflow model version into the kit, through the same checks as ``register_model``.

The MLflow version must be a scikit-learn model stored with ``serialization_format="skops"``
and carry a signature. Signature, metadata and lineage come, in this order, from the
arguments, from the kit record an export left (``mlops_kit/record.json``), or from what
MLflow holds (the ``ModelSignature``; the run's params, metrics, git commit and the model's
environment; the ``mlops_kit.lineage`` tag). Nothing is invented: a model with no signature,
no lineage or an incomplete metadata core is refused with a
:class:`~mlops_kit.errors.MissingMetadataError` listing the gaps and how to supply them.

Loading the model is as safe as ``load_model``: the skops file may construct only the types
it declares (``skops_trusted_types`` in its MLmodel, or the kit record's ``trusted_types``),
narrowed further by ``trusted_types=`` when given; a pickle-based MLflow model is refused.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, MissingMetadataError, RegistryError, ValidationError
from ._formats import load_skops, untrusted_types
from ._mlflow_client import MLFLOW_TO_KIT, RECORD_PATH, TAG, calling, connect
from ._names import check_name
from .lineage import Lineage
from .metadata import ModelMetadata
from .signature import ColumnSpec, ModelSignature

__all__ = ["import_from_mlflow", "from_mlflow_signature", "parse_model_uri"]

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w\-]+))$")


def parse_model_uri(model_uri: Any, where: str) -> tuple[str, int | None, str | None]:
    """``(name, version, alias)`` of ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``."""
    match = _URI.match(model_uri) if isinstance(model_uri, str) else None
    if match is None:
        raise ValidationError(f"{where}: model_uri must be 'models:/NAME/VERSION' or 'models:/NAME@ALIAS', got "
                              f"{model_uri!r}.", fix="Register the model in MLflow and pass e.g. 'models:/fraud/3'.")
    version = match["version"]
    return match["name"], int(version) if version else None, match["alias"]


def from_mlflow_signature(signature: Any, where: str) -> ModelSignature:
    """A kit signature with the same columns and dtypes (no ranges: MLflow does not record them)."""
    from mlflow.types.schema import TensorSpec

    def columns(schema: Any, outputs: bool = False) -> tuple[ColumnSpec, ...]:
        specs = []
        for col in (schema.inputs if schema is not None else []):
            if isinstance(col, TensorSpec) and outputs and tuple(col.shape) in ((-1,), (-1, 1)):
                numpy_kind = {"f": "float64", "i": "int64", "u": "int64", "b": "bool"}.get(col.type.kind)
                if numpy_kind is None:
                    raise RegistryError(f"{where}: the MLflow output tensor of dtype {col.type} has no kit dtype.",
                                        fix="Log the model with numeric or boolean predictions.")
                specs.append(ColumnSpec(name=col.name or "prediction", dtype=numpy_kind, nullable=False))
                continue
            kind = getattr(col.type, "name", str(col.type))
            if col.name is None or kind not in MLFLOW_TO_KIT:
                raise RegistryError(f"{where}: the MLflow signature column {col.name!r} of type {kind!r} has no kit "
                                    f"dtype (supported: {sorted(MLFLOW_TO_KIT)}).",
                                    fix="Log the model with a column-based signature of those types.")
            specs.append(ColumnSpec(name=col.name, dtype=MLFLOW_TO_KIT[kind], nullable=not col.required))
        return tuple(specs)

    return ModelSignature(inputs=columns(signature.inputs), outputs=columns(signature.outputs, outputs=True))


def _same_columns(kit: ModelSignature, other: ModelSignature) -> bool:
    def shape(sig: ModelSignature) -> list[Any]:
        return [[(c.name, c.dtype) for c in sig.inputs], [(c.name, c.dtype) for c in sig.outputs]]
    return shape(kit) == shape(other)


def _record(client: Any, mv: Any, tmp: Path, where: str) -> dict[str, Any] | None:
    tags = mv.tags or {}
    if TAG["version_id"] not in tags:
        return None
    if tags.get(TAG["complete"]) != "true":
        raise RegistryError(f"{where}: MLflow version {mv.version} of {mv.name!r} is an export of kit "
                            f"{tags[TAG['version_id']]} that never completed; refusing to import it.",
                            fix="Export the kit version again (that replaces the incomplete one) and import that.")
    path = client.download_artifacts(mv.run_id, RECORD_PATH, str(tmp))
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if record.get("version_id") != tags[TAG["version_id"]]:
        raise IntegrityError(f"{where}: the record of MLflow version {mv.version} names {record.get('version_id')!r}, "
                             f"its tag {tags[TAG['version_id']]!r}.", fix="Export the kit version again.")
    return record


def _environment(flavors: dict[str, Any], folder: Path) -> dict[str, Any]:
    packages: dict[str, str] = {}
    req = folder / "requirements.txt"
    for line in req.read_text(encoding="utf-8").splitlines() if req.is_file() else []:
        if "==" in line and not line.startswith(("#", "-")):
            package, _, version = line.strip().partition("==")
            packages[package] = version
    sklearn = flavors.get("sklearn", {}).get("sklearn_version")
    if sklearn:
        packages.setdefault("scikit-learn", sklearn)
    python = flavors.get("python_function", {}).get("python_version")
    return {"python": python, "packages": packages} if python or packages else {}


def _derived_metadata(client: Any, mv: Any, flavors: dict[str, Any], folder: Path, model_uri: str) -> ModelMetadata:
    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    code = None
    if mv.run_id:
        run = client.get_run(mv.run_id)
        params, metrics = dict(run.data.params), dict(run.data.metrics)
        code = run.data.tags.get("mlflow.source.git.commit") or None
    return ModelMetadata(code_revision=code, training_run_id=mv.run_id or None,
                         environment=_environment(flavors, folder), parameters=params, metrics=metrics,
                         description=mv.description or "", tags={"imported_from": model_uri})


def _flavor(flavors: dict[str, Any], where: str) -> dict[str, Any]:
    """The scikit-learn flavour of a skops-stored model (refuses any other)."""
    flavor = flavors.get("sklearn")
    if flavor is None:
        raise RegistryError(f"{where}: the MLflow model has no scikit-learn flavour (flavours: {sorted(flavors)}).",
                            fix="Log it with mlflow.sklearn.log_model(..., serialization_format='skops').")
    if flavor.get("serialization_format") != "skops":
        raise RegistryError(f"{where}: the MLflow model is stored as {flavor.get('serialization_format')!r}; the kit "
                            "imports only skops files (a pickle runs code while it loads).",
                            fix="Log it again with mlflow.sklearn.log_model(..., serialization_format='skops').")
    return dict(flavor)


def _load(folder: Path, flavor: dict[str, Any], declared: Sequence[str], trusted_types: Sequence[str] | None,
          where: str) -> Any:
    data = (folder / flavor["pickled_model"]).read_bytes()
    allowed = sorted(set(declared) if trusted_types is None else set(declared) & set(trusted_types))
    present = untrusted_types(data)
    extra = sorted(set(present) - set(allowed))
    if extra:
        raise RegistryError(f"{where}: the MLflow model asks for types that are not trusted: {', '.join(extra)}; "
                            "refusing to load it (nothing was constructed).",
                            fix="Review them (skops.io.get_untrusted_types) and pass trusted_types=[...] if they are "
                                "expected and the model declares them.", untrusted_types=extra)
    return load_skops(data, allowed, where=where)


def import_from_mlflow(registry: Any, model_uri: str, *, name: str, author: str, tracking_uri: str,
                       signature: ModelSignature | None = None, metadata: ModelMetadata | None = None,
                       lineage: Lineage | None = None, trusted_types: Sequence[str] | None = None) -> Any:
    """Register the MLflow version ``model_uri`` as the next kit version of ``name``; returns it.

    Raises
    ------
    ValidationError
        A bad argument or model URI.
    MlflowUnavailableError
        mlflow missing, the server down, or the credentials refused.
    MissingMetadataError
        No signature, no lineage, or a gap in the metadata core (``details['missing']``).
    RegistryError, IntegrityError
        Not a skops scikit-learn model, untrusted types, an incomplete kit export, or a kit
        record that disagrees with the MLflow signature.
    """
    where = f"import_from_mlflow({model_uri!r})"
    check_name("name", name, where=where)
    check_name("author", author, where=where)
    for arg, value, kind in (("signature", signature, ModelSignature), ("metadata", metadata, ModelMetadata),
                             ("lineage", lineage, Lineage)):
        if value is not None and not isinstance(value, kind):
            raise ValidationError(f"{where}: {arg} must be a {kind.__name__} or None, got {type(value).__name__}.",
                                  fix=f"Pass {arg}={kind.__name__}(...) or leave it out.")
    if trusted_types is not None and (isinstance(trusted_types, str) or not all(
            isinstance(t, str) for t in trusted_types)):
        raise ValidationError(f"{where}: trusted_types must be a list of type names, got {trusted_types!r}.",
                              fix="Pass e.g. trusted_types=['mlops_kit.labs.ch04.FraudScorer'].")
    mlflow_name, number, alias = parse_model_uri(model_uri, where)
    client = connect(tracking_uri, where=where)
    import mlflow.artifacts
    from mlflow.models import Model

    with calling(client.tracking_uri, where), tempfile.TemporaryDirectory(prefix="mlops-kit-mlflow-") as tmp:
        mv = (client.get_model_version(mlflow_name, str(number)) if alias is None
              else client.get_model_version_by_alias(mlflow_name, alias))
        record = _record(client, mv, Path(tmp), where)
        folder = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(mlflow_name, mv.version),
            dst_path=str(Path(tmp) / "model"), tracking_uri=client.tracking_uri))
        mlmodel = Model.load(str(folder))
        flavors = dict(mlmodel.flavors)
        flavor = _flavor(flavors, where)
        spec = record["model_version"]["spec"] if record else None
        if mlmodel.signature is None:
            raise MissingMetadataError(f"{where}: the MLflow model has no signature; the kit needs the input and "
                                       "output columns and their dtypes.",
                                       fix="Log it again with signature=mlflow.models.infer_signature(X, y_pred).",
                                       missing=["signature"])
        mlflow_sig = from_mlflow_signature(mlmodel.signature, where)
        if signature is None:
            signature = ModelSignature.from_dict(spec["signature"]) if spec else mlflow_sig
        if not _same_columns(signature, mlflow_sig):
            raise IntegrityError(f"{where}: the kit signature {signature.input_names} disagrees with the MLflow "
                                 f"signature {mlflow_sig.input_names} (columns or dtypes).",
                                 fix="Pass the signature of the model as logged, or log the model again.")
        if lineage is None and spec:
            lineage = Lineage.from_dict(spec["lineage"])
        if lineage is None and (mv.tags or {}).get(TAG["lineage"]):
            lineage = Lineage.from_dict(json.loads(mv.tags[TAG["lineage"]]))
        if lineage is None:
            raise MissingMetadataError(f"{where}: the MLflow version carries no lineage (no kit record, no "
                                       f"{TAG['lineage']} tag).",
                                       fix="Pass lineage=Lineage(features=..., snapshots=...) naming the feature "
                                           "views and data snapshots it was trained on.", missing=["lineage"])
        if metadata is None:
            metadata = (ModelMetadata.from_dict(spec["metadata"]) if spec
                        else _derived_metadata(client, mv, flavors, folder, model_uri))
        declared = (record["model_version"]["trusted_types"] if record
                    else flavor.get("skops_trusted_types") or [])
        missing = metadata.missing() + lineage.missing()
        if missing:
            raise MissingMetadataError(f"{where}: MLflow lacks part of the kit's required core: {', '.join(missing)}.",
                                       fix="Pass metadata=ModelMetadata(...) / lineage=Lineage(...) with the listed "
                                           "items (or record them in MLflow), then import again.", missing=missing)
        model = _load(folder, flavor, declared, trusted_types, where)
    return registry.register_model(name, model, signature=signature, metadata=metadata, lineage=lineage,
                                   author=author)
