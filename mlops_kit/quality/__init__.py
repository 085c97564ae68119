"""Feature operations: quality checks, drift statistics, graduated responses and SLOs as code.

Quality checks are frozen declarations (``NullRateCheck``, ``RangeCheck`` ...) grouped in a
``QualitySuite`` that runs them inside DuckDB over a DataFrame, Parquet files or a DuckDB
relation; ``gate(report)`` raises ``QualityGateError`` listing every blocking failure.
Drift: ``psi``, ``ks_test``, ``js_distance``, ``wasserstein_normalized``, ``chi_square``,
``topk_shift``, ``unknown_rate``; ``column_drift``/``drift_report`` choose the method per
column; ``ResponsePolicy`` maps criticality and drift level to an action. SLOs live in
``mlops_kit.quality.slo`` (re-exported here).
"""

from .checks import (AllowedValuesCheck, FreshnessCheck, NullRateCheck, QualityCheck, RangeCheck,
                     SqlInvariantCheck, UniqueKeyCheck, VolumeCheck, check_from_dict)
from .drift import DriftReport, DriftResult, column_drift, drift_report, psi_band
from .drift_stats import (PSIResult, chi_square, js_distance, ks_test, psi, psi_detail, psi_from_shares,
                          topk_shift, unknown_rate, wasserstein_normalized)
from .report import CheckResult, QualityReport, gate
from .response import Response, ResponsePolicy
from .slo import SLO, Alert, SLOResult
from .slo import evaluate as evaluate_slo
from .suite import QualitySuite

__all__ = [
    "QualityCheck", "NullRateCheck", "RangeCheck", "UniqueKeyCheck", "AllowedValuesCheck",
    "SqlInvariantCheck", "FreshnessCheck", "VolumeCheck", "check_from_dict",
    "QualitySuite", "CheckResult", "QualityReport", "gate",
    "psi", "psi_detail", "psi_from_shares", "PSIResult", "ks_test", "js_distance", "wasserstein_normalized",
    "chi_square", "topk_shift", "unknown_rate",
    "column_drift", "drift_report", "DriftResult", "DriftReport", "psi_band",
    "Response", "ResponsePolicy",
    "SLO", "Alert", "SLOResult", "evaluate_slo",
]
