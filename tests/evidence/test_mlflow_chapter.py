"""Chapter 4 built with a real MLflow server: the optional MLflow part runs and grades 100 %.

The build passes ``mlflow_uri`` the way ``--mlflow-uri`` does; afterwards the server must
hold the approved version with both production aliases, and the round-trip check must have
passed. Without mlflow the test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlops_kit.errors import ValidationError
from mlops_kit.evidence import build_evidence, grade_pack
from mlops_kit.labs import ch04

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))  # share the registry tests' server
from mlflow_fixtures import mlflow_server  # noqa: E402,F401 - the session's MLflow server


@pytest.fixture(scope="module")
def mlflow_pack(mlflow_server, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("ch04-mlflow") / "pack"
    result = build_evidence(out, chapters=[4], quiz_answers="key", jobs=1, grade=False,
                            progress=lambda line: None, engines={"mlflow_uri": mlflow_server.url})
    return out, result


def test_chapter_4_with_mlflow_grades_full_marks(mlflow_pack, mlflow_server):  # noqa: F811
    out, result = mlflow_pack
    assert result.failed == [], result
    report = grade_pack(out)
    assert report.integrity_ok
    rows = [r for r in report.results if r["id"].startswith("C4.")]
    assert len(rows) >= 6
    assert [(r["id"], r["awarded"]) for r in rows] == [(r["id"], r["points"]) for r in rows]
    checks = json.loads((out / "ch04" / "checks.json").read_text(encoding="utf-8"))["checks"]
    mlflow_check = [c for c in checks if c["id"] == "4.7-mlflow-round-trip"]
    assert len(mlflow_check) == 1 and mlflow_check[0]["passed"] is True
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert json.dumps(manifest).count(mlflow_server.url) >= 1  # recorded (no credentials in this URL)


def test_the_server_holds_the_approved_version(mlflow_pack, mlflow_server):  # noqa: F811
    from mlflow import MlflowClient

    out, _ = mlflow_pack
    carried = json.loads((out / "ch04" / "mlflow_round_trip.json").read_text(encoding="utf-8"))
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    held = client.get_model_version_by_alias(carried["mlflow_name"], "approved-prod")
    assert held.tags["mlops_kit.version_id"] == f"{ch04.MODEL}/v{carried['kit_version']}"
    assert held.tags["mlops_kit.export_complete"] == "true"
    assert client.get_model_version_by_alias(carried["mlflow_name"], "deployed-prod").version == held.version
    assert carried["identical_scores"] and carried["signature_equal"] and carried["lineage_equal"]


def test_a_bad_mlflow_uri_is_refused_before_running(tmp_path):
    with pytest.raises(ValidationError, match="mlflow"):
        build_evidence(tmp_path / "p", chapters=[4], grade=False, progress=lambda line: None,
                       engines={"mlflow_uri": "ftp://nowhere"})
    assert not (tmp_path / "p").exists()


def test_credentials_in_the_mlflow_uri_are_masked(tmp_path):
    from mlops_kit.evidence.engines import engine_plans
    from mlops_kit.evidence.runner import _masked, default_notebooks_dir, find_chapters
    from mlops_kit.labs.ch04_mlflow import _mask

    url = "https://ana:s3cret@mlflow.example.team:5000"
    plans = engine_plans(find_chapters(default_notebooks_dir(), [2, 4]), {"mlflow_uri": url})
    assert plans == {2: {}, 4: {"mlflow_uri": url}}  # only the chapter that declares it
    assert "s3cret" not in json.dumps(_masked(plans)) and "ana" in json.dumps(_masked(plans))
    assert _mask(url) == "https://mlflow.example.team:5000"
