"""Per-column drift detection with Evidently's default method choice, per segment and per dataset.

Method choice (``method="auto"``), following Evidently's defaults:

===========================================  =======================  =========================
column                                       reference rows           drift when
===========================================  =======================  =========================
numeric with more than 5 unique values       <= 1000                  KS p-value <= 0.05
numeric with more than 5 unique values       > 1000                   Wasserstein / std >= 0.1
categorical (or numeric with <= 5 values)    <= 1000                  chi-square p-value < 0.05
categorical (or numeric with <= 5 values)    > 1000                   Jensen-Shannon >= 0.1
===========================================  =======================  =========================

PSI is reported for every column (bands: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 major).
With fewer than ``min_samples`` non-null values on either side (default 30) the verdict is
``inconclusive``, never "no drift".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError, ValidationError
from . import drift_stats as ds

__all__ = ["DriftResult", "DriftReport", "column_drift", "drift_report", "psi_band", "MIN_SAMPLES",
           "METHODS"]

MIN_SAMPLES = 30
METHODS = ("ks", "wasserstein", "psi", "chi_square", "jensen_shannon")
_DEFAULT_THRESHOLDS = {"ks": 0.05, "wasserstein": 0.1, "psi": 0.1, "chi_square": 0.05, "jensen_shannon": 0.1}


def psi_band(value: float | None) -> str | None:
    """``'stable'`` (< 0.1), ``'moderate'`` (0.1-0.25) or ``'major'`` (>= 0.25)."""
    if value is None:
        return None
    return "stable" if value < 0.1 else "moderate" if value < 0.25 else "major"


@dataclass(frozen=True, kw_only=True)
class DriftResult:
    """The drift verdict for one column (and segment) with everything it rests on."""

    column: str
    segment: dict[str, Any] | None
    kind: str
    method: str
    statistic: float | None
    threshold: float
    verdict: str
    n_reference: int
    n_current: int
    min_samples: int
    psi: float | None
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def psi_band(self) -> str | None:
        return psi_band(self.psi)

    @property
    def level(self) -> str:
        """Drift level for response policies: inconclusive, none, moderate or major.

        ``major`` when PSI >= 0.25; ``moderate`` when PSI >= 0.1 or the column's test says
        drift; ``none`` otherwise.
        """
        if self.verdict == "inconclusive":
            return "inconclusive"
        if self.psi is not None and self.psi >= 0.25:
            return "major"
        if self.verdict == "drift" or (self.psi is not None and self.psi >= 0.1):
            return "moderate"
        return "none"

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "segment": self.segment, "kind": self.kind, "method": self.method,
                "statistic": self.statistic, "threshold": self.threshold, "verdict": self.verdict,
                "n_reference": self.n_reference, "n_current": self.n_current,
                "min_samples": self.min_samples, "psi": self.psi, "psi_band": self.psi_band,
                "level": self.level, "message": self.message, "extra": self.extra}


def _kind(reference: pd.Series) -> str:
    if pd.api.types.is_numeric_dtype(reference.dtype) and not pd.api.types.is_bool_dtype(reference.dtype) \
            and reference.dropna().nunique() > 5:
        return "numeric"
    return "categorical"


def column_drift(
    reference: Any,
    current: Any,
    *,
    column: str = "value",
    kind: str = "auto",
    method: str = "auto",
    threshold: float | None = None,
    min_samples: int = MIN_SAMPLES,
    segment: dict[str, Any] | None = None,
) -> DriftResult:
    """Decide whether ``current`` drifted from ``reference`` for one column.

    Parameters
    ----------
    reference, current:
        The two samples (array-like or Series); nulls are dropped.
    kind:
        ``"numeric"``, ``"categorical"`` or ``"auto"`` (numeric dtype with > 5 unique values).
    method:
        One of ``METHODS`` or ``"auto"`` (see the module docstring).
    threshold:
        Overrides the method's default (p-value for ks/chi_square, distance otherwise).
    min_samples:
        Minimum non-null values on each side for a verdict (default 30).
    """
    if kind not in ("auto", "numeric", "categorical"):
        raise ValidationError(f"column_drift({column!r}): kind must be auto, numeric or categorical, got {kind!r}.",
                              fix="Use kind='auto' unless the dtype misleads.")
    if method != "auto" and method not in METHODS:
        raise ValidationError(f"column_drift({column!r}): method must be 'auto' or one of {METHODS}, got {method!r}.",
                              fix="Use method='auto' for Evidently's defaults.")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 2:
        raise ValidationError(f"column_drift({column!r}): min_samples must be an integer >= 2, got {min_samples!r}.",
                              fix="Use e.g. min_samples=30.")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not threshold > 0):
        raise ValidationError(f"column_drift({column!r}): threshold must be a positive number, got {threshold!r}.",
                              fix="Leave threshold=None for the method's default.")
    ref = pd.Series(reference).reset_index(drop=True)
    cur = pd.Series(current).reset_index(drop=True)
    kind = _kind(ref) if kind == "auto" else kind
    n_ref, n_cur = int(ref.notna().sum()), int(cur.notna().sum())
    if method == "auto":
        if kind == "numeric":
            method = "ks" if n_ref <= 1000 else "wasserstein"
        else:
            method = "chi_square" if n_ref <= 1000 else "jensen_shannon"
    if kind == "categorical" and method in ("ks", "wasserstein"):
        raise ValidationError(f"column_drift({column!r}): method {method!r} needs a numeric column.",
                              fix="Use chi_square, jensen_shannon or psi for categories.")
    limit = float(_DEFAULT_THRESHOLDS[method] if threshold is None else threshold)
    base = dict(column=column, segment=segment, kind=kind, method=method, threshold=limit,
                n_reference=n_ref, n_current=n_cur, min_samples=min_samples)
    if n_ref < min_samples or n_cur < min_samples:
        return DriftResult(**base, statistic=None, verdict="inconclusive", psi=None,
                           message=f"{column}: too little data for a verdict (needs >= {min_samples} non-null "
                           f"values per side, got reference={n_ref}, current={n_cur}).")
    extra: dict[str, Any] = {}
    if kind == "numeric":
        psi_value = ds.psi(ref, cur)
    else:
        ref_shares, cur_shares = ds.category_shares(ref, cur)
        psi_value = ds.psi_from_shares(ref_shares.to_numpy(), cur_shares.to_numpy())
        extra["unknown_rate"] = ds.unknown_rate(ref, cur)
        extra["topk_shift"] = ds.topk_shift(ref, cur, k=10)
    if method == "ks":
        d_stat, stat = ds.ks_test(ref, cur)
        extra["ks_statistic"] = d_stat
        drifted, rule = stat <= limit, f"KS p-value {stat:.4g} <= {limit:g}"
    elif method == "chi_square":
        chi2, stat, dof = ds.chi_square(ref, cur)
        extra.update(chi2=chi2, dof=dof)
        drifted, rule = stat < limit, f"chi-square p-value {stat:.4g} < {limit:g}"
    else:
        stat = {"wasserstein": lambda: ds.wasserstein_normalized(ref, cur),
                "psi": lambda: psi_value,
                "jensen_shannon": lambda: ds.js_distance(ref, cur, categorical=kind == "categorical")}[method]()
        drifted, rule = stat >= limit, f"{method} {stat:.4g} >= {limit:g}"
    verdict = "drift" if drifted else "no_drift"
    message = (f"{column}: {'drift' if drifted else 'no drift'} ({rule} is {bool(drifted)}; "
               f"PSI {psi_value:.3f} {psi_band(psi_value)}; n={n_ref}/{n_cur}).")
    return DriftResult(**base, statistic=float(stat), verdict=verdict, psi=float(psi_value), message=message,
                       extra=extra)


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    """Column results (overall and per segment) and the dataset drift share."""

    results: tuple[DriftResult, ...]
    drift_share_threshold: float

    @property
    def overall(self) -> tuple[DriftResult, ...]:
        return tuple(r for r in self.results if r.segment is None)

    @property
    def drift_share(self) -> float | None:
        """Drifted columns / columns with a verdict (overall results; None if none conclusive)."""
        conclusive = [r for r in self.overall if r.verdict != "inconclusive"]
        return None if not conclusive else sum(r.verdict == "drift" for r in conclusive) / len(conclusive)

    @property
    def dataset_verdict(self) -> str:
        share = self.drift_share
        if share is None:
            return "inconclusive"
        return "drift" if share >= self.drift_share_threshold else "no_drift"

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for r in self.results:
            row = {k: v for k, v in r.to_dict().items() if k not in ("extra", "segment")}
            row["segment"] = None if r.segment is None else ", ".join(f"{k}={v}" for k, v in r.segment.items())
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"drift_share": self.drift_share, "drift_share_threshold": self.drift_share_threshold,
                "dataset_verdict": self.dataset_verdict, "results": [r.to_dict() for r in self.results]}


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    segment_by: str | None = None,
    methods: dict[str, str] | None = None,
    min_samples: int = MIN_SAMPLES,
    drift_share_threshold: float = 0.5,
) -> DriftReport:
    """Drift of every column (and of every segment of ``segment_by``) of ``current`` vs ``reference``.

    The dataset drifts when the share of drifted columns (overall, conclusive ones) is
    >= ``drift_share_threshold`` (Evidently's default 0.5).
    """
    if not isinstance(reference, pd.DataFrame) or not isinstance(current, pd.DataFrame):
        raise ValidationError("drift_report: reference and current must be pandas DataFrames.",
                              fix="Pass e.g. store.read_offline(view, start, end) for each window.")
    if not 0 < drift_share_threshold <= 1:
        raise ValidationError(f"drift_report: drift_share_threshold must be in (0, 1], got {drift_share_threshold!r}.",
                              fix="Use e.g. 0.5.")
    if columns is None:
        columns = [c for c in reference.columns if c != segment_by and c in current.columns
                   and not isinstance(reference[c].dtype, pd.DatetimeTZDtype)
                   and not pd.api.types.is_datetime64_any_dtype(reference[c].dtype)]
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns) or not columns:
        raise ValidationError(f"drift_report: columns must be a non-empty list of names, got {columns!r}.",
                              fix="Pass e.g. columns=['amount', 'merchant_category'].")
    needed = list(columns) + ([segment_by] if segment_by else [])
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise SchemaError(f"drift_report: {name} lacks column(s) {missing}.",
                              fix="Pass frames with the same columns, or choose columns=[...].")
    methods = dict(methods or {})
    unknown = sorted(set(methods) - set(columns))
    if unknown:
        raise ValidationError(f"drift_report: methods given for unknown column(s) {unknown}.",
                              fix="Name only columns that are measured.")
    results = [column_drift(reference[c], current[c], column=c, method=methods.get(c, "auto"),
                            min_samples=min_samples) for c in columns]
    if segment_by:
        values = pd.concat([reference[segment_by], current[segment_by]]).dropna().unique()
        for value in sorted(values, key=str):
            ref_part = reference[np.asarray(reference[segment_by] == value)]
            cur_part = current[np.asarray(current[segment_by] == value)]
            for c in columns:
                results.append(column_drift(ref_part[c], cur_part[c], column=c, kind=_kind(reference[c]),
                                            method=methods.get(c, "auto"), min_samples=min_samples,
                                            segment={segment_by: value.item() if hasattr(value, "item") else value}))
    return DriftReport(results=tuple(results), drift_share_threshold=float(drift_share_threshold))
