"""Import from a real MLflow server, and the kit -> MLflow -> kit round trip.

The round trip is checked against the original version: identical golden-set scores, the
same signature, metadata and lineage, and (because the kit writes canonical skops bytes) the
same artifact hash. A model logged without the kit is imported only with what MLflow really
holds; what it lacks is refused with the missing items listed.
"""

from __future__ import annotations

import numpy as np
import pytest
from registry_helpers import T0, fit_model, lineage, make_data, numeric, register, to_production

from mlflow_fixtures import log_foreign
from mlops_kit._time import FixedClock
from mlops_kit.errors import MissingMetadataError, RegistryError, ValidationError
from mlops_kit.registry import ModelRegistry, export_to_mlflow, import_from_mlflow


def test_round_trip_kit_mlflow_kit(registry, mlflow_uri, unique_name, tmp_path):
    original = register(registry, unique_name)
    to_production(registry, unique_name, 1)
    exported = export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)
    other = ModelRegistry(tmp_path / "team-b", clock=FixedClock(T0))
    try:
        back = other.import_from_mlflow(f"models:/{unique_name}@deployed-prod", name="fraud-b", author="bob",
                                        tracking_uri=mlflow_uri)
        again = import_from_mlflow(other, exported.model_uri, name="fraud-b", author="bob", tracking_uri=mlflow_uri)
        golden = numeric(make_data(seed=11, n=200)[0])
        want = registry.load_model(unique_name, version=1).predict_proba(golden)
        got = other.load_model("fraud-b", version=1).predict_proba(golden)
        assert np.array_equal(got, want)  # bit-identical scores on the golden set
        assert back.signature.to_dict() == original.signature.to_dict()
        assert back.lineage.to_dict() == original.lineage.to_dict()
        assert back.metadata.to_dict() == original.metadata.to_dict()
        assert back.artifact_sha256 == original.artifact_sha256  # canonical skops bytes survive the trip
        assert back.trusted_types == original.trusted_types
        assert (back.version, again.version, back.author) == (1, 2, "bob")
        assert [(v.name, v.version) for v in other.dependents("user_stats", 3)] == [("fraud-b", 1), ("fraud-b", 2)]
    finally:
        other.close()


def test_a_model_without_signature_is_refused(registry, mlflow_uri, unique_name):
    model, _ = fit_model()
    log_foreign(mlflow_uri, unique_name, model, signature=None)
    with pytest.raises(MissingMetadataError, match="no signature") as info:
        import_from_mlflow(registry, f"models:/{unique_name}/1", name="fraud", author="bob", tracking_uri=mlflow_uri)
    assert info.value.details["missing"] == ["signature"]
    assert registry.list_models() == []


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")
def test_a_foreign_model_needs_lineage_and_the_metadata_core(registry, mlflow_uri, unique_name):
    from mlflow.models import infer_signature as mlflow_signature

    model, X = fit_model()
    sig = mlflow_signature(X, model.predict_proba(X)[:, 1])
    log_foreign(mlflow_uri, unique_name, model, signature=sig, params={"C": "1.0"}, metrics={"auc": 0.8})
    uri = f"models:/{unique_name}/1"
    with pytest.raises(MissingMetadataError, match="lineage") as info:
        import_from_mlflow(registry, uri, name="fraud", author="bob", tracking_uri=mlflow_uri)
    assert info.value.details["missing"] == ["lineage"]
    with pytest.raises(MissingMetadataError, match="code_revision") as info:  # the run has no git commit tag
        import_from_mlflow(registry, uri, name="fraud", author="bob", tracking_uri=mlflow_uri, lineage=lineage())
    assert info.value.details["missing"] == ["metadata.code_revision"]
    assert registry.list_models() == []
    log_foreign(mlflow_uri, unique_name, model, signature=sig, params={"C": "1.0"}, metrics={"auc": 0.8},
                run_tags={"mlflow.source.git.commit": "abc1234"})
    mv = import_from_mlflow(registry, f"models:/{unique_name}/2", name="fraud", author="bob",
                            tracking_uri=mlflow_uri, lineage=lineage())
    assert mv.metadata.code_revision == "abc1234" and mv.metadata.parameters == {"C": "1.0"}
    assert mv.metadata.metrics == {"auc": 0.8} and mv.metadata.environment["packages"]["scikit-learn"]
    assert [(c.name, c.dtype) for c in mv.signature.inputs] == [("amount", "float64"), ("n_tx_24h", "int64")]
    assert np.array_equal(registry.load_model("fraud", version=1).predict_proba(X), model.predict_proba(X))


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")
def test_a_pickled_mlflow_model_is_refused(registry, mlflow_uri, unique_name):
    from mlflow.models import infer_signature as mlflow_signature

    model, X = fit_model()
    log_foreign(mlflow_uri, unique_name, model, signature=mlflow_signature(X), fmt="pickle")
    with pytest.raises(RegistryError, match="skops"):
        import_from_mlflow(registry, f"models:/{unique_name}/1", name="fraud", author="bob", tracking_uri=mlflow_uri,
                           lineage=lineage())
    assert registry.list_models() == []


@pytest.mark.parametrize("uri", ["runs:/abc/model", "models:/fraud", "models:/fraud/x", 3])
def test_bad_model_uris_are_refused(registry, uri):
    with pytest.raises(ValidationError, match="model_uri"):
        import_from_mlflow(registry, uri, name="fraud", author="bob", tracking_uri="http://127.0.0.1:1")
