"""Registration, immutable versions, verified artifacts, reads, search, round-trips, bad input."""

from __future__ import annotations

import json
import sqlite3

import pytest
from registry_helpers import T0, fit_model, lineage, metadata, register

from mlops_kit import Workspace
from mlops_kit.errors import (
    DefinitionError,
    IntegrityError,
    MissingMetadataError,
    NotFoundError,
    ValidationError,
)
from mlops_kit.registry import (
    DataSnapshot,
    FeatureRef,
    Lineage,
    ModelMetadata,
    ModelRegistry,
    ModelVersion,
    build_release,
    infer_signature,
)


def test_versions_increase_per_model_and_record_system_fields(registry):
    v1 = register(registry)
    v2 = register(registry, seed=1)
    other = register(registry, "churn")
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    assert v1.created_at == T0 and v1.state == "registered" and v1.author == "alice"
    assert len(v1.artifact_sha256) == 64 and v1.artifact_sha256 != v2.artifact_sha256
    path = registry.workspace.artifacts_dir / "sha256" / v1.artifact_sha256[:2] / v1.artifact_sha256
    assert path.is_file()
    with pytest.raises(AttributeError):
        v1.version = 9  # read-only system field
    assert registry.list_models() == ["churn", "fraud"]


def test_load_model_predicts_like_the_original(registry):
    model, X = fit_model(0)
    register(registry)
    loaded = registry.load_model("fraud", version=1)
    assert (loaded.predict_proba(X) == model.predict_proba(X)).all()


def test_a_changed_artifact_byte_refuses_to_load(registry):
    mv = register(registry)
    path = registry.workspace.artifacts_dir / "sha256" / mv.artifact_sha256[:2] / mv.artifact_sha256
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        registry.load_model("fraud", version=1)
    assert info.value.details["expected"] == mv.artifact_sha256


def test_versions_cannot_be_edited_or_deleted_through_the_database(registry):
    register(registry)
    conn = sqlite3.connect(registry.workspace.registry_db)
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE versions SET artifact_sha256 = 'x' WHERE version = 1")
    with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
        conn.execute("DELETE FROM versions")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    conn.close()


def test_missing_metadata_is_refused_with_the_full_list_and_nothing_written(registry):
    register(registry)
    before = len(registry.audit)
    model, X = fit_model(0)
    with pytest.raises(MissingMetadataError) as info:
        registry.register_model("fraud", model, signature=infer_signature(X),
                                metadata=ModelMetadata(parameters={"C": 1.0}),
                                lineage=Lineage(features=(FeatureRef(view="v", version=None, fingerprint=None),)),
                                author="alice")
    assert info.value.details["missing"] == [
        "metadata.code_revision", "metadata.training_run_id", "metadata.environment.python",
        "metadata.environment.packages", "metadata.metrics",
        "lineage.features['v'].version", "lineage.features['v'].fingerprint", "lineage.snapshots"]
    assert len(registry.audit) == before
    assert [v.version for v in registry.search_model_versions("fraud")] == [1]


def test_signature_must_match_the_models_fitted_features(registry):
    model, X = fit_model(0)
    with pytest.raises(ValidationError, match="fitted features"):
        registry.register_model("fraud", model, signature=infer_signature(X[["n_tx_24h", "amount"]]),
                                metadata=metadata(), lineage=lineage(), author="alice")
    assert len(registry.audit) == 0


def test_get_by_alias_and_search(registry):
    register(registry)
    register(registry, seed=1, author="bob", view_version=4)
    registry.promote("fraud", 2, "candidate", actor="alice")
    assert registry.get_model_version_by_alias("fraud", "candidate").version == 2
    assert registry.load_model("fraud", alias="candidate") is not None
    assert [v.version for v in registry.search_model_versions("fraud", author="bob")] == [2]
    assert [v.version for v in registry.search_model_versions(state="registered")] == [1]
    assert [v.version for v in registry.search_model_versions(alias="candidate")] == [2]
    assert [v.version for v in registry.search_model_versions(feature_view="user_stats")] == [1, 2]
    assert registry.search_model_versions(feature_view="nope") == []


def test_dependents_answer_the_blast_radius_question(registry):
    register(registry, view_version=3)
    register(registry, seed=1, view_version=4)
    register(registry, "churn", view_version=3)
    assert [(m.name, m.version) for m in registry.dependents("user_stats", 3)] == [("churn", 1), ("fraud", 1)]
    assert [(m.name, m.version) for m in registry.dependents("user_stats")] == [("churn", 1), ("fraud", 1), ("fraud", 2)]
    assert registry.dependents("other_view") == []


def test_everything_persisted_round_trips(registry, workspace):
    register(registry)
    registry.promote("fraud", 1, "candidate", actor="alice")
    registry.approve("fraud", 1, actor="olivia", role="ml-owner", note="ok")
    mv = registry.get_model_version("fraud", 1)
    assert ModelVersion.from_dict(json.loads(json.dumps(mv.to_dict(), sort_keys=True))) == mv
    reopened = ModelRegistry(Workspace(workspace.root))  # a fresh connection reads the same state
    assert reopened.get_model_version("fraud", 1) == mv
    for records in (registry.alias_history("fraud", "candidate"), registry.state_history("fraud", 1),
                    registry.approvals("fraud", 1), registry.attestations("fraud", 1)):
        assert records
        for record in records:
            assert type(record).from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert reopened.alias_history("fraud", "candidate") == registry.alias_history("fraud", "candidate")
    assert reopened.attestations("fraud", 1) == registry.attestations("fraud", 1)
    reopened.close()


def test_metadata_and_lineage_round_trip():
    meta, lin = metadata(), lineage()
    assert ModelMetadata.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    assert Lineage.from_dict(json.loads(json.dumps(lin.to_dict()))) == lin


def test_workspace_exposes_the_registry(workspace):
    assert isinstance(workspace.registry, ModelRegistry)


BAD_CALLS = {
    "register bad name": lambda r: r.register_model("bad name!", fit_model(0)[0], signature=infer_signature(fit_model(0)[1]),
                                                    metadata=metadata(), lineage=lineage(), author="alice"),
    "register bad author": lambda r: r.register_model("fraud", fit_model(0)[0], signature=infer_signature(fit_model(0)[1]),
                                                      metadata=metadata(), lineage=lineage(), author=""),
    "register not a model": lambda r: r.register_model("fraud", object(), signature=infer_signature(fit_model(0)[1]),
                                                       metadata=metadata(), lineage=lineage(), author="alice"),
    "register bad signature": lambda r: r.register_model("fraud", fit_model(0)[0], signature={"x": 1},
                                                         metadata=metadata(), lineage=lineage(), author="alice"),
    "register bad metadata": lambda r: r.register_model("fraud", fit_model(0)[0], signature=infer_signature(fit_model(0)[1]),
                                                        metadata={"code_revision": "x"}, lineage=lineage(), author="alice"),
    "get unknown model": lambda r: r.get_model_version("nope", 1),
    "get unknown version": lambda r: r.get_model_version("fraud", 9),
    "get bad version": lambda r: r.get_model_version("fraud", "1"),
    "get unset alias": lambda r: r.get_model_version_by_alias("fraud", "staging"),
    "load both": lambda r: r.load_model("fraud", version=1, alias="x"),
    "load neither": lambda r: r.load_model("fraud"),
    "search bad state": lambda r: r.search_model_versions(state="live"),
    "promote unknown": lambda r: r.promote("fraud", 5, "candidate", actor="alice"),
    "promote bad alias": lambda r: r.promote("fraud", 1, "Bad Alias", actor="alice"),
    "promote deployed-prod": lambda r: r.promote("fraud", 1, "deployed-prod", actor="alice"),
    "promote skip stage": lambda r: r.promote("fraud", 1, "staging", actor="alice"),
    "promote empty reason": lambda r: r.promote("fraud", 1, "candidate", actor="alice", reason=" "),
    "approve by author": lambda r: r.approve("fraud", 1, actor="alice", role="risk", note="mine"),
    "approve unknown role": lambda r: r.approve("fraud", 1, actor="bob", role="cfo", note="ok"),
    "approve empty note": lambda r: r.approve("fraud", 1, actor="bob", role="risk", note=""),
    "deploy nothing approved": lambda r: r.deploy("fraud", actor="ops"),
    "rollback nothing deployed": lambda r: r.rollback("fraud", actor="ops"),
    "rollback bad to": lambda r: r.rollback("fraud", actor="ops", to="v1"),
    "transition unknown state": lambda r: r.transition("fraud", 1, "live", actor="ops", reason="x"),
    "transition gated": lambda r: r.transition("fraud", 1, "deployed", actor="ops", reason="x"),
    "transition no reason": lambda r: r.transition("fraud", 1, "rejected", actor="ops", reason=""),
    "alias history unknown model": lambda r: r.alias_history("nope", "candidate"),
    "lineage unknown": lambda r: r.lineage("fraud", 3),
    "dependents bad version": lambda r: r.dependents("user_stats", 0),
    "changelog unknown": lambda r: r.changelog("nope"),
    "set policies not a policy": lambda r: r.set_policies("staging", ["auc > 0.8"]),
    "verify bad anchor": lambda r: r.audit.verify(anchor="abc"),
    "gc bad flag": lambda r: r.gc_artifacts(dry_run="yes"),
    "export to a folder": lambda r: r.audit.export(r.workspace.root),
    "approve unknown version": lambda r: r.approve("fraud", 4, actor="bob", role="risk", note="ok"),
    "deploy unknown model": lambda r: r.deploy("nope", actor="ops"),
    "rollback unknown model": lambda r: r.rollback("nope", actor="ops"),
    "deploy empty reason": lambda r: r.deploy("fraud", actor="ops", reason=""),
    "dependents bad view": lambda r: r.dependents(""),
    "search bad name": lambda r: r.search_model_versions("no spaces allowed"),
    "search bad alias": lambda r: r.search_model_versions(alias=""),
    "state history unknown": lambda r: r.state_history("fraud", 2),
    "attestations unknown": lambda r: r.attestations("fraud", 2),
    "approvals unknown": lambda r: r.approvals("fraud", 2),
    "by alias bad alias": lambda r: r.get_model_version_by_alias("fraud", "a b"),
    "alias history bad alias": lambda r: r.alias_history("fraud", ""),
    "release unknown version": lambda r: build_release(r, "fraud", 2, r.workspace.root / "rc", golden_df=fit_model(0)[1]),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_raises_a_kit_error_and_writes_nothing(registry, case):
    from mlops_kit.errors import MlopsKitError

    register(registry)
    before = (len(registry.audit), registry.audit.head())
    with pytest.raises(MlopsKitError) as info:
        BAD_CALLS[case](registry)
    assert "Fix:" in str(info.value)
    assert (len(registry.audit), registry.audit.head()) == before
    assert registry.audit.verify().ok


def test_constructor_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValidationError):
        ModelRegistry(42)
    with pytest.raises(ValidationError):
        ModelRegistry(tmp_path, clock="now")


def test_declarations_validate_their_fields():
    with pytest.raises(DefinitionError):
        ModelMetadata(metrics={"auc": float("nan")})
    with pytest.raises(DefinitionError):
        ModelMetadata(code_revision=123)
    with pytest.raises(DefinitionError):
        DataSnapshot(name="x", sha256="not-a-hash")
    with pytest.raises(DefinitionError):
        FeatureRef(view="v", version=0, fingerprint="f")
    with pytest.raises(DefinitionError):
        Lineage(features=(FeatureRef(view="v", version=1, fingerprint="f", snapshots=("ghost",)),))


def test_unknown_names_raise_not_found_with_what_exists(registry):
    register(registry)
    with pytest.raises(NotFoundError) as info:
        registry.get_model_version("fraud", 7)
    assert isinstance(info.value, KeyError) and "versions: [1]" in str(info.value)
    with pytest.raises(NotFoundError, match=r"registered: \['fraud'\]"):
        registry.alias_history("churn", "candidate")
