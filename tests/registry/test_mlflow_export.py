"""Export to a real MLflow server: registered model, version, signature, tags, record, aliases.

Each expectation is read back from the server with MLflow's own client, not from the
bridge's return value.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from registry_helpers import register, to_production

from mlflow_fixtures import missing_mlflow_outcome
from mlops_kit.errors import MlflowUnavailableError, ValidationError
from mlops_kit.registry import MlflowExport, export_to_mlflow


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _production(registry, name):
    register(registry, name)
    to_production(registry, name, 1)  # approved-prod and deployed-prod on v1
    return registry.get_model_version(name, 1)


def test_export_writes_model_signature_lineage_and_aliases(registry, mlflow_uri, unique_name, tmp_path, monkeypatch):
    import mlflow

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    mv = _production(registry, unique_name)
    head = registry.audit.head()
    result = registry.export_to_mlflow(unique_name, 1, tracking_uri=mlflow_uri)
    assert isinstance(result, MlflowExport) and result.created and result.mlflow_version == 1
    client = _client(mlflow_uri)
    got = client.get_model_version(unique_name, "1")
    tags = got.tags
    assert tags["mlops_kit.version_id"] == f"{unique_name}/v1"
    assert tags["mlops_kit.artifact_sha256"] == mv.artifact_sha256
    assert tags["mlops_kit.feature_views"] == "user_stats:v3"
    assert tags["mlops_kit.snapshots"] == f"train:{mv.lineage.snapshots[0].sha256}"
    assert tags["mlops_kit.code_revision"] == "a1b2c3d" and tags["mlops_kit.training_run_id"] == "run-1"
    assert tags["mlops_kit.audit_head"] == head  # the audit head at export time
    assert tags["mlops_kit.export_complete"] == "true"
    # the two production aliases are separate MLflow aliases (plus the earlier stage aliases)
    aliases = client.get_registered_model(unique_name).aliases
    assert {a: int(v) for a, v in aliases.items()} == {"approved-prod": 1, "deployed-prod": 1, "candidate": 1,
                                                        "staging": 1}
    # the model: scikit-learn flavour stored as skops, with the kit signature's columns and dtypes
    folder = mlflow.artifacts.download_artifacts(artifact_uri=client.get_model_version_download_uri(unique_name, 1),
                                                 dst_path=str(tmp_path / "dl"), tracking_uri=mlflow_uri)
    model = mlflow.models.Model.load(folder)
    assert model.flavors["sklearn"]["serialization_format"] == "skops"
    assert [(c.name, c.type.name, c.required) for c in model.signature.inputs.inputs] == [
        ("amount", "double", True), ("n_tx_24h", "long", True)]
    assert [(c.name, c.type.name) for c in model.signature.outputs.inputs] == [("prediction", "double")]
    # metadata as run params/metrics; the complete kit record as a JSON artifact
    run = client.get_run(got.run_id)
    assert run.data.params == {"C": "1.0", "max_iter": "500"} and run.data.metrics == {"auc": 0.8}
    assert run.info.status == "FINISHED"
    record = json.loads(open(client.download_artifacts(got.run_id, "mlops_kit/record.json", str(tmp_path)),
                             encoding="utf-8").read())
    assert record["model_version"] == mv.to_dict()
    assert record["audit_head"] == head and record["lineage_document"]["lineage"] == mv.lineage.to_dict()
    assert sorted(os.listdir(cwd)) == []  # no mlruns/ nor mlflow.db in the working directory


def test_second_export_is_a_no_op(registry, mlflow_uri, unique_name):
    register(registry, unique_name)
    first = export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)
    second = export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)
    assert first.created and not second.created
    assert (second.mlflow_version, second.run_id) == (first.mlflow_version, first.run_id)
    assert len(_client(mlflow_uri).search_model_versions(f"name='{unique_name}'")) == 1


def test_aliases_follow_the_kit_to_the_next_version(registry, mlflow_uri, unique_name):
    _production(registry, unique_name)
    export_to_mlflow(registry, unique_name, 1, tracking_uri=mlflow_uri)
    register(registry, unique_name, seed=1, auc=0.85)
    for stage in ("candidate", "staging"):
        registry.promote(unique_name, 2, stage, actor="alice")
    registry.approve(unique_name, 2, actor="olivia", role="ml-owner", note="ok")
    registry.approve(unique_name, 2, actor="rita", role="risk", note="ok")
    registry.promote(unique_name, 2, "approved-prod", actor="olivia")  # deployed-prod stays on v1
    second = export_to_mlflow(registry, unique_name, 2, tracking_uri=mlflow_uri)
    aliases = {a: int(v) for a, v in _client(mlflow_uri).get_registered_model(unique_name).aliases.items()}
    assert aliases["approved-prod"] == second.mlflow_version == 2 and aliases["deployed-prod"] == 1
    registry.deploy(unique_name, actor="deployer")
    again = export_to_mlflow(registry, unique_name, 2, tracking_uri=mlflow_uri)  # no new version, alias re-pointed
    aliases = {a: int(v) for a, v in _client(mlflow_uri).get_registered_model(unique_name).aliases.items()}
    assert not again.created and aliases["deployed-prod"] == 2


def test_importing_the_registry_does_not_import_mlflow():
    code = "import sys, mlops_kit.registry, mlops_kit.cli; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_mlflow_names_the_extra(registry, monkeypatch):
    register(registry, "fraud")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(MlflowUnavailableError, match=r'pip install "mlops-kit\[mlflow\]"') as info:
        export_to_mlflow(registry, "fraud", 1, tracking_uri="http://127.0.0.1:1")
    assert info.value.details["reason"] == "mlflow-missing"


def test_bad_arguments_are_refused_before_any_contact(registry):
    register(registry, "fraud")
    with pytest.raises(ValidationError, match="tracking_uri"):
        export_to_mlflow(registry, "fraud", 1, tracking_uri="file:///tmp/mlruns")
    registry.promote("fraud", 1, "prod.eu", actor="alice")  # a free-form kit alias MLflow cannot hold
    with pytest.raises(ValidationError, match="prod.eu"):
        export_to_mlflow(registry, "fraud", 1, tracking_uri="http://127.0.0.1:1")
    with pytest.raises(ValidationError, match="replace_aliases"):
        export_to_mlflow(registry, "fraud", 1, tracking_uri="http://127.0.0.1:1", replace_aliases="yes")


def test_under_ci_the_mlflow_tests_run_not_skip():
    assert missing_mlflow_outcome({"CI": "true"}) == "fail"
    assert missing_mlflow_outcome({}) == "skip"
    if os.environ.get("CI", "").lower() == "true":
        assert importlib.util.find_spec("mlflow") is not None, 'CI must install ".[mlflow]" (the dev extra does)'


def test_cli_export_and_import(registry, mlflow_uri, unique_name, tmp_path, capsys, monkeypatch):
    from mlops_kit.cli import main

    register(registry, unique_name)
    root = str(registry.workspace.root)
    export = ["registry", "export-mlflow", root, "--name", unique_name, "--version", "1", "--json"]
    assert main([*export, "--tracking-uri", mlflow_uri]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["created"] and doc["model_uri"] == f"models:/{unique_name}/1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)  # the default when --tracking-uri is left out
    assert main(export) == 0 and json.loads(capsys.readouterr().out)["created"] is False
    assert main(["registry", "import-mlflow", str(tmp_path / "b"), "--name", "copy", "--author", "bob",
                 "--model-uri", f"models:/{unique_name}/1"]) == 0
    assert "as copy v1" in capsys.readouterr().out
    assert main([*export, "--tracking-uri", "http://127.0.0.1:1"]) == 2  # nothing listens there
    assert "no MLflow server answers" in capsys.readouterr().err
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert main(export) == 2 and "MLFLOW_TRACKING_URI" in capsys.readouterr().err
