"""Faults against a real MLflow server: down, a name clash, an alias clash, a half-done export.

Every refusal is an ``MlopsKitError`` subclass with a fix, and no failure ever leaves an
MLflow version tagged ``mlops_kit.export_complete``.
"""

from __future__ import annotations

import pytest
from registry_helpers import fit_model, register, to_production

from mlflow_fixtures import log_foreign
from mlops_kit.errors import MlflowConflictError, MlflowExportError, MlflowUnavailableError, RegistryError
from mlops_kit.registry import export_to_mlflow, import_from_mlflow


def _versions(uri, name):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {int(v.version): v.tags for v in client.search_model_versions(f"name='{name}'")}


def _approve(registry, name, version):
    for stage in ("candidate", "staging"):
        registry.promote(name, version, stage, actor="alice")
    registry.approve(name, version, actor="olivia", role="ml-owner", note="ok")
    registry.approve(name, version, actor="rita", role="risk", note="ok")
    registry.promote(name, version, "approved-prod", actor="olivia")


def test_server_down(registry, down_uri):
    register(registry, "fraud")
    with pytest.raises(MlflowUnavailableError, match="no MLflow server answers") as info:
        export_to_mlflow(registry, "fraud", 1, tracking_uri=down_uri)
    assert info.value.details["reason"] == "down" and "Start it" in info.value.fix
    with pytest.raises(MlflowUnavailableError):
        import_from_mlflow(registry, "models:/fraud/1", name="fraud", author="bob", tracking_uri=down_uri)


def test_a_name_holding_unrelated_versions_is_refused(registry, mlflow_uri, unique_name):
    log_foreign(mlflow_uri, unique_name, fit_model(seed=3)[0])
    register(registry, "fraud")
    with pytest.raises(MlflowConflictError, match="did not export") as info:
        export_to_mlflow(registry, "fraud", 1, tracking_uri=mlflow_uri, mlflow_name=unique_name)
    assert info.value.details["reason"] == "name-clash" and "mlflow_name=" in info.value.fix
    assert list(_versions(mlflow_uri, unique_name)) == [1]  # nothing was written
    assert export_to_mlflow(registry, "fraud", 1, tracking_uri=mlflow_uri, mlflow_name=unique_name + "-kit").created


def test_an_alias_moved_in_mlflow_is_refused(registry, mlflow_uri, unique_name):
    from mlflow import MlflowClient

    register(registry, unique_name)
    export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)  # no aliases yet
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    client.set_registered_model_alias(unique_name, "approved-prod", "1")  # someone moves it by hand
    register(registry, unique_name, seed=1)
    _approve(registry, unique_name, 2)
    with pytest.raises(MlflowConflictError, match="approved-prod") as info:
        export_to_mlflow(registry, unique_name, 2, tracking_uri=mlflow_uri)
    assert info.value.details["reason"] == "alias-clash" and "replace_aliases=True" in info.value.fix
    assert list(_versions(mlflow_uri, unique_name)) == [1]  # refused before writing
    assert client.get_model_version_by_alias(unique_name, "approved-prod").version == "1"
    done = export_to_mlflow(registry, unique_name, 2, tracking_uri=mlflow_uri, replace_aliases=True)
    assert client.get_model_version_by_alias(unique_name, "approved-prod").version == str(done.mlflow_version) == "2"


def test_a_failed_upload_leaves_nothing_marked_complete(registry, mlflow_uri, unique_name, monkeypatch):
    from mlflow import MlflowClient

    register(registry, unique_name)
    to_production(registry, unique_name, 1)

    def broken(*args, **kwargs):
        raise OSError("artifact store full")

    monkeypatch.setattr(MlflowClient, "log_text", broken)
    with pytest.raises(MlflowExportError, match="log the kit record") as info:
        export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)
    assert "export again" in info.value.fix and info.value.details["incomplete_version"] is None
    assert not any(t.get("mlops_kit.export_complete") for t in _versions(mlflow_uri, unique_name).values())
    assert MlflowClient(tracking_uri=mlflow_uri).get_registered_model(unique_name).aliases == {}
    monkeypatch.undo()
    done = export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)
    assert done.created and _versions(mlflow_uri, unique_name)[done.mlflow_version]["mlops_kit.export_complete"]


def test_an_incomplete_earlier_attempt_is_found_refused_and_cleaned(registry, mlflow_uri, unique_name, monkeypatch):
    from mlflow import MlflowClient

    register(registry, unique_name)

    def broken(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(MlflowClient, "log_text", broken)
    monkeypatch.setattr(MlflowClient, "delete_model_version", broken)  # the clean-up fails too
    with pytest.raises(MlflowExportError) as info:
        export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)
    left = info.value.details["incomplete_version"]
    monkeypatch.undo()
    tags = _versions(mlflow_uri, unique_name)
    assert list(tags) == [left] and "mlops_kit.export_complete" not in tags[left]
    with pytest.raises(RegistryError, match="never completed"):
        import_from_mlflow(registry, f"models:/{unique_name}/{left}", name="copy", author="bob",
                           tracking_uri=mlflow_uri)
    done = export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)
    assert done.created and done.cleaned == (left,)
    assert list(_versions(mlflow_uri, unique_name)) == [done.mlflow_version]
