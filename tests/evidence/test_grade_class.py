"""``grade_class``: a class folder with one case of every flag, graded into a gradebook.

Packs are recorded in-process (``conftest.make_pack``) and given run-unique executed
notebooks and a build time, as a real build has; the class folder then holds an honest
folder pack, an honest zip, a renamed copy (tar.gz), a tampered pack, a pack built for
another learner, a late one, a corrupt zip, two hostile archives, a stray file and a
roster id without a submission. A pack given a learner records that learner's world in every
``run.json`` as ``--learner`` does; these packs hold no rows of a generated world, so the
world check has no raw artifact to compare (``unchecked``), and the real world check is
tested on real learner packs in ``test_world_check``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_kit.cli import main
from mlops_kit.errors import ValidationError
from mlops_kit.evidence import external_references, grade_class, grade_pack, write_manifest
from mlops_kit.evidence.learners import derive_seed
from mlops_kit.evidence.submissions import Submission, UnreadableSubmission, open_submission

from .conftest import make_pack

DEADLINE = datetime(2026, 12, 18, 23, 59, tzinfo=UTC)


def _honest(root: Path, run: str, *, built_at: str, learner: str | None = None, answers=None) -> Path:
    make_pack(root, answers=answers)
    manifest = json.loads((root / "manifest.json").read_text())
    for page in (root / "notebooks").iterdir():                 # what papermill's timestamps do
        page.write_text(json.dumps({"run": run, "page": page.name}), encoding="utf-8")
    params = {"seed": 3, "scale": 1, **({"learner": learner} if learner else {})}
    if learner:                                                 # what a --learner build records
        params.update(seed=derive_seed(learner), seed_source="learner")
        for run in root.glob("ch0*/run.json"):
            record = json.loads(run.read_text())
            run.write_text(json.dumps({**record, "learner": learner, "seed": params["seed"], "seed_source": "learner"}))
    write_manifest(root, chapters=manifest["chapters"], parameters=params, built_at=built_at)
    return root


def _zip(folder: Path, target: Path, prefix: str = "") -> None:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())


def _tar(folder: Path, target: Path) -> None:
    with tarfile.open(target, "w:gz") as archive:
        archive.add(folder, arcname=folder.name)


@pytest.fixture()
def klass(tmp_path, test_bank_dir):
    subs, work = tmp_path / "subs", tmp_path / "work"
    subs.mkdir()
    answers = {"t1.1": "B", "t1.2": "A", "t1.3": "D"}
    _honest(subs / "ada", "run-ada", built_at="2026-12-10T10:00:00+00:00", learner="ada", answers=answers)
    _honest(work / "bob", "run-bob", built_at="2026-12-11T10:00:00+00:00", learner="bob", answers=answers)
    _zip(work / "bob", subs / "bob.zip", prefix="bob/")         # the pack in one top-level folder
    shutil.copytree(subs / "ada", work / "cy")                   # ada's run, handed in by cy
    _tar(work / "cy", subs / "cy.tar.gz")
    _honest(subs / "dee", "run-dee", built_at="2026-12-12T10:00:00+00:00", learner="dee", answers=answers)
    (subs / "dee" / "ch01" / "summary.json").write_text('{"a": 1, "b": 3}')   # edited after the build
    _honest(subs / "eve", "run-eve", built_at="2026-12-12T11:00:00+00:00", learner="ada", answers=answers)
    _honest(subs / "fay", "run-fay", built_at="2026-12-20T08:00:00+00:00", learner="fay", answers=answers)   # late
    (subs / "gus.zip").write_bytes(b"PK\x03\x04 this is not a zip file")
    with zipfile.ZipFile(subs / "hal.zip", "w") as archive:      # escapes the extraction folder
        archive.writestr("manifest.json", "{}")
        archive.writestr("../../escaped.txt", "outside")
    link_src = work / "ivy"
    link_src.mkdir()
    (link_src / "manifest.json").write_text("{}")
    (link_src / "secret").symlink_to("/etc/hostname")
    _tar(link_src, subs / "ivy.tar.gz")
    (subs / "notes.txt").write_text("not a pack")
    (subs / "roster.csv").write_text("id,name,section\nada,Ada L,A\nbob,Bob K,B\nzed,Zed Q,B\n")
    return subs, tmp_path


def test_every_row_and_every_flag(klass):
    subs, tmp = klass
    result = grade_class(subs, tmp / "book", jobs=1, deadline=DEADLINE)
    rows = {r["id"]: r for r in result.rows}
    assert set(rows) == {"ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "notes.txt", "zed"}
    for learner in ("ada", "bob", "cy", "dee", "eve", "fay"):
        expected = grade_pack(subs / learner if (subs / learner).is_dir() else tmp / "work" / learner, write=False)
        assert rows[learner]["status"] == "graded"
        assert rows[learner]["points"] == expected.points                       # the same grader, per pack
        assert rows[learner]["criteria"] == {r["id"]: r["awarded"] for r in expected.results}
    assert (rows["ada"]["name"], rows["ada"]["section"]) == ("Ada L", "A")
    assert rows["zed"]["status"] == "missing"
    assert "corrupt archive" in rows["gus"]["reason"]
    assert "unsafe path" in rows["hal"]["reason"] and "link" in rows["ivy"]["reason"]
    assert "not a pack" in rows["notes.txt"]["reason"]
    assert not (tmp / "escaped.txt").exists() and not (tmp / "book" / "escaped.txt").exists()

    flags = result.flags
    assert [g["learners"] for g in flags["identical_evidence"]] == [["ada", "cy"]]
    assert [f["learner"] for f in flags["tampered"]] == ["dee"]
    # cy handed in ada's pack (its manifest names ada), eve built hers as ada
    assert [(f["learner"], f["pack_learner"]) for f in flags["world_mismatch"]] == [("cy", "ada"), ("eve", "ada")]
    assert [f["learner"] for f in flags["late"]] == ["fay"] and flags["late"][0]["late_by_h"] == pytest.approx(32.02, abs=0.01)
    assert [f["learner"] for f in flags["missing"]] == ["zed"]
    assert sorted(f["learner"] for f in flags["unreadable"]) == ["gus", "hal", "ivy", "notes.txt"]
    assert rows["bob"].get("flags", []) == []                                  # no false flag on an honest pack
    assert rows["bob"]["world"] == {"status": "unchecked", "seed": derive_seed("bob"),
                                    "detail": "no world artifact to check"}       # no generated rows to compare
    assert flags["world_mismatch"][0]["detail"].startswith("the pack was built for 'ada'; chapters 1, 3, 4: built for 'ada', not 'cy'")
    assert result.ungraded == 4
    assert json.loads((tmp / "book" / "flags.json").read_text()) == flags
    assert (tmp / "book" / "ada" / "SCORE.md").read_text().startswith("# Evidence pack score")
    assert not (subs / "ada" / "score.json").exists()                         # submissions are never written to


def test_gradebook_csv_canvas_csv_and_an_offline_index(klass):
    subs, tmp = klass
    result = grade_class(subs, tmp / "book", jobs=1, fmt="canvas", assignment="Practicum")
    table = list(csv.DictReader(io.StringIO((tmp / "book" / "gradebook.csv").read_text())))
    ids = [c["id"] for c in result.criteria]
    assert list(table[0]) == ["id", "name", "section", "status", "total", "max_points", "percent", *ids, "flags", "reason"]
    ada = next(r for r in table if r["id"] == "ada")
    assert float(ada["total"]) == sum(float(ada[i]) for i in ids)
    assert float(ada["max_points"]) == sum(c["points"] for c in result.criteria)
    assert next(r for r in table if r["id"] == "cy")["flags"] == "identical_evidence;world_mismatch"
    canvas = list(csv.reader(io.StringIO((tmp / "book" / "canvas.csv").read_text())))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Practicum"]
    assert canvas[1][0] == "Points Possible" and float(canvas[1][5]) == sum(c["points"] for c in result.criteria)
    by_login = {row[3]: row for row in canvas[2:]}
    assert by_login["ada"][0] == "Ada L" and float(by_login["ada"][5]) == float(ada["total"])
    assert by_login["zed"][5] == "" and by_login["gus"][5] == ""               # no zero written for no grade
    page = (tmp / "book" / "index.html").read_text()
    assert external_references(page) == [] and "<script" not in page
    assert 'href="ada/SCORE.md"' in page and "identical evidence" in page and "<svg" in page


def test_resume_skips_unchanged_packs_and_regrades_changed_ones(klass):
    subs, tmp = klass
    first = grade_class(subs, tmp / "book", jobs=1)
    again = grade_class(subs, tmp / "book", jobs=1, resume=True)
    assert again.resumed == 6 and again.rows == first.rows
    (subs / "ada" / "ch01" / "summary.json").write_text('{"a": 9, "b": 2}')
    third = grade_class(subs, tmp / "book", jobs=1, resume=True)
    assert third.resumed == 5
    assert "ada" in {f["learner"] for f in third.flags["tampered"]}


def test_two_workers_grade_like_one(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for n, learner in enumerate(("ann", "ben", "cat")):
        _honest(subs / learner, f"run-{learner}", built_at=f"2026-12-1{n}T09:00:00+00:00")
    one = grade_class(subs, tmp_path / "one", jobs=1)
    two = grade_class(subs, tmp_path / "two", jobs=2)
    assert [r["status"] for r in two.rows] == ["graded"] * 3
    assert two.rows == one.rows and two.flags == one.flags


def test_cli_exit_status_counts_the_packs_that_could_not_be_graded(klass, capsys):
    subs, tmp = klass
    status = main(["grade-class", str(subs), "--out", str(tmp / "cli"), "--jobs", "1",
                   "--deadline", "2026-12-18T23:59:00+00:00", "--format", "canvas"])
    assert status == 4
    assert "4 could not be graded" in capsys.readouterr().out
    assert (tmp / "cli" / "canvas.csv").exists()
    with pytest.raises(SystemExit):
        main(["grade-class", str(subs), "--out", str(tmp / "x"), "--deadline", "2026-12-18"])  # no zone


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValidationError, match="not a folder"):
        grade_class(tmp_path / "nope", tmp_path / "book")
    (tmp_path / "subs").mkdir()
    with pytest.raises(ValidationError, match="--jobs"):
        grade_class(tmp_path / "subs", tmp_path / "book", jobs=0)
    with pytest.raises(ValidationError, match="zone"):
        grade_class(tmp_path / "subs", tmp_path / "book", deadline=datetime(2026, 12, 1))
    (tmp_path / "subs" / "roster.csv").write_text("name,section\nAda,A\n")
    with pytest.raises(ValidationError, match="no 'id' column"):
        grade_class(tmp_path / "subs", tmp_path / "book")
    assert not (tmp_path / "book").exists()


def test_an_archive_too_large_uncompressed_is_refused_unread(tmp_path):
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", "{}")
        archive.writestr("blob.bin", b"\0" * (4 << 20))                    # 4 MiB of zeros: a tiny zip
    with pytest.raises(UnreadableSubmission, match="MiB uncompressed"):
        open_submission(Submission("big", big, "zip"), tmp_path / "x", max_bytes=1 << 20)
    assert not (tmp_path / "x" / "blob.bin").exists()


def test_a_pack_built_without_a_learner_is_a_world_mismatch(tmp_path, test_bank_dir):
    subs = tmp_path / "subs"
    subs.mkdir()
    _honest(subs / "ann", "run-ann", built_at="2026-12-10T09:00:00+00:00")           # no --learner: seed 3
    _honest(subs / "ben", "run-ben", built_at="2026-12-10T09:00:00+00:00", learner="ben")
    result = grade_class(subs, tmp_path / "book", jobs=1)
    assert [f["learner"] for f in result.flags["world_mismatch"]] == ["ann"]
    detail = result.flags["world_mismatch"][0]["detail"]
    assert detail.startswith("chapters 1, 3, 4: built without --learner (seed 3), not on the world of 'ann'")
    assert {r["id"]: r["world"]["status"] for r in result.rows} == {"ann": "mismatch", "ben": "unchecked"}
