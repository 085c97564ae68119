"""Entry point run in a fresh interpreter by ``check_release`` (prints one JSON line).

Usage: ``python -m mlops_kit.registry._release_check FOLDER INPUTS.parquet EXPECTED.json TOLERANCE``
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
from pathlib import Path


def run(folder: Path, inputs: Path, expected: Path, tolerance: float) -> dict:
    import pandas as pd

    from mlops_kit._io import sha256_bytes, sha256_file
    from mlops_kit.errors import MlopsKitError
    from mlops_kit.registry._formats import load_skops
    from mlops_kit.registry.release import ARTIFACT_NAME
    from mlops_kit.registry.signature import ModelSignature, check_contract, check_golden

    errors: list[str] = []
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest_ok = True
    for name, digest in sorted(manifest["files"].items()):
        path = folder / name
        if not path.is_file():
            errors.append(f"{name} is missing from the release")
            manifest_ok = False
        elif sha256_file(path) != digest:
            errors.append(f"{name} does not match its manifest hash (edited after packaging)")
            manifest_ok = False
    report = {"ok": False, "manifest_ok": manifest_ok, "contract": {}, "golden": {}, "environment_diffs": {},
              "python": platform.python_version(), "errors": errors}
    artifact = folder / ARTIFACT_NAME
    data = artifact.read_bytes() if manifest_ok and artifact.is_file() else b""
    if not data or sha256_bytes(data) != manifest.get("artifact_sha256"):
        errors.append("the artifact was not loaded: its hash could not be verified")
        return report
    try:  # hash verified just above; only the recorded types may be constructed
        model = load_skops(data, list(manifest.get("trusted_types", [])), where="check_release")
    except MlopsKitError as exc:
        errors.append(f"the artifact was not loaded: {exc}")
        return report
    signature = ModelSignature.from_dict(json.loads((folder / "signature.json").read_text()))
    frame = pd.read_parquet(inputs)
    contract = check_contract(signature, frame)
    report["contract"] = contract.to_dict()
    if contract.ok:
        scores = json.loads(expected.read_text())
        report["golden"] = check_golden(model, frame[signature.input_names], scores, tolerance).to_dict()
    else:
        errors.append("contract violations: golden-set check skipped")
    recorded = json.loads((folder / "environment.json").read_text())
    diffs = {}
    if recorded.get("python", "").rsplit(".", 1)[0] != platform.python_version().rsplit(".", 1)[0]:
        diffs["python"] = {"recorded": recorded.get("python"), "running": platform.python_version()}
    for package, version in sorted((recorded.get("packages") or {}).items()):
        try:
            running = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            running = None
        if running != version:
            diffs[package] = {"recorded": version, "running": running}
    report["environment_diffs"] = diffs
    report["ok"] = bool(contract.ok and report["golden"].get("ok") and not errors)
    return report


def main(argv: list[str]) -> int:
    folder, inputs, expected, tolerance = Path(argv[0]), Path(argv[1]), Path(argv[2]), float(argv[3])
    print(json.dumps(run(folder, inputs, expected, tolerance), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
