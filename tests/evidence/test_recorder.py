"""Recorder: artifacts, checks that raise, atomic writes, partial evidence, completion."""

from __future__ import annotations

import hashlib
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mlops_kit.errors import CheckFailedError, EvidenceError, ValidationError  # noqa: E402
from mlops_kit.evidence import Recorder, start_chapter  # noqa: E402
from mlops_kit.evidence.layout import WORK_ENV  # noqa: E402


@pytest.fixture
def rec(tmp_path):
    return start_chapter(2, evidence_dir=tmp_path / "ev", seed=5, scale=1)


def test_run_json_and_layout(rec, tmp_path):
    assert rec.dir == (tmp_path / "ev" / "ch02").resolve()
    run = json.loads((rec.dir / "run.json").read_text())
    assert run == {"chapter": 2, "seed": 5, "scale": 1, "kit_version": "0.1.0",
                   "quiz_answers_given": False, "learner": None, "seed_source": "explicit"}


def test_save_json_sorts_keys_and_refuses_nan(rec):
    path = rec.save_json("metrics", {"b": 1, "a": {"d": 2, "c": np.float64(0.5)}})
    assert path.read_text() == '{\n  "a": {\n    "c": 0.5,\n    "d": 2\n  },\n  "b": 1\n}\n'
    with pytest.raises(ValidationError, match="NaN"):
        rec.save_json("bad", {"x": float("nan")})
    assert not (rec.dir / "bad.json").exists()


def test_save_table_csv_and_parquet_and_size_limit(rec):
    df = pd.DataFrame({"x": [1, 2], "y": [0.1, 0.2]})
    assert rec.save_table("s", df).read_text() == "x,y\n1,0.1\n2,0.2\n"
    assert pd.read_parquet(rec.save_table("s.parquet", df)).equals(df)
    with pytest.raises(ValidationError, match="max_rows"):
        rec.save_table("big", pd.DataFrame({"x": range(11)}), max_rows=10)
    with pytest.raises(ValidationError, match="must end with"):
        rec.save_table("s.xlsx", df)


def test_figures_are_byte_reproducible_without_software_metadata(rec):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [2, 0, 1])
    first = rec.save_figure("fig", fig).read_bytes()
    second = rec.save_figure("fig", fig).read_bytes()
    plt.close(fig)
    assert first == second and first.startswith(b"\x89PNG")
    assert b"Software" not in first and b"matplotlib" not in first.lower()


def test_bad_names_and_reserved_names_are_refused(rec):
    for name in ("../x", "a/b", "", ".hidden", "checks.json"):
        with pytest.raises(ValidationError):
            rec.save_json(name, {})
    with pytest.raises(ValidationError, match="reserved"):
        rec.save_json("complete", {})


def test_check_records_then_raises_with_what_to_look_at(rec):
    rec.check("a", True, observed=1, threshold=1, detail="first")
    with pytest.raises(CheckFailedError) as info:
        rec.check("b", np.bool_(False), observed=0.3, threshold=0.1, detail="gap too big",
                  look_at="the as-of join in exercise 2.2")
    assert "gap too big" in str(info.value) and "exercise 2.2" in str(info.value)
    stored = json.loads((rec.dir / "checks.json").read_text())["checks"]
    assert [(c["id"], c["passed"]) for c in stored] == [("a", True), ("b", False)]
    with pytest.raises(CheckFailedError, match="checks failed"):
        rec.complete()
    assert not (rec.dir / "complete.json").exists()


def test_check_refuses_non_bool_and_rerun_replaces(rec):
    with pytest.raises(ValidationError, match="must be a bool"):
        rec.check("x", 1)
    rec.check("x", True)
    rec.check("x", True, observed=2)
    assert [c["observed"] for c in rec.checks] == [2]


def test_checks_file_is_written_atomically(rec, monkeypatch):
    rec.check("a", True)
    before = (rec.dir / "checks.json").read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rec.check("b", True)
    monkeypatch.undo()
    assert (rec.dir / "checks.json").read_bytes() == before
    assert [p.name for p in rec.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_complete_lists_checks_and_artifact_hashes(rec):
    rec.check("a", True)
    path = rec.save_markdown("runbook", "# Runbook")
    rec.assumptions(allowed_staleness_h=24)
    rec.note("late events arrive within 3 days")
    rec.complete()
    marker = json.loads((rec.dir / "complete.json").read_text())
    assert marker["checks"] == [{"id": "a", "passed": True}]
    assert marker["artifacts"]["runbook.md"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(marker["artifacts"]) == {"run.json", "checks.json", "runbook.md",
                                        "assumptions.json", "notes.md"}


def test_complete_refuses_no_checks_and_unknown_quiz_ids(tmp_path):
    rec = start_chapter(1, evidence_dir=tmp_path, seed=0, scale=1)
    with pytest.raises(EvidenceError, match="no check"):
        rec.complete()
    rec = start_chapter(1, evidence_dir=tmp_path, seed=0, scale=1, quiz_answers={"q9.9": "A"})
    rec.check("a", True)
    with pytest.raises(EvidenceError, match="q9.9"):
        rec.complete()


def test_restart_clears_previous_evidence_and_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv(WORK_ENV, raising=False)
    first = start_chapter(3, evidence_dir=tmp_path, seed=0, scale=1)
    first.save_json("old", {})
    ws = first.workspace()
    assert ws.root == (tmp_path / "work" / "ch03" / "main").resolve()
    (ws.root / "state.sqlite").write_text("x")
    second = start_chapter(3, evidence_dir=tmp_path, seed=0, scale=1)
    assert not (second.dir / "old.json").exists()
    assert not (ws.root / "state.sqlite").exists()
    monkeypatch.setenv(WORK_ENV, str(tmp_path / "scratch"))
    third = start_chapter(3, evidence_dir=tmp_path, seed=0, scale=1)
    assert third.workspace("rebuild").root == (tmp_path / "scratch" / "ch03" / "rebuild").resolve()


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": -1}, "seed"), ({"seed": True}, "seed"), ({"scale": float("nan")}, "scale"),
    ({"quiz_answers": {"q1.1": "E"}}, "A, B, C, D"), ({"quiz_answers": ["A"]}, "dict"),
    ({"evidence_dir": ""}, "empty"),
])
def test_bad_parameters_are_refused_before_writing(tmp_path, kwargs, match):
    args = {"evidence_dir": tmp_path / "ev", "seed": 0, "scale": 1, **kwargs}
    with pytest.raises(ValidationError, match=match):
        Recorder(1, **args)
    assert not (tmp_path / "ev").exists()
    with pytest.raises(ValidationError):
        Recorder(0, evidence_dir=tmp_path / "ev", seed=0, scale=1)


class _FakeAudit:
    def export(self, path):
        path.write_text('{"seq": 1}\n')
        return path


class _FakeRegistry:
    audit = _FakeAudit()


def test_save_audit_export_uses_the_registry_export(rec):
    path = rec.save_audit_export(_FakeRegistry())
    assert path.name == "audit_export.jsonl" and path.read_text() == '{"seq": 1}\n'
    with pytest.raises(ValidationError):
        rec.save_audit_export(object())
