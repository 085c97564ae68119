"""The grader: scores, integrity (tamper tests), copies, the CLI's exit status."""

from __future__ import annotations

import json
import shutil

import pytest

from mlops_kit.cli import main
from mlops_kit.evidence import grade_pack, verify_pack

from .conftest import chain_lines, write_chain


def _by_id(report):
    return {r["id"]: r for r in report.results}


def test_manifest_records_the_audit_head(pack):
    from .conftest import chain_lines

    manifest = json.loads((pack / "manifest.json").read_text())
    head = chain_lines(4)[-1]["hash"]
    assert manifest["audit_head"] == {"file": "ch04/audit_export.jsonl", "hash": head, "entries": 4}
    assert manifest["audit_exports"] == {"ch04/audit_export.jsonl": manifest["audit_head"]}


def test_intact_pack_scores_what_was_recorded(pack):
    report = grade_pack(pack)
    rows = _by_id(report)
    assert report.integrity_ok
    assert rows["P.integrity"]["level"] == 4
    for cid in ("C1.run", "C1.checks", "C3.run", "C3.checks", "C3.1", "C4.1", "C4.checks"):
        assert rows[cid]["level"] == 4, rows[cid]
    # 2 of 3 right = 67 % -> partial (hand-counted against the fixture key B, A, C)
    assert rows["C1.quiz"]["level"] == 2 and "2 of 3 right" in rows["C1.quiz"]["why"]
    assert rows["C1.quiz"]["awarded"] == rows["C1.quiz"]["points"] / 2
    # chapter 3 recorded no quiz: graded 0, not an error
    assert rows["C3.quiz"]["level"] == 0
    assert rows["C2.run"]["status"] == "not-built" and rows["C2.run"]["awarded"] == 0
    expected = sum(r["points"] * r["level"] / 4 for r in report.results if r["status"] == "graded")
    assert report.points == pytest.approx(expected)
    assert report.max_points == sum(r["points"] for r in report.results
                                    if r["chapter"] in (None, 1, 3, 4))
    score = json.loads((pack / "score.json").read_text())
    assert score["points"] == report.points and score["integrity"]["ok"] is True
    assert "| C4.1 |" in (pack / "SCORE.md").read_text()


def _problems(pack):
    return {(p.kind, p.path) for p in verify_pack(pack)}


def test_edited_json_value_is_named(pack):
    path = pack / "ch01" / "summary.json"
    path.write_text(path.read_text().replace('"a": 1', '"a": 2'))
    assert _problems(pack) == {("edited", "ch01/summary.json")}
    rows = _by_id(grade_pack(pack))
    assert rows["P.integrity"]["level"] == 0 and "ch01/summary.json" in rows["P.integrity"]["why"]
    # the completion marker's own hashes catch it too
    assert rows["C1.checks"]["level"] == 2


def test_replaced_figure_is_named(pack):
    (pack / "ch01" / "line.png").write_bytes(b"\x89PNG\r\n\x1a\nnot the figure")
    assert _problems(pack) == {("edited", "ch01/line.png")}


def test_deleted_and_added_files_are_named(pack):
    (pack / "ch03" / "drift_current.csv").unlink()
    (pack / "ch03" / "extra.csv").write_text("x\n1\n")
    assert _problems(pack) == {("missing", "ch03/drift_current.csv"), ("extra", "ch03/extra.csv")}
    rows = _by_id(grade_pack(pack))
    assert rows["C3.1"]["level"] == 0 and "drift_current.csv is missing" in rows["C3.1"]["why"]


def test_edited_audit_export_is_named_and_the_chain_breaks(pack):
    entries = chain_lines(4)
    entries[1]["actor"] = "mallory"  # edit entry 2, keep its stored hash
    write_chain(pack / "ch04" / "audit_export.jsonl", entries)
    assert _problems(pack) == {("edited", "ch04/audit_export.jsonl")}
    rows = _by_id(grade_pack(pack))
    assert rows["C4.1"]["level"] == 0 and "line 2" in rows["C4.1"]["why"]


def test_consistently_rewritten_audit_export_is_caught_by_the_recorded_head(pack):
    write_chain(pack / "ch04" / "audit_export.jsonl", chain_lines(3))  # a valid, shorter chain
    rows = _by_id(grade_pack(pack))
    assert rows["C4.1"]["level"] == 0 and "differs from the manifest" in rows["C4.1"]["why"]


def test_false_psi_claim_scores_zero(pack):
    path = pack / "ch03" / "drift_psi.json"
    claim = json.loads(path.read_text())
    claim["features"][0]["psi"] = 0.01
    path.write_text(json.dumps(claim))
    rows = _by_id(grade_pack(pack))
    assert rows["C3.1"]["level"] == 0 and "stated 0.0100" in rows["C3.1"]["why"]


def test_edited_manifest_is_named(pack):
    data = (pack / "ch01" / "summary.json").read_text().replace('"a": 1', '"a": 5')
    (pack / "ch01" / "summary.json").write_text(data)
    manifest = json.loads((pack / "manifest.json").read_text())
    import hashlib

    manifest["files"]["ch01/summary.json"] = hashlib.sha256(data.encode()).hexdigest()
    (pack / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    kinds = [(p.kind, p.path, p.detail) for p in verify_pack(pack)]
    assert {k[:2] for k in kinds} == {("manifest", "manifest.json")}
    assert any("manifest.sha256" in k[2] for k in kinds)
    assert any("self_sha256" in k[2] for k in kinds)


def test_missing_manifest_is_reported_not_raised(pack):
    (pack / "manifest.json").unlink()
    report = grade_pack(pack)
    assert [p.kind for p in report.problems] == ["manifest"]
    assert _by_id(report)["P.integrity"]["level"] == 0


def test_expected_manifest_hash_anchors_a_rebuilt_pack(pack):
    recorded = (pack / "manifest.sha256").read_text().split()[0]
    assert verify_pack(pack, expect_manifest_sha256=recorded) == []
    problems = verify_pack(pack, expect_manifest_sha256="f" * 64)
    assert [p.kind for p in problems] == ["manifest"]


def test_a_copied_pack_grades_the_same(pack, tmp_path):
    first = grade_pack(pack).to_dict()
    copy = shutil.copytree(pack, tmp_path / "elsewhere" / "pack-copy")
    shutil.rmtree(pack)
    second = grade_pack(copy).to_dict()
    assert second == first
    assert str(tmp_path) not in (copy / "score.json").read_text()


def test_cli_exit_status_and_min_score(pack, capsys):
    assert main(["grade", str(pack)]) == 0
    assert main(["grade", str(pack), "--min-score", "100"]) == 1
    assert main(["grade", str(pack), "--json"]) == 0
    assert '"points"' in capsys.readouterr().out
    (pack / "ch01" / "run.json").unlink()
    assert main(["grade", str(pack)]) == 1
    assert "INTEGRITY missing: ch01/run.json" in capsys.readouterr().out


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mlops-kit: error:") and "Fix:" in err[0]
    assert main(["grade", str(tmp_path), "--min-score", "120"]) == 2


def test_chapter_quiz_and_mock_exam_scored_against_the_shipped_keys(tmp_path):
    from mlops_kit.evidence import Recorder, load_bank, write_manifest

    chapter, exam = load_bank("ch06"), load_bank("mock_exam")
    answers = {q.id: q.answer for q in chapter.questions}
    wrong = {"A": "B", "B": "C", "C": "D", "D": "A"}
    exam_answers = {q.id: q.answer for q in exam.questions}
    n_exam = len(exam.questions)
    for q in exam.questions[: n_exam // 2 + 1]:  # just over half wrong -> below 50 %
        exam_answers[q.id] = wrong[q.answer]
    pack = tmp_path / "pack"
    rec = Recorder(6, evidence_dir=pack, seed=0, scale=1, quiz_answers={**answers, **exam_answers})
    rec.quiz()
    rec.quiz("mock_exam")
    rec.check("6.1", True)
    rec.complete()
    write_manifest(pack, chapters={"6": {"notebook": "06_x.ipynb", "status": "ok"}}, parameters={})
    rows = _by_id(grade_pack(pack))
    assert rows["C6.quiz"]["level"] == 4
    right = n_exam - (n_exam // 2 + 1)
    expected = 4 if right / n_exam >= 0.8 else 2 if right / n_exam >= 0.4 else 0
    assert rows["C6.exam"]["level"] == expected
    assert f"{right} of {n_exam} right" in rows["C6.exam"]["why"]
