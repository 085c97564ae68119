"""Model signatures (the input/output contract), contract checks and golden-set checks.

A signature is inferred from the training frame: each input column's kit dtype
(``int64``, ``float64``, ``bool``, ``string``, ``timestamp``), whether it may be null, and
its observed range (numeric) or allowed values (strings with few distinct values). The
contract check compares a frame against it and returns *every* violation at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DefinitionError, ValidationError

__all__ = [
    "ColumnSpec", "ModelSignature", "ContractViolation", "ContractReport", "GoldenReport",
    "infer_signature", "check_contract", "check_golden", "predict_scores", "DTYPES",
]

DTYPES = ("int64", "float64", "bool", "string", "timestamp")


def _kit_dtype(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int64"
    if pd.api.types.is_float_dtype(dtype):
        return "float64"
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if isinstance(dtype, pd.CategoricalDtype):
        return "string"
    if pd.api.types.is_string_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return "string"
    raise ValidationError(f"column {series.name!r} has dtype {dtype}, which a signature cannot describe.",
                          fix=f"Convert it to one of {DTYPES}.", column=series.name)


@dataclass(frozen=True, kw_only=True)
class ColumnSpec:
    """One column of a signature: name, kit dtype, nullability and its allowed domain."""

    name: str
    dtype: str
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None
    allowed_values: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DefinitionError(f"ColumnSpec: name must be a non-empty string, got {self.name!r}.",
                                  fix="Name the column, e.g. ColumnSpec(name='amount', dtype='float64').")
        if self.dtype not in DTYPES:
            raise DefinitionError(f"ColumnSpec {self.name!r}: dtype must be one of {DTYPES}, got {self.dtype!r}.",
                                  fix="Use a kit dtype name.")
        if not isinstance(self.nullable, bool):
            raise DefinitionError(f"ColumnSpec {self.name!r}: nullable must be a bool, got {self.nullable!r}.",
                                  fix="Pass nullable=True or nullable=False.")
        for bound in ("minimum", "maximum"):
            value = getattr(self, bound)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                      or math.isnan(value)):
                raise DefinitionError(f"ColumnSpec {self.name!r}: {bound} must be a number or None, got {value!r}.",
                                      fix="Pass a finite number.")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise DefinitionError(f"ColumnSpec {self.name!r}: minimum {self.minimum} > maximum {self.maximum}.",
                                  fix="Swap the bounds.")
        if self.allowed_values is not None:
            object.__setattr__(self, "allowed_values", tuple(self.allowed_values))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "nullable": self.nullable,
                "minimum": self.minimum, "maximum": self.maximum,
                "allowed_values": None if self.allowed_values is None else list(self.allowed_values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ColumnSpec":
        allowed = data.get("allowed_values")
        return cls(name=data["name"], dtype=data["dtype"], nullable=bool(data.get("nullable", True)),
                   minimum=data.get("minimum"), maximum=data.get("maximum"),
                   allowed_values=None if allowed is None else tuple(allowed))


@dataclass(frozen=True, kw_only=True)
class ModelSignature:
    """Inputs and outputs of a model, as column specs."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()

    def __post_init__(self) -> None:
        for part in ("inputs", "outputs"):
            specs = tuple(getattr(self, part))
            if not all(isinstance(spec, ColumnSpec) for spec in specs):
                raise DefinitionError(f"ModelSignature: {part} must hold ColumnSpec objects.",
                                      fix="Build the signature with infer_signature(df, outputs=...).")
            names = [spec.name for spec in specs]
            if len(set(names)) != len(names):
                raise DefinitionError(f"ModelSignature: duplicate {part} column names {names}.",
                                      fix="Give every column a unique name.")
            object.__setattr__(self, part, specs)
        if not self.inputs:
            raise DefinitionError("ModelSignature: inputs is empty.",
                                  fix="Infer it from the training frame: infer_signature(X_train).")

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [spec.to_dict() for spec in self.inputs],
                "outputs": [spec.to_dict() for spec in self.outputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSignature":
        return cls(inputs=tuple(ColumnSpec.from_dict(c) for c in data["inputs"]),
                   outputs=tuple(ColumnSpec.from_dict(c) for c in data.get("outputs", [])))


def _infer_column(series: pd.Series, name: str, max_categories: int) -> ColumnSpec:
    dtype = _kit_dtype(series)
    nullable = bool(series.isna().any())
    values = series.dropna()
    minimum = maximum = None
    allowed = None
    if dtype in ("int64", "float64") and len(values):
        minimum, maximum = float(values.min()), float(values.max())
    elif dtype == "string" and len(values):
        unique = sorted({str(v) for v in values})
        if len(unique) <= max_categories:
            allowed = tuple(unique)
    elif dtype == "bool" and len(values):
        allowed = tuple(sorted({bool(v) for v in values}))
    return ColumnSpec(name=name, dtype=dtype, nullable=nullable, minimum=minimum, maximum=maximum,
                      allowed_values=allowed)


def infer_signature(df: pd.DataFrame, outputs: Any = None, *, max_categories: int = 20) -> ModelSignature:
    """Infer a signature from a training frame and (optionally) the model's outputs.

    Parameters
    ----------
    df:
        The training inputs, one column per model input, in the model's order.
    outputs:
        Predictions (array, Series or DataFrame; a 1-D array is named ``prediction``), or
        ready-made ``ColumnSpec`` objects, or ``None``.
    max_categories:
        String columns with at most this many distinct values record them as allowed values.

    Examples
    --------
    >>> sig = infer_signature(pd.DataFrame({"amount": [1.0, 5.0], "country": ["DE", "FR"]}))
    >>> [(c.name, c.dtype, c.minimum, c.maximum, c.allowed_values) for c in sig.inputs]
    [('amount', 'float64', 1.0, 5.0, None), ('country', 'string', None, None, ('DE', 'FR'))]
    """
    if not isinstance(df, pd.DataFrame) or df.empty or len(df.columns) == 0:
        raise ValidationError("infer_signature: df must be a non-empty pandas DataFrame.",
                              fix="Pass the training inputs (X_train) as a DataFrame.")
    if not isinstance(max_categories, int) or max_categories < 0:
        raise ValidationError(f"infer_signature: max_categories must be an int >= 0, got {max_categories!r}.",
                              fix="Pass e.g. max_categories=20.")
    inputs = tuple(_infer_column(df[col], str(col), max_categories) for col in df.columns)
    if outputs is None:
        out: tuple[ColumnSpec, ...] = ()
    elif isinstance(outputs, (list, tuple)) and outputs and all(isinstance(o, ColumnSpec) for o in outputs):
        out = tuple(outputs)
    elif isinstance(outputs, pd.DataFrame):
        out = tuple(_infer_column(outputs[col], str(col), max_categories) for col in outputs.columns)
    else:
        series = outputs if isinstance(outputs, pd.Series) else pd.Series(np.asarray(outputs))
        if series.ndim != 1 or series.empty:
            raise ValidationError("infer_signature: outputs must be 1-D predictions, a DataFrame or ColumnSpecs.",
                                  fix="Pass model.predict_proba(X)[:, 1] or a DataFrame of outputs.")
        out = (_infer_column(series, str(series.name or "prediction"), max_categories),)
    return ModelSignature(inputs=inputs, outputs=out)


@dataclass(frozen=True, kw_only=True)
class ContractViolation:
    """One broken rule: which column, what kind, how many rows and a readable detail."""

    column: str
    kind: str  # missing_column | dtype_mismatch | null_not_allowed | out_of_range | value_not_allowed
    detail: str
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "detail": self.detail, "rows": self.rows}


@dataclass(frozen=True, kw_only=True)
class ContractReport:
    """Every violation and warning found by :func:`check_contract`."""

    violations: tuple[ContractViolation, ...]
    warnings: tuple[str, ...]
    rows: int

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "violations": [v.to_dict() for v in self.violations],
                "warnings": list(self.warnings)}


def check_contract(signature: ModelSignature, df: pd.DataFrame) -> ContractReport:
    """Check ``df`` against ``signature.inputs`` and return every violation.

    Missing columns, dtype mismatches (integer data is accepted for a ``float64`` input),
    nulls in non-nullable columns, numbers outside ``[minimum, maximum]`` and values outside
    ``allowed_values`` are violations. Extra columns are reported as warnings and are never
    dropped from anything.
    """
    if not isinstance(signature, ModelSignature):
        raise ValidationError(f"check_contract: signature must be a ModelSignature, got {type(signature).__name__}.",
                              fix="Pass model_version.signature or infer_signature(X_train).")
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"check_contract: df must be a pandas DataFrame, got {type(df).__name__}.",
                              fix="Pass the serving/evaluation inputs as a DataFrame.")
    violations: list[ContractViolation] = []
    names = set(signature.input_names)
    warnings = tuple(f"extra column {str(c)!r} is not in the signature (kept, not used by the contract)"
                     for c in df.columns if str(c) not in names)
    for spec in signature.inputs:
        if spec.name not in df.columns:
            violations.append(ContractViolation(column=spec.name, kind="missing_column",
                                                detail=f"column {spec.name!r} ({spec.dtype}) is missing"))
            continue
        series = df[spec.name]
        try:
            actual = _kit_dtype(series)
        except ValidationError:
            actual = str(series.dtype)
        if actual != spec.dtype and not (spec.dtype == "float64" and actual == "int64"):
            violations.append(ContractViolation(column=spec.name, kind="dtype_mismatch",
                                                detail=f"expected {spec.dtype}, got {actual}", rows=len(series)))
            continue
        nulls = int(series.isna().sum())
        if nulls and not spec.nullable:
            violations.append(ContractViolation(column=spec.name, kind="null_not_allowed",
                                                detail=f"{nulls} null value(s) in a non-nullable column", rows=nulls))
        values = series.dropna()
        if spec.dtype in ("int64", "float64") and len(values):
            numbers = values.astype("float64")
            low = int((numbers < spec.minimum).sum()) if spec.minimum is not None else 0
            high = int((numbers > spec.maximum).sum()) if spec.maximum is not None else 0
            if low or high:
                violations.append(ContractViolation(
                    column=spec.name, kind="out_of_range", rows=low + high,
                    detail=f"{low + high} value(s) outside [{spec.minimum}, {spec.maximum}] "
                    f"(observed {float(numbers.min())} .. {float(numbers.max())})"))
        if spec.allowed_values is not None and len(values):
            allowed = set(spec.allowed_values)
            keyed = values.map(bool) if spec.dtype == "bool" else values.map(str)
            bad = keyed[~keyed.isin(allowed)]
            if len(bad):
                examples = sorted({str(v) for v in bad})[:5]
                violations.append(ContractViolation(
                    column=spec.name, kind="value_not_allowed", rows=len(bad),
                    detail=f"{len(bad)} value(s) not in the allowed set, e.g. {examples}"))
    return ContractReport(violations=tuple(violations), warnings=warnings, rows=len(df))


def predict_scores(model: Any, df: pd.DataFrame) -> np.ndarray:
    """The model's scores: positive-class probability if it has ``predict_proba``, else ``predict``."""
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(df))
        return proba[:, -1].astype("float64") if proba.ndim == 2 else proba.astype("float64")
    if hasattr(model, "predict"):
        return np.asarray(model.predict(df), dtype="float64")
    raise ValidationError(f"the model ({type(model).__name__}) has neither predict_proba nor predict.",
                          fix="Register a fitted estimator.")


@dataclass(frozen=True, kw_only=True)
class GoldenReport:
    """Result of a golden-set behavioural check."""

    ok: bool
    rows: int
    failed_rows: int
    max_abs_diff: float
    tolerance: float
    worst_row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "failed_rows": self.failed_rows,
                "max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance, "worst_row": self.worst_row}


def check_golden(model: Any, golden_df: pd.DataFrame, expected: Sequence[float] | Iterable[float] | np.ndarray,
                 tolerance: float = 1e-6) -> GoldenReport:
    """Predict on a fixed golden set and compare with the recorded predictions.

    A row fails when ``|score - expected| > tolerance`` (or either is NaN).
    """
    if not isinstance(golden_df, pd.DataFrame) or golden_df.empty:
        raise ValidationError("check_golden: golden_df must be a non-empty DataFrame.",
                              fix="Pass the fixed golden inputs the expected scores were recorded on.")
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not tolerance >= 0:
        raise ValidationError(f"check_golden: tolerance must be a number >= 0, got {tolerance!r}.",
                              fix="Pass e.g. tolerance=1e-6.")
    want = np.asarray(list(expected) if not isinstance(expected, np.ndarray) else expected, dtype="float64")
    if want.shape != (len(golden_df),):
        raise ValidationError(f"check_golden: expected has shape {want.shape}, golden_df has {len(golden_df)} rows.",
                              fix="Pass one expected score per golden row.")
    got = predict_scores(model, golden_df)
    diff = np.abs(got - want)
    bad = np.isnan(diff) | (diff > tolerance)
    finite = diff[~np.isnan(diff)]
    worst = int(np.nanargmax(np.where(np.isnan(diff), np.inf, diff))) if len(diff) else None
    return GoldenReport(ok=not bool(bad.any()), rows=len(golden_df), failed_rows=int(bad.sum()),
                        max_abs_diff=float(finite.max()) if len(finite) else float("nan"),
                        tolerance=float(tolerance), worst_row=worst)

