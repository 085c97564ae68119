"""Chapter 4, optional part: the registry's concepts carried to a team's MLflow and back.

The approved version is exported to the MLflow server (registered model, version, signature,
lineage tags, aliases), then imported from ``models:/NAME@approved-prod`` into a second,
empty kit registry (a "team B" that only sees MLflow) and compared with the original on the
golden set. The part runs only when the notebook's ``mlflow_uri`` parameter is set
(``mlops-kit evidence build --mlflow-uri URL``); the chapter's own audit chain is untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._time import FixedClock
from ..errors import ValidationError
from ..registry import ModelRegistry
from ..registry.signature import predict_scores

__all__ = ["ENABLE_HINT", "round_trip", "round_trip_check", "mapping_frame"]

ENABLE_HINT = ("MLflow part off: build with `mlops-kit evidence build --chapters 4 --mlflow-uri http://HOST:PORT` "
               "(or set mlflow_uri in the parameters cell) to carry the approved version to MLflow and back.")


def _mask(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}{sep}{host.rsplit('@', 1)[-1]}" + rest[len(host):]


def round_trip(registry: ModelRegistry, name: str, *, tracking_uri: str, golden: pd.DataFrame,
               workspace: Any, clock: FixedClock, mlflow_name: str | None = None) -> dict[str, Any]:
    """Export the ``approved-prod`` version, import it into a fresh registry, compare the two."""
    if not isinstance(golden, pd.DataFrame) or golden.empty:
        raise ValidationError("round_trip: golden must be the non-empty golden DataFrame.",
                              fix="Pass the golden inputs of section 2.")
    from mlflow import MlflowClient

    source = registry.get_model_version_by_alias(name, "approved-prod")
    export = registry.export_to_mlflow(name, source.version, tracking_uri=tracking_uri, mlflow_name=mlflow_name)
    team = ModelRegistry(workspace, clock=clock)
    try:
        back = team.import_from_mlflow(f"models:/{export.mlflow_name}@approved-prod", name=name,
                                       author="team-b", tracking_uri=tracking_uri)
        kit_scores = predict_scores(registry.load_model(name, version=source.version), golden)
        mlflow_scores = predict_scores(team.load_model(name, version=back.version), golden)
    finally:
        team.close()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    aliases = {a: int(v) for a, v in client.get_registered_model(export.mlflow_name).aliases.items()}
    tags = client.get_model_version(export.mlflow_name, str(export.mlflow_version)).tags
    return {"server": _mask(tracking_uri), "kit_version": source.version, "kit_aliases": list(source.aliases),
            "mlflow_name": export.mlflow_name, "mlflow_version": export.mlflow_version,
            "created": export.created, "mlflow_aliases": aliases,
            "version_id_tag": tags.get("mlops_kit.version_id"),
            "feature_views_tag": tags.get("mlops_kit.feature_views"),
            "export_complete": tags.get("mlops_kit.export_complete") == "true",
            "golden_rows": len(golden), "max_abs_diff": float(np.max(np.abs(kit_scores - mlflow_scores))),
            "identical_scores": bool(np.array_equal(kit_scores, mlflow_scores)),
            "signature_equal": back.signature.to_dict() == source.signature.to_dict(),
            "lineage_equal": back.lineage.to_dict() == source.lineage.to_dict(),
            "artifact_equal": back.artifact_sha256 == source.artifact_sha256}


def round_trip_check(result: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``rec.check``: every concept survived the trip to MLflow and back."""
    aliases_ok = all(result["mlflow_aliases"].get(a) == result["mlflow_version"]
                     for a in ("approved-prod", "deployed-prod") if a in result["kit_aliases"])
    passed = (result["identical_scores"] and result["signature_equal"] and result["lineage_equal"]
              and result["export_complete"] and aliases_ok and "approved-prod" in result["mlflow_aliases"])
    return {"passed": passed, "observed": result["max_abs_diff"], "threshold": 0.0,
            "detail": f"v{result['kit_version']} -> models:/{result['mlflow_name']}/{result['mlflow_version']} -> "
                      f"team B: identical golden scores, same signature and lineage, aliases {aliases_ok}"}


def mapping_frame(result: dict[str, Any]) -> pd.DataFrame:
    """One row per kit concept and what it became in MLflow."""
    rows = [("immutable version", f"v{result['kit_version']}",
             f"{result['mlflow_name']} version {result['mlflow_version']} (tag {result['version_id_tag']})"),
            ("aliases", ", ".join(result["kit_aliases"]),
             ", ".join(f"{a} -> {v}" for a, v in sorted(result["mlflow_aliases"].items()))),
            ("signature", "kit ModelSignature", f"MLflow ModelSignature; equal after the trip: "
                                                 f"{result['signature_equal']}"),
            ("lineage", "feature views + snapshots", f"tags {result['feature_views_tag']}; equal after the trip: "
                                                      f"{result['lineage_equal']}"),
            ("artifact", "canonical skops file", f"sklearn flavour, skops; same bytes after the trip: "
                                                  f"{result['artifact_equal']}")]
    return pd.DataFrame(rows, columns=["kit concept", "kit", "MLflow"])
