"""Every error the kit raises, in one tree.

Each error says what was wrong, where, and how to fix it. Errors are built from
structured fields so that tests and notebooks can inspect them without parsing text::

    MlopsKitError
    ├── ValidationError (also ValueError)     bad input to a public entry point
    │   ├── SchemaError                       missing/extra columns, wrong dtypes, null keys
    │   ├── TimezoneError                     naive or non-UTC timestamps
    │   ├── DefinitionError                   an invalid Entity, FeatureView, policy, SLO ...
    │   └── StoreConfigError                  a bad feature_store.toml / engine setting
    ├── NotFoundError (also KeyError)         unknown view, feature, model, version, alias
    ├── ConflictError                         a change that would rewrite history
    │   └── DefinitionConflictError           changed definition re-applied under the same version
    ├── IllegalTransitionError                a lifecycle move not in the transition table
    ├── AccessDeniedError (also PermissionError)
    ├── QualityGateError                      one or more blocking quality checks failed
    ├── IntegrityError                        content hash mismatch, broken audit chain
    ├── RegistryError                         registry-specific refusals
    │   ├── MissingMetadataError              registration without the required core
    │   ├── PolicyViolationError              a promotion gate failed
    │   ├── ApprovalError                     missing or invalid approvals (separation of duties)
    │   ├── MlflowUnavailableError            the MLflow server (or the mlflow package) cannot be used
    │   ├── MlflowConflictError               an MLflow name or alias the kit does not own
    │   └── MlflowExportError                 an export to MLflow failed part way (never marked complete)
    ├── RolloutError                          invalid rollout configuration or action
    ├── EvidenceError                         evidence recording, building or grading
    │   ├── CheckFailedError                  a recorded check did not pass
    │   └── NotebookParameterError            unknown parameters / missing parameters cell
    ├── ExerciseNotDoneError                  a learner exercise stub was run
    ├── BackfillError                         a backfill partition failed every attempt
    ├── ConcurrentWriteError                  another writer held the workspace too long; retry
    ├── OnlineStoreUnavailableError           the online store's server cannot be reached or used
    └── OfflineEngineError                    the offline engine (Spark) cannot start or reach its cluster

Warnings (not errors): ``LateDataWarning`` (rows created after the entity timestamp were
used by a point-in-time join) and ``DeprecatedFeatureWarning``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MlopsKitError",
    "ValidationError",
    "SchemaError",
    "TimezoneError",
    "DefinitionError",
    "StoreConfigError",
    "NotFoundError",
    "ConflictError",
    "DefinitionConflictError",
    "IllegalTransitionError",
    "AccessDeniedError",
    "QualityGateError",
    "IntegrityError",
    "RegistryError",
    "MissingMetadataError",
    "PolicyViolationError",
    "ApprovalError",
    "MlflowUnavailableError",
    "MlflowConflictError",
    "MlflowExportError",
    "RolloutError",
    "EvidenceError",
    "CheckFailedError",
    "NotebookParameterError",
    "ExerciseNotDoneError",
    "BackfillError",
    "ConcurrentWriteError",
    "OnlineStoreUnavailableError",
    "OfflineEngineError",
    "LateDataWarning",
    "DeprecatedFeatureWarning",
]


class MlopsKitError(Exception):
    """Root of every error raised by the kit.

    Parameters
    ----------
    message:
        What was wrong and where (one sentence).
    fix:
        How to fix it (one sentence); appended to the message.
    **details:
        Structured fields kept on ``self.details`` for programmatic inspection.
    """

    def __init__(self, message: str, *, fix: str | None = None, **details: Any) -> None:
        self.message = message
        self.fix = fix
        self.details = details
        text = message if fix is None else f"{message} Fix: {fix}"
        super().__init__(text)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0] if self.args else ""


class ValidationError(MlopsKitError, ValueError):
    """Bad input to a public entry point; nothing was written."""


class SchemaError(ValidationError):
    """Missing or unexpected columns, wrong dtypes, null join keys."""


class TimezoneError(ValidationError):
    """Naive or non-UTC timestamps where tz-aware UTC is required."""


class DefinitionError(ValidationError):
    """An invalid declaration (Entity, FeatureView, policy, SLO, check ...)."""


class StoreConfigError(ValidationError):
    """A bad engine setting: an unknown key, engine or URL scheme, or a malformed URL.

    ``details['supported']`` lists the accepted values.
    """


class NotFoundError(MlopsKitError, KeyError):
    """An unknown name: view, feature, model, version, alias, artifact."""


class ConflictError(MlopsKitError):
    """A change that would rewrite recorded history."""


class DefinitionConflictError(ConflictError):
    """A changed definition re-applied under an existing version."""


class IllegalTransitionError(MlopsKitError):
    """A lifecycle move that the transition table does not allow."""


class AccessDeniedError(MlopsKitError, PermissionError):
    """A principal read something it holds no grant for."""


class QualityGateError(MlopsKitError):
    """One or more blocking quality checks failed; ``details['failures']`` lists them."""


class IntegrityError(MlopsKitError):
    """Stored content does not match its recorded hash, or the audit chain is broken."""


class RegistryError(MlopsKitError):
    """A model-registry refusal."""


class MissingMetadataError(RegistryError, ValidationError):
    """Registration without the required metadata core; ``details['missing']`` lists it."""


class PolicyViolationError(RegistryError):
    """A promotion gate failed; ``details['failures']`` lists the failing policies."""


class ApprovalError(RegistryError):
    """Approvals are missing, duplicated or given by the author."""


class MlflowUnavailableError(RegistryError):
    """The MLflow tracking server cannot be used: mlflow not installed, server down, or access refused.

    ``details['reason']`` is ``"mlflow-missing"``, ``"down"``, ``"unhealthy"`` or ``"refused"``;
    ``details['url']`` is the tracking URI with any password masked.
    """


class MlflowConflictError(RegistryError, ConflictError):
    """An MLflow registered model or alias that the kit does not own blocks an export; nothing was written.

    ``details['reason']`` is ``"name-clash"``, ``"alias-clash"`` or ``"version-clash"``.
    """


class MlflowExportError(RegistryError):
    """An export to MLflow failed part way; no MLflow version was marked complete.

    ``details['step']`` names the step that failed; exporting again removes the incomplete
    version and starts over.
    """


class RolloutError(MlopsKitError):
    """Invalid rollout configuration or action."""


class EvidenceError(MlopsKitError):
    """Evidence recording, building or grading failed."""


class CheckFailedError(EvidenceError, AssertionError):
    """A recorded check did not pass (raised so papermill and nbval fail the run)."""


class NotebookParameterError(EvidenceError, ValidationError):
    """Unknown notebook parameters, or a notebook without a ``parameters`` cell."""


class ExerciseNotDoneError(MlopsKitError):
    """A learner exercise still holds its stub."""


class BackfillError(MlopsKitError):
    """A backfill stopped because a partition failed every attempt; the live version is untouched."""


class ConcurrentWriteError(MlopsKitError):
    """Another process kept a workspace database locked past the bounded wait; nothing was written.

    Retrying the same call is safe: the write either committed completely before this error
    or not at all (``retryable`` is always True).
    """

    retryable = True


class OnlineStoreUnavailableError(MlopsKitError):
    """The online store's server refused or lost the connection (down, wrong password, bad db).

    ``details['url']`` is the store URL with any password masked. A failed write may have
    stored part of its rows; the watermark did not move, so re-running the materialization
    completes it.
    """


class OfflineEngineError(MlopsKitError):
    """The configured offline engine cannot run: pyspark or Java missing, Java too old, the
    Spark master unreachable, an offline file it cannot read, or a failed job. Nothing was
    written online.

    ``details['reason']`` is one of ``"pyspark-missing"``, ``"java-missing"``,
    ``"java-too-old"``, ``"master-unreachable"``, ``"session-conflict"``, ``"path-unreadable"``
    and ``"job-failed"`` (both with ``details['path']``: the file concerned, or None).
    """


class LateDataWarning(UserWarning):
    """A point-in-time join used rows created after the entity timestamp (possible leakage)."""


class DeprecatedFeatureWarning(UserWarning):
    """A deprecated feature was read; the message names its replacement and end of life."""
