"""The metadata a model version must carry, and environment capture.

The required core (refused at registration when any part is absent, with the full list):
code revision, training run id, environment (Python and package versions), parameters and
metrics. Dataset snapshots and feature references are the lineage half of the core
(:mod:`mlops_kit.registry.lineage`). Everything else is optional.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError, ValidationError

__all__ = ["ModelMetadata", "capture_environment", "DEFAULT_PACKAGES"]

DEFAULT_PACKAGES = ("numpy", "pandas", "scikit-learn", "scipy", "pyarrow", "duckdb")


def capture_environment(packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """Record the Python version, platform and the installed versions of ``packages``.

    A package that is not installed is recorded as ``None`` (so the gap is visible).

    Examples
    --------
    >>> env = capture_environment(["numpy"])
    >>> sorted(env) == ["packages", "platform", "python"] and "numpy" in env["packages"]
    True
    """
    if isinstance(packages, str):
        raise ValidationError("capture_environment: packages must be a list of names, got a string.",
                              fix="Pass e.g. ['numpy', 'scikit-learn'].")
    names = list(packages)
    if not all(isinstance(name, str) and name for name in names):
        raise ValidationError(f"capture_environment: every package name must be a non-empty string, got {names!r}.",
                              fix="Pass distribution names, e.g. 'scikit-learn'.")
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": sys.platform, "packages": versions}


def _check_mapping(owner: str, name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise DefinitionError(f"{owner}: {name} must be a mapping, got {type(value).__name__} {value!r}.",
                              fix=f"Pass {name} as a dict.")
    if not all(isinstance(key, str) for key in value):
        raise DefinitionError(f"{owner}: {name} keys must be strings, got {list(value)!r}.",
                              fix="Use string keys.")
    return dict(value)


@dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    """What a model version records about how it was produced.

    Parameters
    ----------
    code_revision:
        The training code revision (e.g. a git SHA).
    training_run_id:
        The id of the training run that produced the artifact.
    environment:
        ``capture_environment()`` output: ``{"python": ..., "packages": {...}}``.
    parameters:
        Hyperparameters.
    metrics:
        Evaluation metrics (finite numbers), measured on ``eval_set_id``.
    eval_set_id:
        Content hash of the evaluation set (metric comparisons need the same one).
    segment_metrics:
        Per-segment metrics, ``{segment: {metric: value}}``.
    preprocessing_fingerprint:
        Hash of the fitted preprocessing (packaged with a release).
    description, tags:
        Free-form.
    """

    code_revision: str | None = None
    training_run_id: str | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    eval_set_id: str | None = None
    segment_metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    preprocessing_fingerprint: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = "ModelMetadata"
        for name in ("code_revision", "training_run_id", "eval_set_id", "preprocessing_fingerprint"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise DefinitionError(f"{owner}: {name} must be a string or None, got {value!r}.",
                                      fix=f"Pass {name} as a string.")
        if not isinstance(self.description, str):
            raise DefinitionError(f"{owner}: description must be a string, got {self.description!r}.",
                                  fix="Pass a short text.")
        for name in ("environment", "parameters", "tags"):
            object.__setattr__(self, name, _check_mapping(owner, name, getattr(self, name)))
        metrics = _check_mapping(owner, "metrics", self.metrics)
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DefinitionError(f"{owner}: metric {key!r} must be a finite number, got {value!r}.",
                                      fix="Record metrics as floats, e.g. {'auc': 0.91}.")
        object.__setattr__(self, "metrics", {k: float(v) for k, v in metrics.items()})
        segments = _check_mapping(owner, "segment_metrics", self.segment_metrics)
        clean: dict[str, dict[str, float]] = {}
        for segment, values in segments.items():
            inner = _check_mapping(owner, f"segment_metrics[{segment!r}]", values)
            for key, value in inner.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise DefinitionError(
                        f"{owner}: segment_metrics[{segment!r}][{key!r}] must be a finite number, got {value!r}.",
                        fix="Record per-segment metrics as floats.")
            clean[segment] = {k: float(v) for k, v in inner.items()}
        object.__setattr__(self, "segment_metrics", clean)

    def missing(self) -> list[str]:
        """Every absent part of the required core (empty list when complete)."""
        gaps: list[str] = []
        if not self.code_revision:
            gaps.append("metadata.code_revision")
        if not self.training_run_id:
            gaps.append("metadata.training_run_id")
        if not self.environment.get("python"):
            gaps.append("metadata.environment.python")
        packages = self.environment.get("packages")
        if not isinstance(packages, Mapping) or not any(packages.values()):
            gaps.append("metadata.environment.packages")
        if not self.parameters:
            gaps.append("metadata.parameters")
        if not self.metrics:
            gaps.append("metadata.metrics")
        return gaps

    def to_dict(self) -> dict[str, Any]:
        return {"code_revision": self.code_revision, "training_run_id": self.training_run_id,
                "environment": dict(self.environment), "parameters": dict(self.parameters),
                "metrics": dict(self.metrics), "eval_set_id": self.eval_set_id,
                "segment_metrics": {k: dict(v) for k, v in self.segment_metrics.items()},
                "preprocessing_fingerprint": self.preprocessing_fingerprint,
                "description": self.description, "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelMetadata":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})
