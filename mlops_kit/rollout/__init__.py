"""Progressive delivery on a simulated clock: routing, strategies, guardrails, faults, incidents.

Shadow, canary and blue/green releases of a candidate model over recorded traffic, with
deterministic sticky routing, Argo-Rollouts-style analysis (failure and inconclusive limits),
rollback through the model provider (registry aliases), a fallback model for an unhealthy
online store, feature flags, a one-call ``restore`` of alias + routing + flags, incident
timelines and generated postmortems whose corrective actions are executable checks.
"""

from .adapters import OnlineStoreFeatureSource, RegistryModelProvider
from .control import DEFAULT_FLAGS, CheckResult, Event, ReleaseState, validate_flags
from .faults import (ConceptDrift, CovariateDrift, Fault, LatencyModel, LatencySpike, OnlineStoreOutage,
                     SchemaChange, SegmentRegression, fault_from_dict)
from .demo import LinearScorer, demo_world
from .guardrails import METRICS, STATISTICS, Guardrail, Measurement, RiskBudget, psi
from .incidents import (MITIGATIONS, CorrectiveAction, IncidentReport, guardrail_covers, incident_report,
                        postmortem_markdown)
from .plots import plot_guardrails, plot_traffic_split
from .result import RolloutResult
from .router import BUCKETS, Router, bucket_of, validate_weights
from .simulator import RolloutSimulator
from .sources import FeatureSource, InMemoryFeatureSource, InMemoryModelProvider, ModelProvider, score_model
from .strategies import BlueGreenStrategy, CanaryStrategy, Decision, RolloutState, ShadowStrategy, strategy_from_dict

__all__ = [
    "BUCKETS", "DEFAULT_FLAGS", "METRICS", "MITIGATIONS", "STATISTICS", "BlueGreenStrategy",
    "CanaryStrategy", "CheckResult", "ConceptDrift", "CorrectiveAction", "CovariateDrift",
    "Decision", "Event", "Fault", "FeatureSource", "Guardrail", "InMemoryFeatureSource",
    "InMemoryModelProvider", "IncidentReport", "LatencyModel", "LatencySpike", "LinearScorer",
    "Measurement", "ModelProvider", "OnlineStoreFeatureSource", "OnlineStoreOutage",
    "RegistryModelProvider", "ReleaseState", "RiskBudget", "RolloutResult", "RolloutSimulator",
    "RolloutState", "Router", "SchemaChange",
    "SegmentRegression", "ShadowStrategy", "bucket_of", "demo_world", "fault_from_dict",
    "guardrail_covers", "incident_report", "plot_guardrails", "plot_traffic_split",
    "postmortem_markdown", "psi", "score_model", "strategy_from_dict", "validate_flags",
    "validate_weights",
]
