"""Promotion gates as code: policies evaluated on a version, stored as attestations.

Each policy is a frozen declaration with an id and an ``evaluate(context)`` that returns
a :class:`PolicyResult` (inputs, observed value, threshold, verdict, reason). The registry
runs the policies configured for the target stage on every ``promote``, stores each result
as an :class:`~mlops_kit.registry.entities.Attestation` on the version (pass or fail), and
refuses the promotion with :class:`~mlops_kit.errors.PolicyViolationError` listing every
failing policy.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from ..errors import DefinitionError
from .entities import ModelVersion
from .signature import check_contract

__all__ = [
    "Policy", "PolicyContext", "PolicyResult", "MetricThreshold", "NoSegmentRegression",
    "ContractCheck", "LineageComplete", "EnvironmentRecorded", "default_stage_policies",
]


@dataclass(frozen=True, kw_only=True)
class PolicyContext:
    """What a policy sees: the candidate version, the current production version (if any)."""

    candidate: ModelVersion
    production: ModelVersion | None
    stage: str


@dataclass(frozen=True, kw_only=True)
class PolicyResult:
    """One evaluation: what went in, what was observed, against which threshold, the verdict."""

    policy_id: str
    inputs: Mapping[str, Any]
    observed: Any
    threshold: Any
    passed: bool
    reason: str


class Policy(Protocol):
    """Anything with a ``policy_id`` and ``evaluate(context) -> PolicyResult``."""

    @property
    def policy_id(self) -> str: ...

    def evaluate(self, context: PolicyContext) -> PolicyResult: ...


def _number(owner: str, name: str, value: Any, *, allow_none: bool = False, minimum: float | None = None) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DefinitionError(f"{owner}: {name} must be a finite number, got {value!r}.",
                              fix=f"Pass {name} as a float.")
    if minimum is not None and value < minimum:
        raise DefinitionError(f"{owner}: {name} must be >= {minimum}, got {value!r}.", fix=f"Pass {name} >= {minimum}.")


@dataclass(frozen=True, kw_only=True)
class MetricThreshold:
    """``metric`` must reach ``minimum`` and beat production by absolute and relative margins.

    The comparison with the current production version only counts on the same evaluation
    set (``metadata.eval_set_id``); different sets fail as not comparable. With no
    production version the improvement rules do not apply (recorded in the reason).
    """

    metric: str
    minimum: float | None = None
    min_abs_improvement: float = 0.0
    min_rel_improvement: float = 0.0
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        owner = f"MetricThreshold({self.metric!r})"
        if not isinstance(self.metric, str) or not self.metric:
            raise DefinitionError(f"MetricThreshold: metric must be a non-empty string, got {self.metric!r}.",
                                  fix="Name a metric recorded in metadata.metrics, e.g. 'auc'.")
        _number(owner, "minimum", self.minimum, allow_none=True)
        _number(owner, "min_abs_improvement", self.min_abs_improvement)
        _number(owner, "min_rel_improvement", self.min_rel_improvement)
        if not isinstance(self.higher_is_better, bool):
            raise DefinitionError(f"{owner}: higher_is_better must be a bool.", fix="Pass True or False.")

    @property
    def policy_id(self) -> str:
        return f"metric_threshold:{self.metric}"

    def evaluate(self, context: PolicyContext) -> PolicyResult:
        cand, prod = context.candidate, context.production
        threshold = {"minimum": self.minimum, "min_abs_improvement": self.min_abs_improvement,
                     "min_rel_improvement": self.min_rel_improvement, "higher_is_better": self.higher_is_better}
        inputs = {"metric": self.metric, "candidate_version": cand.version,
                  "eval_set_id": cand.metadata.eval_set_id,
                  "production_version": None if prod is None else prod.version}
        value = cand.metadata.metrics.get(self.metric)
        observed: dict[str, Any] = {"value": value}

        def result(passed: bool, reason: str) -> PolicyResult:
            return PolicyResult(policy_id=self.policy_id, inputs=inputs, observed=observed,
                                threshold=threshold, passed=passed, reason=reason)

        if value is None:
            return result(False, f"metric {self.metric!r} is not recorded on version {cand.version}")
        sign = 1.0 if self.higher_is_better else -1.0
        if self.minimum is not None and sign * (value - self.minimum) < 0:
            word = "below the minimum" if self.higher_is_better else "above the maximum"
            return result(False, f"{self.metric}={value:.6g} is {word} {self.minimum:.6g}")
        if prod is None or prod.version == cand.version:
            return result(True, f"{self.metric}={value:.6g} meets the minimum; no production version to compare")
        base = prod.metadata.metrics.get(self.metric)
        observed["production"] = base
        if base is None:
            return result(False, f"production v{prod.version} has no {self.metric!r}: not comparable")
        if cand.metadata.eval_set_id is None or cand.metadata.eval_set_id != prod.metadata.eval_set_id:
            return result(False, f"evaluation sets differ (candidate {cand.metadata.eval_set_id!r}, production "
                          f"{prod.metadata.eval_set_id!r}): metrics are not comparable")
        gain = sign * (value - base)
        rel = gain / abs(base) if base != 0 else (math.inf if gain > 0 else 0.0)
        observed.update(abs_improvement=gain, rel_improvement=None if math.isinf(rel) else rel)
        if gain < self.min_abs_improvement:
            return result(False, f"{self.metric} improves by {gain:.6g} over production v{prod.version}, "
                          f"less than the required {self.min_abs_improvement:.6g}")
        if rel < self.min_rel_improvement:
            return result(False, f"{self.metric} improves by {rel:.2%} relative to production v{prod.version}, "
                          f"less than the required {self.min_rel_improvement:.2%}")
        return result(True, f"{self.metric}={value:.6g} beats production v{prod.version} ({base:.6g}) by {gain:.6g}")


@dataclass(frozen=True, kw_only=True)
class NoSegmentRegression:
    """No segment's ``metric`` may fall more than ``tolerance`` below production's."""

    metric: str
    tolerance: float = 0.0
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise DefinitionError(f"NoSegmentRegression: metric must be a non-empty string, got {self.metric!r}.",
                                  fix="Name a metric recorded in metadata.segment_metrics.")
        _number(f"NoSegmentRegression({self.metric!r})", "tolerance", self.tolerance, minimum=0.0)

    @property
    def policy_id(self) -> str:
        return f"no_segment_regression:{self.metric}"

    def evaluate(self, context: PolicyContext) -> PolicyResult:
        cand, prod = context.candidate, context.production
        inputs = {"metric": self.metric, "candidate_version": cand.version,
                  "production_version": None if prod is None else prod.version,
                  "eval_set_id": cand.metadata.eval_set_id}
        threshold = {"tolerance": self.tolerance, "higher_is_better": self.higher_is_better}
        if prod is None or prod.version == cand.version:
            return PolicyResult(policy_id=self.policy_id, inputs=inputs, observed={}, threshold=threshold,
                                passed=True, reason="no production version to compare against")
        sign = 1.0 if self.higher_is_better else -1.0
        drops: dict[str, Any] = {}
        problems: list[str] = []
        for segment, metrics in sorted(prod.metadata.segment_metrics.items()):
            if self.metric not in metrics:
                continue
            mine = cand.metadata.segment_metrics.get(segment, {}).get(self.metric)
            if mine is None:
                problems.append(f"segment {segment!r} has no {self.metric} on the candidate")
                drops[segment] = None
                continue
            drop = sign * (metrics[self.metric] - mine)
            drops[segment] = drop
            if drop > self.tolerance:
                problems.append(f"segment {segment!r}: {self.metric} {mine:.6g} vs production "
                                f"{metrics[self.metric]:.6g} (drop {drop:.6g} > {self.tolerance:.6g})")
        if cand.metadata.eval_set_id != prod.metadata.eval_set_id:
            problems.insert(0, "evaluation sets differ: segment metrics are not comparable")
        return PolicyResult(policy_id=self.policy_id, inputs=inputs, observed={"drops": drops},
                            threshold=threshold, passed=not problems,
                            reason="; ".join(problems) or f"no segment regresses by more than {self.tolerance:.6g}")


def frame_fingerprint(df: pd.DataFrame) -> str:
    """A content hash of a DataFrame (values, column names, index)."""
    hashed = pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()
    return hashlib.sha256(hashed + "|".join(map(str, df.columns)).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class ContractCheck:
    """The candidate's signature accepts ``data`` (e.g. a sample of serving inputs)."""

    data: pd.DataFrame = field(compare=False, repr=False)
    data_name: str = "serving sample"

    def __post_init__(self) -> None:
        if not isinstance(self.data, pd.DataFrame) or self.data.empty:
            raise DefinitionError("ContractCheck: data must be a non-empty DataFrame.",
                                  fix="Pass a sample of the inputs the model will be served.")

    @property
    def policy_id(self) -> str:
        return "contract_check"

    def evaluate(self, context: PolicyContext) -> PolicyResult:
        report = check_contract(context.candidate.signature, self.data)
        inputs = {"data_name": self.data_name, "rows": len(self.data), "data_sha256": frame_fingerprint(self.data)}
        reason = ("; ".join(f"{v.column}: {v.kind} ({v.detail})" for v in report.violations)
                  or f"{len(self.data)} rows satisfy the signature")
        return PolicyResult(policy_id=self.policy_id, inputs=inputs,
                            observed={"violations": len(report.violations), "warnings": list(report.warnings)},
                            threshold={"violations": 0}, passed=report.ok, reason=reason)


@dataclass(frozen=True, kw_only=True)
class LineageComplete:
    """Code revision, run id, feature views (version + fingerprint) and snapshot hashes recorded."""

    @property
    def policy_id(self) -> str:
        return "lineage_complete"

    def evaluate(self, context: PolicyContext) -> PolicyResult:
        cand = context.candidate
        gaps = [g for g in cand.metadata.missing() if g.startswith(("metadata.code", "metadata.training"))]
        gaps += cand.lineage.missing()
        return PolicyResult(policy_id=self.policy_id, inputs={"candidate_version": cand.version},
                            observed={"missing": gaps}, threshold={"missing": []}, passed=not gaps,
                            reason="missing " + ", ".join(gaps) if gaps else "lineage is complete")


@dataclass(frozen=True, kw_only=True)
class EnvironmentRecorded:
    """The environment records Python and a version for each of ``packages``."""

    packages: tuple[str, ...] = ("scikit-learn",)

    def __post_init__(self) -> None:
        if isinstance(self.packages, str) or not all(isinstance(p, str) and p for p in self.packages):
            raise DefinitionError(f"EnvironmentRecorded: packages must be a list of names, got {self.packages!r}.",
                                  fix="Pass e.g. packages=('scikit-learn', 'numpy').")
        object.__setattr__(self, "packages", tuple(self.packages))

    @property
    def policy_id(self) -> str:
        return "environment_recorded"

    def evaluate(self, context: PolicyContext) -> PolicyResult:
        env = context.candidate.metadata.environment
        recorded = env.get("packages") if isinstance(env.get("packages"), Mapping) else {}
        gaps = ([] if env.get("python") else ["python"]) + [p for p in self.packages if not recorded.get(p)]
        return PolicyResult(policy_id=self.policy_id, inputs={"required": ["python", *self.packages]},
                            observed={"python": env.get("python"), "packages": {p: recorded.get(p) for p in self.packages}},
                            threshold={"missing": []}, passed=not gaps,
                            reason="not recorded: " + ", ".join(gaps) if gaps else "environment recorded")


def default_stage_policies() -> dict[str, tuple[Any, ...]]:
    """The gates used when none are configured: lineage and environment at every stage."""
    basic = (LineageComplete(), EnvironmentRecorded())
    return {"candidate": basic, "staging": basic, "approved-prod": basic}


def validate_policies(stage: str, policies: Sequence[Any]) -> tuple[Any, ...]:
    """Check that every entry looks like a policy (has ``policy_id`` and ``evaluate``)."""
    if isinstance(policies, (str, bytes)) or not isinstance(policies, Sequence):
        raise DefinitionError(f"policies for stage {stage!r} must be a list, got {type(policies).__name__}.",
                              fix="Pass e.g. {'approved-prod': [MetricThreshold(metric='auc', minimum=0.8)]}.")
    for policy in policies:
        if not hasattr(policy, "policy_id") or not callable(getattr(policy, "evaluate", None)):
            raise DefinitionError(f"stage {stage!r}: {policy!r} is not a policy (needs policy_id and evaluate).",
                                  fix="Use MetricThreshold, NoSegmentRegression, ContractCheck, LineageComplete, "
                                  "EnvironmentRecorded or your own class with the same two members.")
    ids = [p.policy_id for p in policies]
    if len(set(ids)) != len(ids):
        raise DefinitionError(f"stage {stage!r}: duplicate policy ids {ids}.", fix="Configure each policy once.")
    return tuple(policies)
