"""``mlops-kit registry export-mlflow`` / ``import-mlflow``: the bridge from the command line.

The parser lives in :mod:`mlops_kit.cli` (so building it imports nothing heavy); this module
runs the two actions. The tracking URI defaults to ``MLFLOW_TRACKING_URI``; credentials come
from ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` as in MLflow itself.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..errors import ValidationError
from ._mlflow_client import mask
from .registry import ModelRegistry

__all__ = ["run"]


def _tracking_uri(args: argparse.Namespace) -> str:
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ValidationError("registry: no MLflow tracking URI given.",
                              fix="Pass --tracking-uri http://host:5000 or set MLFLOW_TRACKING_URI.")
    return uri


def _registry(args: argparse.Namespace) -> ModelRegistry:
    root = Path(args.workspace)
    if not (root / "registry.sqlite").is_file() and args.action == "export-mlflow":
        raise ValidationError(f"registry export-mlflow: {str(root)!r} holds no model registry.",
                              fix="Pass the workspace folder the ModelRegistry was created in.")
    return ModelRegistry(root)


def run(args: argparse.Namespace) -> int:
    """Run ``registry export-mlflow`` or ``registry import-mlflow``; returns the exit status."""
    uri = _tracking_uri(args)
    registry = _registry(args)
    try:
        if args.action == "export-mlflow":
            result = registry.export_to_mlflow(args.name, args.version, tracking_uri=uri,
                                               mlflow_name=args.mlflow_name, replace_aliases=args.replace_aliases)
            doc = result.to_dict()
            text = (f"{'exported' if result.created else 'already exported (nothing written)'}: "
                    f"{args.name} v{args.version} -> {result.model_uri} at {mask(uri)}; "
                    f"aliases {', '.join(result.aliases) or 'none'}")
        else:
            mv = registry.import_from_mlflow(args.model_uri, name=args.name, author=args.author, tracking_uri=uri)
            doc = {"name": mv.name, "version": mv.version, "artifact_sha256": mv.artifact_sha256,
                   "model_uri": args.model_uri}
            text = f"imported {args.model_uri} from {mask(uri)} as {mv.name} v{mv.version}"
    finally:
        registry.close()
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else text)
    return 0
