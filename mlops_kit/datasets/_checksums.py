"""Checksums of the default dataset, and the command that regenerates them.

``data/checksums.json`` records, for the default scenario and seed 0, the sha256 of every
Parquet file, the content fingerprint (independent of the Parquet encoder) and the
library versions that wrote the files. The command line lives in ``mlops_kit.datasets.checksums``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._io import atomic_write_json
from ..errors import IntegrityError, NotFoundError
from .generate import generate_world
from .scenario import Scenario

__all__ = ["compute_checksums", "verify_checksums", "default_data_dir", "write_scenarios"]


def default_data_dir() -> Path:
    """The repository's ``data/`` folder (beside the ``mlops_kit`` package)."""
    return Path(__file__).resolve().parents[2] / "data"


def compute_checksums(scenario: Scenario | None = None, seed: int = 0) -> dict[str, Any]:
    """Generate the world, write it to a temporary folder and return its checksums record."""
    scenario = scenario or Scenario.default()
    world = generate_world(scenario, seed)
    with tempfile.TemporaryDirectory(prefix="mlops-kit-checksums-") as tmp:
        files = world.to_parquet(tmp)
    return {"scenario": scenario.name, "seed": seed, "fingerprint": world.fingerprint(),
            "files": files, "summary": world.summary(),
            "versions": {"numpy": np.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__}}


def verify_checksums(path: str | Path | None = None) -> dict[str, Any]:
    """Regenerate the recorded dataset and compare; raise ``IntegrityError`` on any difference.

    The content fingerprint is always compared. File hashes are compared when the
    recorded pyarrow version is the installed one (another Parquet writer may encode the
    same content in different bytes); the returned record says whether they were.
    """
    path = Path(path) if path is not None else default_data_dir() / "checksums.json"
    if not path.is_file():
        raise NotFoundError(f"checksums file {str(path)!r} does not exist.",
                            fix="Create it with: python -m mlops_kit.datasets.checksums --update")
    recorded = json.loads(path.read_text(encoding="utf-8"))
    actual = compute_checksums(Scenario.preset(recorded["scenario"]), int(recorded["seed"]))
    if actual["fingerprint"] != recorded["fingerprint"]:
        raise IntegrityError(
            f"the regenerated {recorded['scenario']!r} world (seed {recorded['seed']}) has content "
            f"fingerprint {actual['fingerprint']}, the record says {recorded['fingerprint']}.",
            fix="If the generator changed on purpose, run "
                "python -m mlops_kit.datasets.checksums --update and commit data/.")
    same_writer = recorded["versions"].get("pyarrow") == pa.__version__
    if same_writer and actual["files"] != recorded["files"]:
        differing = sorted(k for k in recorded["files"] if recorded["files"][k] != actual["files"].get(k))
        raise IntegrityError(f"Parquet bytes differ from the record for {differing}.",
                             fix="Run python -m mlops_kit.datasets.checksums --update if intended.",
                             files=differing)
    return {"fingerprint": actual["fingerprint"], "files_compared": same_writer, "files": actual["files"]}


def write_scenarios(folder: str | Path | None = None) -> list[Path]:
    """Write every preset as ``<folder>/<name>.json`` (default ``data/scenarios``)."""
    folder = Path(folder) if folder is not None else default_data_dir() / "scenarios"
    written = []
    for name, scenario in sorted(Scenario.presets().items()):
        target = folder / f"{name}.json"
        atomic_write_json(target, scenario.to_dict())
        written.append(target)
    return written
