"""Governed model registry: immutable versions, aliases, signatures, lineage, policy gates,
approvals and a tamper-evident audit log, stored in ``workspace.registry_db``.

Artifacts are pickled and stored content-addressed under ``workspace.artifacts_dir``;
every load re-hashes the bytes first and refuses a mismatch. Unpickling runs code: load
only artifacts this registry wrote.

>>> from mlops_kit.registry import ModelRegistry, infer_signature   # doctest: +SKIP
>>> registry = ModelRegistry("workspace")                            # doctest: +SKIP
"""

from .approvals import ApprovalRule
from .audit import AuditEntry, AuditLog, AuditVerification, verify_chain_export
from .changelog import diff_versions, render_changelog
from .entities import (
    AliasEvent,
    Approval,
    Attestation,
    ModelVersion,
    ModelVersionSpec,
    StateEvent,
    alias_spans,
)
from .lifecycle import DEPLOYED_ALIAS, STAGE_ALIASES, STATES, TRANSITIONS
from .lineage import DataSnapshot, FeatureRef, Lineage, draw_lineage, lineage_graph
from .metadata import ModelMetadata, capture_environment
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
    "alias_spans",
    "ApprovalRule", "AuditLog", "AuditEntry", "AuditVerification", "verify_chain_export",
    "ModelSignature", "ColumnSpec", "ContractReport", "ContractViolation", "GoldenReport",
    "infer_signature", "check_contract", "check_golden",
    "ModelMetadata", "capture_environment",
    "Lineage", "FeatureRef", "DataSnapshot", "lineage_graph", "draw_lineage",
    "Policy", "PolicyContext", "PolicyResult", "MetricThreshold", "NoSegmentRegression", "ContractCheck",
    "LineageComplete", "EnvironmentRecorded", "default_stage_policies",
    "diff_versions", "render_changelog", "build_release", "check_release", "ReleaseReport",
    "STATES", "TRANSITIONS", "STAGE_ALIASES", "DEPLOYED_ALIAS", "PAUSE_IN_REGISTER_ENV",
]
