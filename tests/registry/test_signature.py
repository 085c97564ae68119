"""Signatures, contract checks and golden-set checks against hand-computed expectations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from registry_helpers import fit_model, make_data, numeric

from mlops_kit.errors import DefinitionError, ValidationError
from mlops_kit.registry import ColumnSpec, ModelSignature, check_contract, check_golden, infer_signature


def frame():
    return pd.DataFrame({
        "amount": [1.5, 2.0, 10.0],
        "count": pd.array([1, 5, 3], dtype="int64"),
        "country": ["DE", "FR", "DE"],
        "flag": [True, False, True],
        "score": [0.1, None, 0.3],
    })


def test_infer_signature_records_names_dtypes_nullability_ranges_and_values():
    sig = infer_signature(frame(), outputs=np.array([0.2, 0.7, 0.4]))
    by = {c.name: c for c in sig.inputs}
    assert [c.name for c in sig.inputs] == ["amount", "count", "country", "flag", "score"]
    assert (by["amount"].dtype, by["amount"].minimum, by["amount"].maximum) == ("float64", 1.5, 10.0)
    assert (by["count"].dtype, by["count"].minimum, by["count"].maximum) == ("int64", 1.0, 5.0)
    assert by["country"].dtype == "string" and by["country"].allowed_values == ("DE", "FR")
    assert by["flag"].dtype == "bool" and by["flag"].allowed_values == (False, True)
    assert by["score"].nullable is True and by["amount"].nullable is False
    assert (by["score"].minimum, by["score"].maximum) == (0.1, 0.3)
    assert sig.outputs[0].name == "prediction" and sig.outputs[0].maximum == 0.7


def test_many_categories_are_not_enumerated():
    df = pd.DataFrame({"city": [f"c{i}" for i in range(30)]})
    assert infer_signature(df, max_categories=20).inputs[0].allowed_values is None
    assert len(infer_signature(df, max_categories=30).inputs[0].allowed_values) == 30


def test_contract_returns_every_violation_at_once():
    sig = infer_signature(frame())
    bad = pd.DataFrame({
        "amount": [0.5, 2.0, 11.0, 3.0],             # two out of range (0.5 < 1.5, 11 > 10)
        "count": ["1", "2", "3", "4"],               # dtype mismatch
        "country": ["DE", "ES", "IT", None],         # two unknown values, one null (not nullable)
        "flag": [True, True, False, True],
        "extra": [1, 2, 3, 4],                       # warning only
    })                                               # "score" missing
    report = check_contract(sig, bad)
    kinds = sorted((v.column, v.kind, v.rows) for v in report.violations)
    assert kinds == [("amount", "out_of_range", 2), ("count", "dtype_mismatch", 4),
                     ("country", "null_not_allowed", 1), ("country", "value_not_allowed", 2),
                     ("score", "missing_column", 0)]
    assert not report.ok
    assert len(report.warnings) == 1 and "extra" in report.warnings[0]
    assert list(bad.columns) == ["amount", "count", "country", "flag", "extra"]  # nothing dropped


def test_contract_accepts_ints_for_floats_and_passes_clean_data():
    sig = infer_signature(frame())
    ok = frame().assign(amount=pd.array([2, 3, 4], dtype="int64"))
    assert check_contract(sig, ok).ok
    assert check_contract(sig, frame()).to_dict()["violations"] == []


def test_contract_range_edges_are_inclusive():
    sig = ModelSignature(inputs=(ColumnSpec(name="x", dtype="float64", nullable=False, minimum=0.0, maximum=1.0),))
    assert check_contract(sig, pd.DataFrame({"x": [0.0, 1.0]})).ok
    assert not check_contract(sig, pd.DataFrame({"x": [np.nextafter(1.0, 2.0)]})).ok


def test_golden_check_within_and_beyond_tolerance():
    model, X = fit_model(0)
    golden = X.head(20)
    recorded = model.predict_proba(golden)[:, 1]
    assert check_golden(model, golden, recorded, tolerance=0.0).ok
    shifted = recorded.copy()
    shifted[[3, 7]] += [1e-3, -2e-3]
    report = check_golden(model, golden, shifted, tolerance=5e-4)
    assert (report.ok, report.failed_rows, report.worst_row) == (False, 2, 7)
    assert report.max_abs_diff == pytest.approx(2e-3, rel=1e-6)
    assert check_golden(model, golden, shifted, tolerance=3e-3).ok


def test_signature_round_trips_through_json():
    sig = infer_signature(frame(), outputs=np.array([0.2, 0.7, 0.4]))
    again = ModelSignature.from_dict(json.loads(json.dumps(sig.to_dict(), sort_keys=True)))
    assert again == sig


@pytest.mark.parametrize("call", [
    lambda: infer_signature(pd.DataFrame()),
    lambda: infer_signature([1, 2, 3]),
    lambda: infer_signature(frame(), max_categories=-1),
    lambda: infer_signature(pd.DataFrame({"o": [object(), object()]})),
    lambda: check_contract("not a signature", frame()),
    lambda: check_contract(infer_signature(frame()), {"amount": [1]}),
    lambda: check_golden(fit_model(0)[0], pd.DataFrame(), []),
    lambda: check_golden(fit_model(0)[0], numeric(make_data(0, 5)[0]), [0.1, 0.2]),
    lambda: check_golden(fit_model(0)[0], numeric(make_data(0, 5)[0]), [0.1] * 5, tolerance=-1),
])
def test_bad_input_is_refused_with_a_fix(call):
    with pytest.raises(ValidationError) as info:
        call()
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize("kwargs", [
    dict(name="", dtype="float64"), dict(name="x", dtype="float32"), dict(name="x", dtype="int64", nullable="no"),
    dict(name="x", dtype="int64", minimum=5, maximum=1), dict(name="x", dtype="int64", minimum=float("nan")),
])
def test_column_spec_validates(kwargs):
    with pytest.raises(DefinitionError):
        ColumnSpec(**kwargs)


def test_signature_validates():
    with pytest.raises(DefinitionError):
        ModelSignature(inputs=())
    spec = ColumnSpec(name="x", dtype="int64")
    with pytest.raises(DefinitionError):
        ModelSignature(inputs=(spec, spec))
