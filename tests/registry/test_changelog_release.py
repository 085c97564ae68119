"""Changelog between versions; release packaging checked in a clean interpreter."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from registry_helpers import fit_model, make_data, numeric, register

from mlops_kit.errors import ConflictError, ValidationError
from mlops_kit.registry import build_release, check_release, diff_versions


def test_changelog_reports_what_changed(registry):
    register(registry, auc=0.80, C=1.0)
    register(registry, seed=1, auc=0.84, C=0.5, view_version=4, run="run-2")
    v1, v2 = registry.get_model_version("fraud", 1), registry.get_model_version("fraud", 2)
    diff = diff_versions(v1, v2)
    assert diff["parameters"]["changed"] == {"C": {"from": 1.0, "to": 0.5}}
    assert diff["metrics"]["changed"]["auc"]["delta"] == pytest.approx(0.04)
    assert diff["features"]["changed"]["user_stats"]["to"]["version"] == 4
    assert diff["snapshots"] == {"added": {}, "removed": {}, "changed": {}}
    text = registry.changelog("fraud", 2)
    assert text.startswith("## fraud v2 (changes since v1)")
    assert "| changed | C | 1 | 0.5 |" in text and "| changed | auc | 0.8 | 0.84 (+0.04) |" in text
    assert "v3 (fingerprint fp-user-stat) | v4 (fingerprint fp-user-stat)" in text
    full = registry.changelog("fraud")
    assert full.index("## fraud v2") < full.index("## fraud v1 (first version)")


@pytest.fixture
def release(registry, tmp_path):
    register(registry)
    golden = numeric(make_data(0, 300)[0]).head(25)
    return build_release(registry, "fraud", 1, tmp_path / "rc1", golden_df=golden), golden


def test_release_holds_the_artifact_and_passes_in_a_clean_process(registry, release):
    folder, golden = release
    manifest = json.loads((folder / "manifest.json").read_text())
    mv = registry.get_model_version("fraud", 1)
    assert manifest["artifact_sha256"] == mv.artifact_sha256 and manifest["version"] == 1
    assert manifest["artifact_format"] == "skops" and manifest["trusted_types"] == list(mv.trusted_types)
    assert set(manifest["files"]) == {"model.skops", "signature.json", "environment.json", "metadata.json",
                                      "golden_inputs.parquet", "golden_expected.json"}
    report = check_release(folder)
    assert report.ok and report.manifest_ok and report.golden["rows"] == 25 and report.environment_diffs == {}
    assert check_release(folder, golden_df=golden).ok


def test_release_check_catches_contract_breaks_wrong_scores_and_edits(registry, release):
    folder, golden = release
    broken = golden.assign(n_tx_24h=golden["n_tx_24h"].astype("string"))
    report = check_release(folder, golden_df=broken, expected=[0.5] * len(golden))
    assert not report.ok and report.contract["violations"][0]["kind"] == "dtype_mismatch"
    expected = fit_model(0)[0].predict_proba(golden)[:, 1]
    wrong = expected.copy()
    wrong[4] += 0.01
    report = check_release(folder, golden_df=golden, expected=wrong, tolerance=1e-3)
    assert not report.ok and report.golden["failed_rows"] == 1 and report.golden["worst_row"] == 4
    data = bytearray((folder / "model.skops").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.skops").write_bytes(bytes(data))
    report = check_release(folder)
    assert not report.ok and not report.manifest_ok and "model.skops" in report.errors[0]


def test_release_bad_input(registry, release, tmp_path):
    folder, golden = release
    with pytest.raises(ConflictError):
        build_release(registry, "fraud", 1, folder, golden_df=golden)
    with pytest.raises(ValidationError):
        build_release(registry, "fraud", 1, tmp_path / "x", golden_df=pd.DataFrame())
    with pytest.raises(ValidationError, match="signature"):
        build_release(registry, "fraud", 1, tmp_path / "y", golden_df=golden.drop(columns="amount"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with pytest.raises(ValidationError, match="expected"):
        check_release(folder, golden_df=golden.head(3))
    with pytest.raises(ValidationError):
        check_release(tmp_path)
