"""Release candidates: package a version into a folder and check it in a clean interpreter.

A release folder holds everything needed to run the version elsewhere::

    model.skops            the artifact (byte-identical to the registry's; sha256 in the manifest)
    signature.json         input/output contract
    environment.json       Python and package versions recorded at training
    metadata.json          the version's metadata and lineage
    golden_inputs.parquet  a fixed golden set ...
    golden_expected.json   ... and the scores the version gave on it when packaged
    manifest.json          name, version, artifact hash and trusted types, preprocessing
                           fingerprint, sha256 of every file

Only skops artifacts are released (migrate a pickle version with
``registry.migrate_artifacts()`` first). :func:`check_release` starts a fresh Python
process (``sys.executable -m``), which verifies every file hash, loads the artifact only
after its hash matched and only with the trusted types the manifest records, runs the contract check
and the golden-set check, compares package versions with the recorded ones, and reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_write_json, canonical_json, sha256_file
from ..errors import ConflictError, IntegrityError, RegistryError, ValidationError
from .signature import check_contract, predict_scores

__all__ = ["build_release", "check_release", "ReleaseReport", "MANIFEST_NAME", "ARTIFACT_NAME"]

MANIFEST_NAME = "manifest.json"
ARTIFACT_NAME = "model.skops"


def build_release(registry: Any, name: str, version: int, folder: str | os.PathLike[str], *,
                  golden_df: pd.DataFrame) -> Path:
    """Package ``name`` v``version`` into a new ``folder`` (written whole or not at all).

    The golden set's expected scores are computed here from the hash-verified artifact.
    """
    target = Path(folder)
    if target.exists():
        raise ConflictError(f"build_release: {str(target)!r} already exists.",
                            fix="Choose a new folder; releases are never overwritten.")
    mv = registry.get_model_version(name, version)
    if mv.artifact_format != "skops":
        raise RegistryError(f"build_release: {name!r} v{version} is stored as a {mv.artifact_format}; releases carry "
                            "only artifacts that are safe to load.",
                            fix="Run registry.migrate_artifacts() to rewrite it as skops, then build the release.")
    if not isinstance(golden_df, pd.DataFrame) or golden_df.empty:
        raise ValidationError("build_release: golden_df must be a non-empty DataFrame.",
                              fix="Pass a small fixed set of inputs (e.g. 50 rows of the evaluation set).")
    report = check_contract(mv.signature, golden_df)
    if not report.ok:
        raise ValidationError("build_release: golden_df breaks the version's signature: "
                              + "; ".join(f"{v.column}: {v.kind}" for v in report.violations),
                              fix="Use golden inputs that satisfy the model contract.")
    model = registry.load_model(name, version=version)
    expected = predict_scores(model, golden_df[mv.signature.input_names])
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copyfile(registry._artifacts.path_for(mv.artifact_sha256), staging / ARTIFACT_NAME)
        if sha256_file(staging / ARTIFACT_NAME) != mv.artifact_sha256:
            raise IntegrityError(f"build_release: the artifact of {name!r} v{version} changed on disk.",
                                 fix="Restore the artifact; the release was not written.")
        atomic_write_json(staging / "signature.json", mv.signature.to_dict())
        atomic_write_json(staging / "environment.json", dict(mv.metadata.environment))
        atomic_write_json(staging / "metadata.json", {"metadata": mv.metadata.to_dict(),
                                                       "lineage": mv.lineage.to_dict()})
        golden_df.reset_index(drop=True).to_parquet(staging / "golden_inputs.parquet", index=False)
        atomic_write_json(staging / "golden_expected.json", [float(x) for x in expected])
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
        atomic_write_json(staging / MANIFEST_NAME, {
            "name": name, "version": version, "artifact_sha256": mv.artifact_sha256,
            "artifact_format": mv.artifact_format, "trusted_types": list(mv.trusted_types),
            "preprocessing_fingerprint": mv.metadata.preprocessing_fingerprint,
            "created_at": registry._now().isoformat(), "files": files})
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


@dataclass(frozen=True, kw_only=True)
class ReleaseReport:
    """What the clean-process check found."""

    ok: bool
    manifest_ok: bool
    contract: dict[str, Any]
    golden: dict[str, Any]
    environment_diffs: dict[str, Any]
    python: str
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "manifest_ok": self.manifest_ok, "contract": self.contract, "golden": self.golden,
                "environment_diffs": self.environment_diffs, "python": self.python, "errors": list(self.errors)}


def check_release(folder: str | os.PathLike[str], *, golden_df: pd.DataFrame | None = None,
                  expected: Any = None, tolerance: float = 1e-6, timeout: float = 120.0) -> ReleaseReport:
    """Load a release in a fresh interpreter and run its contract and golden-set checks.

    Parameters
    ----------
    golden_df:
        Inputs to check instead of the packaged golden set. Their expected scores come from
        ``expected`` or, if the frame equals the packaged golden set, from the release.
    tolerance:
        Maximum absolute score difference on the golden set.
    """
    root = Path(folder)
    if not (root / MANIFEST_NAME).is_file():
        raise ValidationError(f"check_release: {str(root)!r} has no {MANIFEST_NAME}.",
                              fix="Pass a folder written by build_release(...).")
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not tolerance >= 0:
        raise ValidationError(f"check_release: tolerance must be >= 0, got {tolerance!r}.", fix="Pass e.g. 1e-6.")
    with tempfile.TemporaryDirectory(prefix="release-check-") as scratch:
        inputs, expected_path = root / "golden_inputs.parquet", root / "golden_expected.json"
        if golden_df is not None:
            if not isinstance(golden_df, pd.DataFrame) or golden_df.empty:
                raise ValidationError("check_release: golden_df must be a non-empty DataFrame.",
                                      fix="Pass the inputs to check, or leave it out to use the packaged set.")
            packaged = pd.read_parquet(inputs)
            frame = golden_df.reset_index(drop=True)
            if expected is None:
                if not (list(frame.columns) == list(packaged.columns) and frame.equals(packaged)):
                    raise ValidationError("check_release: golden_df differs from the packaged golden set and no "
                                          "expected scores were given.",
                                          fix="Pass expected=[...] for these rows, or leave golden_df out.")
            else:
                values = np.asarray(expected, dtype="float64")
                if values.shape != (len(frame),):
                    raise ValidationError(f"check_release: expected has shape {values.shape} for {len(frame)} rows.",
                                          fix="Pass one expected score per row.")
                expected_path = Path(scratch) / "expected.json"
                expected_path.write_text(canonical_json([float(v) for v in values]))
            inputs = Path(scratch) / "inputs.parquet"
            frame.to_parquet(inputs, index=False)
        kit_parent = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([kit_parent, os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "mlops_kit.registry._release_check", str(root.resolve()), str(inputs),
               str(expected_path), repr(float(tolerance))]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=scratch, env=env)
    if proc.returncode != 0:
        return ReleaseReport(ok=False, manifest_ok=False, contract={}, golden={}, environment_diffs={},
                             python="", errors=(f"the check process failed (exit {proc.returncode}): "
                                                f"{proc.stderr.strip()[-2000:]}",))
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return ReleaseReport(ok=bool(data["ok"]), manifest_ok=bool(data["manifest_ok"]), contract=data["contract"],
                         golden=data["golden"], environment_diffs=data["environment_diffs"],
                         python=data["python"], errors=tuple(data["errors"]))
