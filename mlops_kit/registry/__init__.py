"""Governed model registry: immutable versions, aliases, signatures, lineage, policy gates,
approvals and a tamper-evident audit log, stored in ``workspace.registry_db``.

Artifacts are stored content-addressed (sha256 of the bytes) under
``workspace.artifacts_dir`` and every load re-hashes the bytes before deserialising.

Artifacts are safe to load by default: ``register_model`` writes a canonical ``skops`` file
(equal models give equal bytes) and records the types it needs beyond skops' defaults as
the version's ``trusted_types``; ``load_model`` constructs only those and refuses a file
that asks for any other type (a ``RegistryError`` naming them; review a file with
``skops.io.get_untrusted_types``). Pickle is an explicit opt-in: ``format="pickle"`` at
registration and ``trusted=True`` at load, each with an ``UnsafeArtifactWarning``.
Workspaces written before skops keep loading with ``trusted=True``;
``registry.migrate_artifacts()`` rewrites their pickles as skops through audited,
append-only artifact events (``artifact_history``), never by editing a version.

``export_to_mlflow`` / ``import_from_mlflow`` (also registry methods) carry versions to and
from an MLflow tracking server: versions, signatures, lineage and the stage aliases map one
to one (see :mod:`mlops_kit.registry.mlflow_bridge`); mlflow is the optional extra
``mlops-kit[mlflow]`` and is imported only when one of them is called.

>>> from mlops_kit.registry import ModelRegistry, infer_signature   # doctest: +SKIP
>>> registry = ModelRegistry("workspace")                            # doctest: +SKIP
"""

from .approvals import ApprovalRule
from .audit import AuditEntry, AuditLog, AuditVerification, verify_chain_export
from .changelog import diff_versions, render_changelog
from ._formats import FORMATS, UnsafeArtifactWarning
from .entities import (
    AliasEvent,
    Approval,
    ArtifactEvent,
    Attestation,
    ModelVersion,
    ModelVersionSpec,
    StateEvent,
    alias_spans,
)
from .lifecycle import DEPLOYED_ALIAS, STAGE_ALIASES, STATES, TRANSITIONS
from .lineage import DataSnapshot, FeatureRef, Lineage, draw_lineage, lineage_graph
from .metadata import ModelMetadata, capture_environment
from .mlflow_bridge import MlflowExport, export_to_mlflow
from .mlflow_import import import_from_mlflow
from .policies import (
    ContractCheck,
    EnvironmentRecorded,
    LineageComplete,
    MetricThreshold,
    NoSegmentRegression,
    Policy,
    PolicyContext,
    PolicyResult,
    default_stage_policies,
)
from .registry import PAUSE_IN_REGISTER_ENV, ModelRegistry
from .release import ReleaseReport, build_release, check_release
from .signature import (
    ColumnSpec,
    ContractReport,
    ContractViolation,
    GoldenReport,
    ModelSignature,
    check_contract,
    check_golden,
    infer_signature,
)

__all__ = [
    "ModelRegistry", "ModelVersion", "ModelVersionSpec", "AliasEvent", "StateEvent", "Approval", "Attestation",
    "alias_spans", "ArtifactEvent", "UnsafeArtifactWarning", "FORMATS",
    "ApprovalRule", "AuditLog", "AuditEntry", "AuditVerification", "verify_chain_export",
    "ModelSignature", "ColumnSpec", "ContractReport", "ContractViolation", "GoldenReport",
    "infer_signature", "check_contract", "check_golden",
    "ModelMetadata", "capture_environment",
    "Lineage", "FeatureRef", "DataSnapshot", "lineage_graph", "draw_lineage",
    "Policy", "PolicyContext", "PolicyResult", "MetricThreshold", "NoSegmentRegression", "ContractCheck",
    "LineageComplete", "EnvironmentRecorded", "default_stage_policies",
    "diff_versions", "render_changelog", "build_release", "check_release", "ReleaseReport",
    "STATES", "TRANSITIONS", "STAGE_ALIASES", "DEPLOYED_ALIAS", "PAUSE_IN_REGISTER_ENV",
    "export_to_mlflow", "import_from_mlflow", "MlflowExport",
]
