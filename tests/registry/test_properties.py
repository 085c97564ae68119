"""Property tests against independent oracles: chain tampering and contract range checks."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from mlops_kit.registry import ColumnSpec, ModelSignature, check_contract, verify_chain_export


def build_chain(payloads: list[int]) -> list[dict]:
    """An independent builder of a valid chain (plain hashlib + json)."""
    prev, rows = "0" * 64, []
    for seq, value in enumerate(payloads, start=1):
        row = {"seq": seq, "at": f"2024-01-01T00:00:{seq % 60:02d}+00:00", "actor": f"u{value % 3}",
               "action": "promote", "payload": {"v": value}, "prev_hash": prev}
        row["hash"] = hashlib.sha256(json.dumps(row, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        rows.append(row)
        prev = row["hash"]
    return rows


def verify_rows(rows: list[dict]):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chain.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return verify_chain_export(path)


@given(payloads=st.lists(st.integers(0, 10**6), min_size=2, max_size=30, unique=True), data=st.data())
def test_any_single_mutation_of_a_chain_is_detected_at_or_before_it(payloads, data):
    rows = build_chain(payloads)
    assert verify_rows(rows).ok
    n = len(rows)
    kind = data.draw(st.sampled_from(["edit", "delete", "insert", "swap"]))
    i = data.draw(st.integers(0, n - 2))  # not the last entry: truncating the tail needs the anchor
    mutated = [dict(r) for r in rows]
    if kind == "edit":
        mutated[i]["payload"] = {"v": rows[i]["payload"]["v"] + 1}
    elif kind == "delete":
        del mutated[i]
    elif kind == "insert":
        mutated.insert(i, dict(rows[i]))
    else:
        j = data.draw(st.integers(i + 1, n - 1))
        mutated[i], mutated[j] = mutated[j], mutated[i]
    result = verify_rows(mutated)
    assert not result.ok
    assert result.first_broken_seq is not None and result.first_broken_seq <= i + 2


@given(
    low=st.floats(-100, 100), width=st.floats(0, 100),
    values=st.lists(st.one_of(st.none(), st.floats(-300, 300)), min_size=1, max_size=40),
    nullable=st.booleans(),
)
def test_contract_counts_match_a_plain_loop(low, width, values, nullable):
    spec = ColumnSpec(name="x", dtype="float64", nullable=nullable, minimum=low, maximum=low + width)
    report = check_contract(ModelSignature(inputs=(spec,)), pd.DataFrame({"x": np.array(
        [np.nan if v is None else v for v in values], dtype="float64")}))
    out_of_range = sum(1 for v in values if v is not None and (v < low or v > low + width))
    nulls = sum(1 for v in values if v is None)
    got = {v.kind: v.rows for v in report.violations}
    assert got.get("out_of_range", 0) == out_of_range
    assert got.get("null_not_allowed", 0) == (0 if nullable else nulls)
    assert report.ok == (out_of_range == 0 and (nullable or nulls == 0))
