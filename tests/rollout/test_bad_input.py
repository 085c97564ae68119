"""Every public entry point refuses bad input with a named, fixable MlopsKitError."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from rollout_helpers import START, make_sim, provider

import mlops_kit.rollout as ro
from mlops_kit.errors import DefinitionError, MlopsKitError, NotFoundError, RolloutError, SchemaError, TimezoneError, \
    ValidationError
from mlops_kit.rollout import (BlueGreenStrategy, CanaryStrategy, ConceptDrift, CovariateDrift, Guardrail,
                               InMemoryFeatureSource, InMemoryModelProvider, LatencyModel, LatencySpike,
                               OnlineStoreOutage, SchemaChange, SegmentRegression, ShadowStrategy, demo_world,
                               fault_from_dict, score_model, strategy_from_dict, validate_flags)

M = timedelta(minutes=1)


def test_exports_match_public_names():
    public = {n for n, v in vars(ro).items() if not n.startswith("_") and not isinstance(v, type(ro))}
    assert set(ro.__all__) == public


@pytest.mark.parametrize("mutate,exc,match", [
    (lambda t: t.drop(columns=["label"]), SchemaError, "missing columns"),
    (lambda t: t.iloc[:0], ValidationError, "no rows"),
    (lambda t: t.assign(label=2), SchemaError, "0/1"),
    (lambda t: t.assign(key=t["key"].where(t.index > 0)), SchemaError, "null"),
    (lambda t: t.assign(event_timestamp=t["event_timestamp"].dt.tz_localize(None)), TimezoneError, "naive"),
    (lambda t: t.assign(label_timestamp=t["event_timestamp"] - pd.Timedelta(seconds=1)), SchemaError, "before"),
    (lambda t: t.assign(amount_log="x"), SchemaError, "numeric"),
    (lambda t: "not a frame", ValidationError, "DataFrame"),
])
def test_bad_traffic(world, mutate, exc, match):
    with pytest.raises(exc, match=match):
        make_sim(world, traffic=mutate(world["traffic"].head(2000)))


@pytest.mark.parametrize("kw,exc,match", [
    ({"seed": -1}, ValidationError, "seed"),
    ({"strategy": "canary"}, DefinitionError, "strategy"),
    ({"warmup": timedelta(minutes=7)}, DefinitionError, "warmup"),
    ({"guardrails": [Guardrail(name="g", metric="error_rate", threshold=0.1, window=7 * M)]}, DefinitionError, "window"),
    ({"guardrails": [Guardrail(name="g", metric="error_rate", threshold=0.1, window=5 * M)] * 2}, DefinitionError,
     "unique"),
    ({"guardrails": [Guardrail(name="g", metric="score_psi", threshold=0.1, window=5 * M, compare_to="reference")],
      "warmup": timedelta(0)}, DefinitionError, "warmup"),
    ({"guardrails": [Guardrail(name="g", metric="error_rate", threshold=0.1, window=5 * M, action="fallback")]},
     DefinitionError, "fallback"),
    ({"faults": [CovariateDrift(feature="nope")]}, DefinitionError, "not a model feature"),
    ({"faults": [SegmentRegression(segment="nope")]}, DefinitionError, "never occurs"),
    ({"faults": ["drift"]}, DefinitionError, "Fault"),
    ({"flags": {"threshold": 3}}, ValidationError, "threshold"),
    ({"candidate_flags": {"feature_version": 9}}, DefinitionError, "feature_version"),
    ({"latency": "fast"}, DefinitionError, "LatencyModel"),
    ({"overrides": {"ecommerce": "blue"}}, DefinitionError, "unknown arm"),
    ({"actor": ""}, ValidationError, "actor"),
    ({"fallback_recover_after": 0}, ValidationError, "fallback_recover_after"),
    ({"models": object()}, DefinitionError, "ModelProvider"),
    ({"features": InMemoryFeatureSource(pd.DataFrame({"key": [1], "other": [1.0]}), key_column="key")},
     DefinitionError, "neither traffic columns"),
])
def test_bad_simulator_config(world, kw, exc, match):
    with pytest.raises(exc, match=match):
        make_sim(world, traffic=world["traffic"].head(2000), **kw)


def test_same_version_on_both_aliases(world):
    p = InMemoryModelProvider({"1": world["stable"]}, {"deployed-prod": "1", "approved-prod": "1"})
    with pytest.raises(RolloutError, match="nothing to release"):
        make_sim(world, models=p)


def test_bad_actions(world):
    with pytest.raises(ValidationError, match="leaves none"):
        make_sim(world, traffic=world["traffic"].head(3000))
    sim = make_sim(world, traffic=world["traffic"].head(3000), strategy=ShadowStrategy(duration=10 * M),
                   warmup=timedelta(0))
    with pytest.raises(TimezoneError):
        sim.run(until=datetime(2025, 3, 1))
    with pytest.raises(RolloutError, match="resume"):
        sim.resume(actor="a", reason="b")
    with pytest.raises(RolloutError, match="canary"):
        sim.promote(actor="a", reason="b")
    with pytest.raises(ValidationError, match="reason"):
        sim.abort(actor="a", reason=" ")
    with pytest.raises(ValidationError, match="ReleaseState"):
        sim.restore("v1", actor="a", reason="b")
    with pytest.raises(ValidationError, match="ReleaseState"):
        sim.verify({"serving_version": "1"})
    assert sim.run().status == "completed"
    with pytest.raises(RolloutError, match="abort"):
        sim.abort(actor="a", reason="b")


@pytest.mark.parametrize("make,match", [
    (lambda: CanaryStrategy(steps=(25, 5)), "increasing"), (lambda: CanaryStrategy(steps=()), "increasing"),
    (lambda: CanaryStrategy(steps=(5, 150)), "increasing"), (lambda: CanaryStrategy(bake_time=7 * M), "multiple"),
    (lambda: CanaryStrategy(bake_time=timedelta(0)), "positive"), (lambda: CanaryStrategy(risk_budget=5), "RiskBudget"),
    (lambda: ShadowStrategy(fraction=0), "fraction"), (lambda: ShadowStrategy(duration=timedelta(minutes=3)), "multiple"),
    (lambda: BlueGreenStrategy(preview_fraction=2), "preview_fraction"),
    (lambda: BlueGreenStrategy(keep_old_for=-M), "keep_old_for"),
    (lambda: strategy_from_dict({"kind": "rainbow"}), "unknown kind"),
])
def test_bad_strategies(make, match):
    with pytest.raises(DefinitionError, match=match):
        make()


def test_strategy_round_trip():
    from mlops_kit.rollout import RiskBudget
    for s in (ShadowStrategy(fraction=0.2), CanaryStrategy(risk_budget=RiskBudget(pct_hours=10)),
              BlueGreenStrategy()):
        assert strategy_from_dict(s.to_dict()) == s


@pytest.mark.parametrize("make,match", [
    (lambda: OnlineStoreOutage(share=0), "share"), (lambda: OnlineStoreOutage(mode="slow"), "mode"),
    (lambda: ConceptDrift(share=2), "share"), (lambda: SchemaChange(feature="f", kind="dropped"), "kind"),
    (lambda: SegmentRegression(segment=""), "segment"), (lambda: SegmentRegression(segment="s", mode="x"), "mode"),
    (lambda: LatencySpike(extra_ms=0), "extra_ms"), (lambda: LatencySpike(arm="blue"), "arm"),
    (lambda: OnlineStoreOutage(start=START, end=START), "not after"),
    (lambda: CovariateDrift(feature=""), "feature"), (lambda: LatencyModel(base_ms=-1), "base_ms"),
    (lambda: fault_from_dict({"type": "Meteor"}), "unknown type"),
])
def test_bad_faults(make, match):
    with pytest.raises(DefinitionError, match=match):
        make()


def test_naive_fault_time_and_round_trip():
    with pytest.raises(TimezoneError):
        OnlineStoreOutage(start=datetime(2025, 1, 1))
    f = OnlineStoreOutage(start=START, end=START + M, share=0.5, mode="timeout")
    assert fault_from_dict(f.to_dict()) == f


def test_bad_sources_and_models(world):
    with pytest.raises(ValidationError, match="duplicates"):
        InMemoryFeatureSource(pd.DataFrame({"k": [1, 1], "f": [1.0, 2.0]}), key_column="k")
    with pytest.raises(ValidationError, match="key column"):
        InMemoryFeatureSource(pd.DataFrame({"k": [1]}), key_column="x")
    with pytest.raises(ValidationError, match="dtype"):
        InMemoryFeatureSource(pd.DataFrame({"k": [1], "f": ["a"]}), key_column="k")
    with pytest.raises(ValidationError, match="alias"):
        InMemoryModelProvider({"1": world["stable"]}, {"deployed-prod": "1"})
    with pytest.raises(ValidationError, match="unknown version"):
        InMemoryModelProvider({"1": world["stable"]}, {"deployed-prod": "1", "approved-prod": "9"})
    p = provider(world)
    with pytest.raises(NotFoundError):
        p.resolve("nope")
    with pytest.raises(RolloutError, match="known-good"):
        p.rollback(actor="a", reason="b")  # nothing before v1
    with pytest.raises(RolloutError, match="neither"):
        score_model(object(), pd.DataFrame({"a": [1.0]}))
    with pytest.raises(RolloutError, match="shape"):
        score_model(lambda X: np.zeros(3), pd.DataFrame({"a": [1.0]}))
    with pytest.raises(RolloutError, match="non-finite"):
        score_model(lambda X: np.array([np.nan]), pd.DataFrame({"a": [1.0]}))


def test_registry_rules_of_the_in_memory_provider(world):
    p = provider(world)
    assert p.deploy(actor="a", reason="release") == "2"
    assert p.rollback(actor="a", reason="bad") == "1"
    with pytest.raises(RolloutError):
        p.rollback(actor="a", reason="again")  # never back to a version rolled back from, nothing older


def test_bad_flags_and_demo():
    with pytest.raises(ValidationError, match="score_offset"):
        validate_flags({"score_offset": 5})
    with pytest.raises(ValidationError, match="mapping"):
        validate_flags([("threshold", 0.5)])
    with pytest.raises(ValidationError, match="n_requests"):
        demo_world(0)
    with pytest.raises(TimezoneError):
        demo_world(10, start=datetime(2025, 1, 1))
    assert issubclass(RolloutError, MlopsKitError)


def test_model_failure_is_reported_with_context(world):
    p = InMemoryModelProvider({"1": world["stable"], "2": lambda X: X["nope"]},
                              {"deployed-prod": "1", "approved-prod": "2"})
    sim = make_sim(world, models=p, traffic=world["traffic"].head(20_000))
    with pytest.raises(RolloutError, match="failed on"):
        sim.run()
