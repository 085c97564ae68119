"""Validation and preparation of the simulator's inputs (everything checked before a run)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from .._time import ensure_utc_series
from ..errors import DefinitionError, SchemaError, ValidationError
from ._engine import NEVER
from .faults import CovariateDrift, Fault, SchemaChange, SegmentRegression
from .guardrails import Guardrail
from .sources import FeatureSource
from .strategies import BlueGreenStrategy, CanaryStrategy, ShadowStrategy

__all__ = ["prepare_traffic", "check_config"]

REQUIRED = ("event_timestamp", "label", "label_timestamp")


def prepare_traffic(traffic: Any, *, key_column: str, segment_column: str,
                    request_columns: Sequence[str]) -> dict[str, Any]:
    """Validate the traffic table and return its columns as arrays sorted by event time."""
    if not isinstance(traffic, pd.DataFrame):
        raise ValidationError(f"traffic must be a pandas DataFrame, got {type(traffic).__name__}.",
                              fix="Pass the requests as a DataFrame (one row per request).")
    need = [key_column, segment_column, *REQUIRED, *request_columns]
    missing = [c for c in need if c not in traffic.columns]
    if missing:
        raise SchemaError(f"traffic is missing columns {missing}; it has {list(traffic.columns)}.",
                          fix="Provide key, event_timestamp, segment, label and label_timestamp "
                              "(NaT when the label never arrives).", missing=missing)
    if len(traffic) == 0:
        raise ValidationError("traffic has no rows.", fix="Pass at least one request.")
    for c in (key_column, segment_column, "label", "event_timestamp"):
        if traffic[c].isna().any():
            raise SchemaError(f"traffic column {c!r} has {int(traffic[c].isna().sum())} null values.",
                              fix=f"Drop or fill rows with a null {c!r}.", column=c)
    ts = ensure_utc_series(traffic["event_timestamp"], name="event_timestamp")
    lts = ensure_utc_series(traffic["label_timestamp"], name="label_timestamp")
    labels = traffic["label"]
    if not labels.isin([0, 1]).all():
        raise SchemaError("traffic column 'label' must hold only 0/1 (or booleans).",
                          fix="Encode fraud as 1 and legitimate as 0.", column="label")
    ok_lts = lts.isna() | (lts >= ts)
    if not ok_lts.all():
        raise SchemaError(f"{int((~ok_lts).sum())} labels arrive before their event (label_timestamp < "
                          "event_timestamp).", fix="Check the label delay computation.", column="label_timestamp")
    for c in request_columns:
        if not (pd.api.types.is_numeric_dtype(traffic[c]) or pd.api.types.is_bool_dtype(traffic[c])):
            raise SchemaError(f"request feature {c!r} has dtype {traffic[c].dtype}; features must be numeric.",
                              fix="Encode it as numbers first.", column=c)
    t_all = np.asarray(ts.dt.as_unit("ns").array.asi8, dtype=np.int64)
    order = np.argsort(t_all, kind="stable")
    t_ns = t_all[order]
    lt = np.asarray(lts.dt.as_unit("ns").array.asi8, dtype=np.int64)
    lt_ns = np.where(lts.isna().to_numpy(), NEVER, lt)[order]
    seg_raw = traffic[segment_column].astype(str).to_numpy(dtype=object)[order]
    names, seg = np.unique(seg_raw, return_inverse=True)
    keys = traffic[key_column].to_numpy()[order]
    return {"t_ns": t_ns, "label_t": lt_ns, "seg": seg.astype(np.int64), "segment_names": [str(s) for s in names],
            "segment_labels": seg_raw, "keys": keys, "label": labels.to_numpy().astype(np.int8)[order],
            "request_values": {c: traffic[c].to_numpy(dtype=float, na_value=np.nan)[order] for c in request_columns},
            "order": order}


def check_config(*, strategy: Any, guardrails: Sequence[Guardrail], faults: Sequence[Fault],
                 feature_columns: Sequence[str], sources: Mapping[Any, FeatureSource],
                 traffic_columns: Sequence[str], fallback_model: Any, warmup: timedelta,
                 redeploy_time: timedelta, segment_names: Sequence[str] | None = None) -> tuple[list, list]:
    """Check the configuration; return (request feature columns, fetched feature columns)."""
    if not isinstance(strategy, (ShadowStrategy, CanaryStrategy, BlueGreenStrategy)):
        raise DefinitionError(f"strategy must be a ShadowStrategy, CanaryStrategy or BlueGreenStrategy, got "
                              f"{type(strategy).__name__}.", fix="Pass e.g. strategy=CanaryStrategy().")
    interval = strategy.analysis_interval
    if not isinstance(feature_columns, (list, tuple)) or not feature_columns \
            or not all(isinstance(c, str) for c in feature_columns) or len(set(feature_columns)) != len(feature_columns):
        raise DefinitionError(f"feature_columns must be a non-empty list of distinct names, got {feature_columns!r}.",
                              fix="List the model's input columns in order.")
    request = [c for c in feature_columns if c in traffic_columns]
    fetched = [c for c in feature_columns if c not in traffic_columns]
    for version, src in sources.items():
        if not hasattr(src, "fetch") or not hasattr(src, "columns"):
            raise DefinitionError(f"feature source {version!r} has no fetch()/columns.",
                                  fix="Implement the FeatureSource protocol (see InMemoryFeatureSource).")
        lost = [c for c in fetched if c not in src.columns]
        if lost:
            raise DefinitionError(f"feature columns {lost} are neither traffic columns nor served by feature "
                                  f"source {version!r} (it serves {list(src.columns)}).",
                                  fix="Add them to the traffic or to the feature source.")
    if fetched and not sources:
        raise DefinitionError(f"feature columns {fetched} are not in the traffic and no feature source was given.",
                              fix="Pass features=InMemoryFeatureSource(...) or put them in the traffic.")
    for name, td in (("warmup", warmup), ("redeploy_time", redeploy_time)):
        if not isinstance(td, timedelta) or td < timedelta(0) or td % interval != timedelta(0):
            raise DefinitionError(f"{name} must be a non-negative multiple of the analysis interval {interval}, "
                                  f"got {td!r}.", fix=f"Use e.g. {name}=timedelta(hours=1).")
    names = [g.name for g in guardrails]
    if len(set(names)) != len(names):
        raise DefinitionError(f"guardrail names must be unique, got {names}.", fix="Rename the duplicates.")
    for g in guardrails:
        if not isinstance(g, Guardrail):
            raise DefinitionError(f"guardrails must be Guardrail objects, got {type(g).__name__}.",
                                  fix="Build them with Guardrail(name=..., metric=..., ...).")
        if g.window % interval != timedelta(0) or g.window < interval:
            raise DefinitionError(f"Guardrail {g.name!r}: window {g.window} is not a multiple of the analysis "
                                  f"interval {interval}.", fix="Use a whole number of analysis intervals.")
        if g.compare_to == "reference" and warmup <= timedelta(0):
            raise DefinitionError(f"Guardrail {g.name!r} compares to the reference period but warmup is 0.",
                                  fix="Give the simulator a warmup, e.g. warmup=timedelta(hours=1).")
        if g.action == "fallback" and fallback_model is None:
            raise DefinitionError(f"Guardrail {g.name!r} switches to the fallback model but none was given.",
                                  fix="Pass fallback_model= (e.g. a rule on request-time features).")
    for f in faults:
        if not isinstance(f, Fault) or type(f) is Fault:
            raise DefinitionError(f"faults must be concrete Fault objects, got {f!r}.",
                                  fix="Use e.g. OnlineStoreOutage(start=..., end=...).")
        if isinstance(f, (CovariateDrift, SchemaChange)) and f.feature not in feature_columns:
            raise DefinitionError(f"{f.label}: feature {f.feature!r} is not a model feature {list(feature_columns)}.",
                                  fix="Name one of the feature columns.")
        if isinstance(f, SegmentRegression) and segment_names is not None and f.segment not in segment_names:
            raise DefinitionError(f"SegmentRegression: segment {f.segment!r} never occurs in the traffic "
                                  f"(segments: {list(segment_names)}).", fix="Name an existing segment.")
    return request, fetched
