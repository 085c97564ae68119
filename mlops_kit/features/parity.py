"""Offline/online parity: does serving return what a point-in-time build would have used?

``parity_report`` samples entities of each requested view (deterministically, by seed),
computes the offline point-in-time value as of ``at`` (``get_historical_features`` with
``event_timestamp = at``) and the online value as of ``at``, and classifies every
(entity, feature) pair: match, mismatch (both values kept), missing online (offline has a
value, online none) or missing offline (the reverse). Two nulls are a match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._time import ensure_utc
from ..errors import ValidationError
from .pit import files_sql, q, ts_sql
from .serving import plan_online
from .validation import parse_refs

if TYPE_CHECKING:  # pragma: no cover
    from .store import FeatureStore

__all__ = ["ParityReport", "parity_report"]


@dataclass(frozen=True)
class ParityReport:
    """Result of a parity check; ``ok`` when nothing mismatched or went missing."""

    features: tuple[str, ...]
    at: datetime
    seed: int
    tolerance: float
    sampled_entities: int
    compared: int
    matches: int
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    missing_online: list[dict[str, Any]] = field(default_factory=list)
    missing_offline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.missing_online or self.missing_offline)

    @property
    def match_rate(self) -> float:
        return self.matches / self.compared if self.compared else 1.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        data["ok"] = self.ok
        data["match_rate"] = self.match_rate
        return data

    def to_frame(self) -> pd.DataFrame:
        """One row per problem: status, view, feature, key, offline and online value."""
        rows = [{"status": status, **item} for status, items in
                (("mismatch", self.mismatches), ("missing_online", self.missing_online),
                 ("missing_offline", self.missing_offline)) for item in items]
        return pd.DataFrame(rows, columns=["status", "view", "feature", "key", "offline", "online"])


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and math.isnan(value))


def _py(value: Any) -> Any:
    if _is_null(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def _same(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=tolerance, abs_tol=tolerance)
    return a == b


def parity_report(store: "FeatureStore", features: Sequence[str], *, sample_size: int, seed: int,
                  at: datetime, tolerance: float = 1e-9, principal: str | None = None,
                  purpose: str | None = None) -> ParityReport:
    """Compare offline point-in-time values with online values as of ``at``.

    Parameters
    ----------
    store:
        The feature store.
    features:
        ``"view:feature"`` references.
    sample_size:
        Entities sampled per view (all of them if fewer), among those with an offline row
        at or before ``at``.
    seed:
        Seed of the sampling generator.
    at:
        The as-of time of both reads.
    tolerance:
        Relative and absolute tolerance for numeric values.
    """
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 1:
        raise ValidationError(f"parity_report: sample_size must be a positive integer, got {sample_size!r}.",
                              fix="Pass e.g. sample_size=500.")
    if not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ValidationError(f"parity_report: tolerance must be >= 0, got {tolerance!r}.",
                              fix="Pass e.g. tolerance=1e-9.")
    at = ensure_utc(at, name="parity_report(at)")
    at_us = int(pd.Timestamp(at).value // 1000)
    plan = plan_online(parse_refs(features, store.get_feature_view), full_feature_names=True)
    rng = np.random.default_rng(seed)
    compared = matches = sampled = 0
    buckets: dict[str, list[dict[str, Any]]] = {"mismatch": [], "missing_online": [], "missing_offline": []}
    for view, feats, _ in plan.views:
        keys = list(view.join_keys)
        files = store.offline_files(view)
        if not files:
            continue
        sql = (f"SELECT DISTINCT {', '.join(map(q, keys))} FROM read_parquet({files_sql(files)}) "
               f"WHERE {q(view.timestamp_field)} <= {ts_sql(at_us)} ORDER BY ALL")
        population = store.duckdb.sql(sql).to_arrow_table().to_pandas()
        if population.empty:
            continue
        take = np.sort(rng.choice(len(population), size=min(sample_size, len(population)), replace=False))
        sample = population.iloc[take].reset_index(drop=True)
        sampled += len(sample)
        refs = [f"{view.name}@v{view.version}:{f}" for f in feats]
        entity_df = sample.copy()
        entity_df["event_timestamp"] = pd.Series([pd.Timestamp(at)] * len(sample)).astype("datetime64[us, UTC]")
        offline = store.get_historical_features(entity_df, refs, full_feature_names=True,
                                                principal=principal, purpose=purpose)
        rows = [{k: _py(sample[k].iloc[i]) for k in keys} for i in range(len(sample))]
        online = store.get_online_features(refs, rows, at=at, full_feature_names=True,
                                           principal=principal, purpose=purpose)
        for feat in feats:
            name = f"{view.name}__{feat}"
            for i, key in enumerate(rows):
                off, on = _py(offline[name].iloc[i]), _py(online[name][i])
                compared += 1
                item = {"view": view.name, "feature": feat, "key": key, "offline": off, "online": on}
                if _is_null(off) and _is_null(on):
                    matches += 1
                elif _is_null(on):
                    buckets["missing_online"].append(item)
                elif _is_null(off):
                    buckets["missing_offline"].append(item)
                elif _same(off, on, tolerance):
                    matches += 1
                else:
                    buckets["mismatch"].append(item)
    return ParityReport(features=tuple(features), at=at, seed=seed, tolerance=float(tolerance),
                        sampled_entities=sampled, compared=compared, matches=matches,
                        mismatches=buckets["mismatch"], missing_online=buckets["missing_online"],
                        missing_offline=buckets["missing_offline"])
