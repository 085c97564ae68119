"""Drift statistics between a reference sample and a current sample.

Numeric: PSI with reference-quantile bins, two-sample Kolmogorov-Smirnov, Jensen-Shannon
distance over shared histogram bins, Wasserstein distance normalized by the reference
standard deviation. Categorical: chi-square test of homogeneity, Jensen-Shannon distance,
PSI over categories, top-k frequency shift and the unknown-category rate.

Nulls (None/NaN) are dropped before any statistic (null rates are a quality check of their
own); infinite values are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ValidationError

__all__ = [
    "PSI_FLOOR", "PSIResult", "psi", "psi_detail", "psi_from_shares", "ks_test",
    "js_distance", "wasserstein_normalized", "chi_square", "category_shares", "topk_shift",
    "unknown_rate",
]

PSI_FLOOR = 0.0001


def numeric_sample(values: Any, *, name: str) -> np.ndarray:
    """Finite float array with nulls dropped; refuse text, infinities and empty samples."""
    raw = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    try:
        if raw.dtype.kind in "biuf":  # fast path: already numeric
            arr = raw.astype(float).ravel()
        else:
            arr = pd.to_numeric(pd.Series(raw.astype(object).ravel()), errors="raise")
            arr = arr.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: values must be numeric ({exc}).",
                              fix="Pass a numeric array/Series; use the categorical statistics for labels.") from exc
    arr = arr[~np.isnan(arr)]
    if np.isinf(arr).any():
        raise ValidationError(f"{name}: holds infinite values.", fix="Replace or drop inf before measuring drift.")
    if arr.size == 0:
        raise ValidationError(f"{name}: no non-null values.", fix="Pass a non-empty sample.")
    return arr


def categorical_sample(values: Any, *, name: str) -> pd.Series:
    """Series of category labels with nulls dropped; refuse empty samples."""
    series = pd.Series(np.asarray(values, dtype=object).ravel()).dropna()
    if series.empty:
        raise ValidationError(f"{name}: no non-null values.", fix="Pass a non-empty sample.")
    return series


def _bins(bins: Any) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValidationError(f"bins must be an integer >= 2, got {bins!r}.", fix="Use e.g. bins=10.")
    return int(bins)


@dataclass(frozen=True)
class PSIResult:
    """PSI with what it rests on: sample sizes, bin count, edges and per-bin shares."""

    value: float
    n_reference: int
    n_current: int
    bins: int
    edges: tuple[float, ...]
    reference_shares: tuple[float, ...]
    current_shares: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "n_reference": self.n_reference, "n_current": self.n_current,
                "bins": self.bins, "edges": list(self.edges),
                "reference_shares": list(self.reference_shares), "current_shares": list(self.current_shares)}


def psi_from_shares(reference_shares: Any, current_shares: Any) -> float:
    """PSI = sum (cur - ref) * ln(cur / ref) after replacing zero shares by ``PSI_FLOOR``."""
    try:
        ref = np.asarray(reference_shares, dtype=float).ravel()
        cur = np.asarray(current_shares, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"psi_from_shares: shares must be numbers ({exc}).",
                              fix="Pass two arrays of bin shares.") from exc
    if ref.shape != cur.shape or ref.size == 0:
        raise ValidationError(f"psi_from_shares: shares must be non-empty and of the same length, got "
                              f"{ref.size} and {cur.size}.", fix="Compute both over the same bins.")
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()) or (ref < 0).any() or (cur < 0).any() \
            or (ref > 1).any() or (cur > 1).any():
        raise ValidationError("psi_from_shares: shares must lie in [0, 1].", fix="Divide counts by the sample size.")
    ref = np.where(ref == 0, PSI_FLOOR, ref)
    cur = np.where(cur == 0, PSI_FLOOR, cur)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_detail(reference: Any, current: Any, bins: int = 10) -> PSIResult:
    """Population Stability Index with reference-quantile bins (see ``psi``), with details."""
    n_bins = _bins(bins)
    ref = numeric_sample(reference, name="psi(reference)")
    cur = numeric_sample(current, name="psi(current)")
    edges = np.unique(np.quantile(ref, np.arange(1, n_bins) / n_bins))
    # side="right": a value equal to an edge goes to the bin on the edge's right.
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    ref_shares = ref_counts / ref.size
    cur_shares = cur_counts / cur.size
    return PSIResult(value=psi_from_shares(ref_shares, cur_shares), n_reference=int(ref.size),
                     n_current=int(cur.size), bins=int(edges.size + 1),
                     edges=tuple(float(e) for e in edges),
                     reference_shares=tuple(float(s) for s in ref_shares),
                     current_shares=tuple(float(s) for s in cur_shares))


def psi(reference: Any, current: Any, bins: int = 10) -> float:
    """Population Stability Index of ``current`` against ``reference``.

    The interior edges are the reference quantiles at 1/bins, ..., (bins-1)/bins (numpy's
    default linear method), duplicates removed; the bins are (-inf, e1), [e1, e2), ...,
    [e_last, +inf), so a value equal to an edge falls in the bin on its right. A share of 0 is
    replaced by 0.0001. PSI = sum (cur - ref) * ln(cur / ref). Bands: < 0.1 stable,
    0.1-0.25 moderate shift, >= 0.25 major shift.

    >>> round(psi([1, 2, 3, 4], [1, 2, 3, 4], bins=2), 6)
    0.0
    """
    return psi_detail(reference, current, bins).value


def ks_test(reference: Any, current: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test (scipy, two-sided): ``(statistic, p_value)``."""
    ref = numeric_sample(reference, name="ks_test(reference)")
    cur = numeric_sample(current, name="ks_test(current)")
    result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def _js(p: np.ndarray, q: np.ndarray) -> float:
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def js_distance(reference: Any, current: Any, *, categorical: bool = False, bins: int = 10) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between the two samples' distributions.

    Numeric samples are histogrammed over ``bins`` equal-width bins spanning both samples;
    categorical samples use the shares of every category seen in either. (Evidently uses the
    natural log; base-2 distances are 1.20 times larger, so its 0.1 threshold is a bit stricter
    here.)
    """
    if categorical:
        ref, cur = category_shares(reference, current)
        return _js(ref.to_numpy(), cur.to_numpy())
    ref_arr = numeric_sample(reference, name="js_distance(reference)")
    cur_arr = numeric_sample(current, name="js_distance(current)")
    edges = np.histogram_bin_edges(np.concatenate([ref_arr, cur_arr]), bins=_bins(bins))
    return _js(np.histogram(ref_arr, edges)[0].astype(float), np.histogram(cur_arr, edges)[0].astype(float))


def wasserstein_normalized(reference: Any, current: Any) -> float:
    """Wasserstein-1 distance divided by the reference std (population std, floored at 0.001)."""
    ref = numeric_sample(reference, name="wasserstein_normalized(reference)")
    cur = numeric_sample(current, name="wasserstein_normalized(current)")
    return float(stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))


def category_shares(reference: Any, current: Any) -> tuple[pd.Series, pd.Series]:
    """Shares of every category seen in either sample (same index, sorted by label text)."""
    ref = categorical_sample(reference, name="reference").astype(str)
    cur = categorical_sample(current, name="current").astype(str)
    labels = sorted(set(ref) | set(cur))
    return (ref.value_counts(normalize=True).reindex(labels, fill_value=0.0),
            cur.value_counts(normalize=True).reindex(labels, fill_value=0.0))


def chi_square(reference: Any, current: Any) -> tuple[float, float, int]:
    """Chi-square test of homogeneity on the 2 x K table of category counts.

    Returns ``(statistic, p_value, dof)``. Unlike a goodness-of-fit test against reference
    shares, a category never seen in the reference is handled (it has expected count > 0).
    """
    ref = categorical_sample(reference, name="chi_square(reference)").astype(str)
    cur = categorical_sample(current, name="chi_square(current)").astype(str)
    labels = sorted(set(ref) | set(cur))
    if len(labels) < 2:
        return 0.0, 1.0, 0
    table = np.vstack([ref.value_counts().reindex(labels, fill_value=0).to_numpy(),
                       cur.value_counts().reindex(labels, fill_value=0).to_numpy()])
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue), int(result.dof)


def topk_shift(reference: Any, current: Any, k: int = 10) -> dict[str, Any]:
    """Share change of the reference's ``k`` most frequent categories.

    Returns ``{"max_abs_shift", "category", "table"}`` where ``table`` lists each top-k
    category with its reference share, current share and shift (current - reference).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError(f"topk_shift: k must be an integer >= 1, got {k!r}.", fix="Use e.g. k=10.")
    ref, cur = category_shares(reference, current)
    top = ref[ref > 0].sort_values(ascending=False, kind="stable").index[:k]
    table = [{"category": c, "reference_share": float(ref[c]), "current_share": float(cur[c]),
              "shift": float(cur[c] - ref[c])} for c in top]
    worst = max(table, key=lambda row: abs(row["shift"]))
    return {"max_abs_shift": abs(worst["shift"]), "category": worst["category"], "table": table}


def unknown_rate(reference: Any, current: Any) -> float:
    """Share of current values whose category never appears in the reference."""
    ref = categorical_sample(reference, name="unknown_rate(reference)").astype(str)
    cur = categorical_sample(current, name="unknown_rate(current)").astype(str)
    return float((~cur.isin(set(ref))).mean())
