"""rubric.md parsing, rubric <-> grading-function parity, and the independent re-computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlops_kit.errors import DefinitionError
from mlops_kit.evidence import load_rubric, parse_rubric
from mlops_kit.evidence.grading import check_parity, psi_from_samples, verify_audit_export

from .conftest import chain_lines, write_chain

HEADER = "## Pack\n\n| id | points | levels | evidence | verifies |\n|---|---|---|---|---|\n"


def test_every_criterion_has_a_check_and_every_check_a_criterion():
    criteria = load_rubric()
    without_function, without_row = check_parity(criteria)
    assert without_function == [] and without_row == []
    assert {c.id for c in criteria} >= {"P.integrity", "C1.run", "C6.exam", "C3.1", "C4.1"}


def test_rubric_rows_parse_with_sections_and_escaped_pipes():
    text = (HEADER + "| P.a | 3 | 0 · 4 | `x\\|y` | z |\n\n## Chapter 2 — Title\n\n"
            "| id | points | levels | evidence | verifies |\n|---|---|---|---|---|\n"
            "| C2.1 | 4 | l | e | v |\n")
    rows = parse_rubric(text)
    assert [(r.id, r.chapter, r.points) for r in rows] == [("P.a", None, 3), ("C2.1", 2, 4)]
    assert rows[0].evidence == "`x|y`" and rows[1].section == "Chapter 2 — Title"


@pytest.mark.parametrize("body, match", [
    ("| P.a | 3 | l | e |\n", "expected 5 cells"),
    ("| P.a | 0 | l | e | v |\n", "positive integer"),
    ("| P.a | 2 | l | e | v |\n| P.a | 2 | l | e | v |\n", "duplicate"),
    ("| C1.a | 2 | l | e | v |\n", "is in section"),
    ("| bad id | 2 | l | e | v |\n", "must look like"),
    ("| P.a | 2 |  | e | v |\n", "must not be empty"),
])
def test_malformed_rows_are_refused_with_the_line(body, match):
    with pytest.raises(DefinitionError, match=match):
        parse_rubric(HEADER + body)
    with pytest.raises(DefinitionError, match="table header"):
        parse_rubric("## Pack\n\n| id | pts |\n")
    with pytest.raises(DefinitionError, match="no criteria"):
        parse_rubric("# nothing\n")


def test_psi_hand_computed_case():
    # reference 1..10, bins=2: edge = median 5.5; ref shares 0.5/0.5.
    # current [1,2,3,7,8,9,10,10,10,10]: 3 below, 7 at/above -> 0.3/0.7.
    ref = list(range(1, 11))
    cur = [1, 2, 3, 7, 8, 9, 10, 10, 10, 10]
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    value, n_bins = psi_from_samples(ref, cur, bins=2)
    assert n_bins == 2 and value == pytest.approx(expected, abs=1e-12)


def test_psi_edge_goes_right_and_empty_bin_floor():
    # edges from [0,0,0,1]: q(0.5)=0 -> one edge 0; bins (-inf,0), [0,inf). All of ref in bin 2.
    value, n_bins = psi_from_samples([0, 0, 0, 1], [-1, -1, 0, 0], bins=2)
    expected = (0.5 - 1e-4) * math.log(0.5 / 1e-4) + (0.5 - 1.0) * math.log(0.5 / 1.0)
    assert n_bins == 2 and value == pytest.approx(expected, abs=1e-12)


def test_psi_agrees_with_the_kits_implementation():
    from mlops_kit.quality import psi

    rng = np.random.default_rng(11)
    for shift in (0.0, 0.3, 1.0):
        ref, cur = rng.normal(0, 1, 500), rng.normal(shift, 1.2, 400)
        assert psi_from_samples(ref, cur)[0] == pytest.approx(psi(ref, cur), abs=1e-9)


def test_chain_verification_finds_each_kind_of_tamper(tmp_path):
    path = tmp_path / "audit.jsonl"
    good = chain_lines(5)
    write_chain(path, good)
    report = verify_audit_export(path)
    assert report.ok and report.entries == 5 and report.head == good[-1]["hash"]
    cases = {  # name: (entries, first line that must be reported)
        "edited": ([*good[:2], {**good[2], "actor": "eve"}, *good[3:]], 3),
        "deleted": ([*good[:2], *good[3:]], 3),
        "reordered": ([good[0], good[2], good[1], *good[3:]], 2),
        "inserted": ([*good[:2], good[1], *good[2:]], 3),
        "truncated head renumbered": ([{**good[1], "seq": 1}, *good[2:]], 1),
    }
    for name, (entries, line) in cases.items():
        write_chain(path, entries)
        report = verify_audit_export(path)
        assert not report.ok and report.broken_at == line, name
    path.write_text("")
    assert not verify_audit_export(path).ok
    assert "missing" in verify_audit_export(tmp_path / "none.jsonl").reason


def test_registry_export_matches_the_documented_contract(tmp_path):
    from mlops_kit.registry.audit import AuditLog
    from mlops_kit.registry.store import RegistryStore

    store = RegistryStore(tmp_path / "registry.sqlite")
    log = AuditLog(store)
    for n in range(3):
        with store.write() as conn:
            AuditLog.append(conn, at=f"2024-01-0{n + 1}T00:00:00+00:00", actor="ana",
                            action="promote", payload={"note": "café", "x": n + 0.5})
    path = log.export(tmp_path / "export.jsonl")
    report = verify_audit_export(path)
    assert report.ok and report.entries == 3 and report.head == log.head()
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert first["prev_hash"] == "0" * 64 and first["seq"] == 1


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(n=st.integers(1, 12), data=st.data())
def test_any_single_tamper_of_a_chain_is_detected(tmp_path_factory, n, data):
    entries = chain_lines(n)
    kind = data.draw(st.sampled_from(["edit", "delete", "swap", "duplicate"]))
    i = data.draw(st.integers(0, n - 1))
    if kind == "edit":
        field = data.draw(st.sampled_from(["actor", "action", "at", "payload"]))
        entries[i] = {**entries[i], field: {"changed": True} if field == "payload" else "x"}
    elif kind == "delete":
        del entries[i]
    elif kind == "swap":
        if n < 2:
            return
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        entries[i], entries[j] = entries[j], entries[i]
    else:
        entries.insert(i, entries[i])
    path = tmp_path_factory.mktemp("chain") / "audit.jsonl"
    write_chain(path, entries)
    report = verify_audit_export(path)
    if kind == "delete" and i == n - 1 and n > 1:  # dropping the tail leaves a valid chain:
        assert report.ok and report.head != chain_lines(n)[-1]["hash"]  # only the head shows it
    else:
        assert not report.ok


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200),
       st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200), st.integers(2, 12))
def test_psi_is_non_negative_and_zero_on_identical_samples(ref, cur, bins):
    assert psi_from_samples(ref, cur, bins=bins)[0] >= -1e-12
    assert psi_from_samples(ref, ref, bins=bins)[0] == pytest.approx(0.0, abs=1e-12)
