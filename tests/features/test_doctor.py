"""``store.verify()`` / ``mlops-kit doctor``: a deliberately broken workspace is reported exactly."""

from __future__ import annotations

import json
import sqlite3
import pytest

from mlops_kit import cli
from mlops_kit._sqlite import write_transaction
from mlops_kit.errors import ConcurrentWriteError
from mlops_kit.features import FeatureStore

from . import concurrency_workers as W
from .helpers import T0, at


@pytest.fixture
def store(tmp_path):
    s = FeatureStore(tmp_path / "ws", clock=W.NOW)
    s.apply([W.USER, W.plain_view("u")])
    for r in range(3):
        s.ingest("u", W.batch(0, r, day=r))  # one file per ingest, on days 0, 1, 2
    s.materialize(T0, at(24 * 5))
    yield s
    s.close()


def kinds(report) -> list[str]:
    return sorted(p.kind for p in report.problems)


def test_a_healthy_workspace_has_no_problem(store, capsys):
    report = store.verify()
    assert report.ok and report.files_checked == 3 and report.files_unverified == 0
    assert report.online_views_checked == 1
    store.close()
    assert cli.main(["doctor", str(store.workspace.root)]) == 0
    assert "No problems found." in capsys.readouterr().out


def test_deleted_orphan_and_edited_files_are_each_named(store, capsys):
    files = store.offline_files("u")
    files[0].unlink()                                        # a committed file deleted
    orphan = files[1].parent / "part-stray.parquet"
    orphan.write_bytes(files[1].read_bytes())                # an orphan copied in by hand
    data = bytearray(files[2].read_bytes())
    data[-40] ^= 0xFF                                        # an edited file (same size)
    files[2].write_bytes(bytes(data))
    report = store.verify()
    rel = [str(f.relative_to(store.workspace.offline_dir)) for f in files]
    assert [p.where for p in report.of_kind("missing_file")] == [rel[0]]
    assert [p.where for p in report.of_kind("edited_file")] == [rel[2]]
    assert [p.where for p in report.of_kind("orphan_file")] == [str(orphan.relative_to(store.workspace.root))]
    # the online rows of the lost and the edited file no longer match readable offline data
    assert set(kinds(report)) == {"missing_file", "edited_file", "orphan_file", "online_row_not_offline"}
    store.close()
    assert cli.main(["doctor", str(store.workspace.root), "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["ok"] is False and len(printed["problems"]) == len(report.problems)

    assert cli.main(["doctor", str(store.workspace.root), "--repair"]) == 1  # missing/edited remain
    out = capsys.readouterr().out
    assert "quarantined offline/u/v1/" in out and "missing_file" in out
    moved = store.workspace.root / "quarantine" / "repair-0001" / orphan.relative_to(store.workspace.root)
    assert moved.read_bytes() == files[1].read_bytes() and not orphan.exists()
    with FeatureStore(store.workspace.root) as again:
        after = again.verify()
        assert not after.of_kind("orphan_file")
        assert after.of_kind("missing_file") and after.of_kind("edited_file")  # never invented
        assert again.meta.all_manifest_rows()[0][2] == rel[0]  # the manifest row is kept


def test_online_rows_ahead_of_the_watermark_are_reported(store):
    store.meta._con.execute("UPDATE materialization_watermarks SET watermark_us = watermark_us - ?",
                            (5 * 86_400_000_000 - 3_600_000_000,))  # watermark pulled back to T0 + 1 h
    assert "online_ahead_of_watermark" in kinds(store.verify())


def test_online_rows_of_a_view_never_materialized_are_reported(store):
    store.meta._con.execute("DELETE FROM materialization_watermarks")
    assert kinds(store.verify()) == ["online_without_watermark"]


def test_a_corrupt_database_is_reported(tmp_path):
    s = FeatureStore(tmp_path / "ws", clock=W.NOW)
    s.apply([W.USER, W.plain_view("u")])
    s.close()
    (tmp_path / "ws" / "registry.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with FeatureStore(tmp_path / "ws") as again:
        assert kinds(again.verify()) == ["database_corrupt"]


def test_doctor_refuses_a_folder_that_is_not_a_workspace(tmp_path, capsys):
    assert cli.main(["doctor", str(tmp_path / "nowhere")]) == 2
    assert "is not a workspace" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()  # nothing created


def test_a_lock_held_past_the_wait_is_a_retryable_concurrent_write_error(tmp_path):
    path = tmp_path / "x.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (v)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    with pytest.raises(ConcurrentWriteError, match="ingest test: another process kept") as caught:
        with write_transaction(waiter, what="ingest test", attempts=2, pause_s=0.01):
            waiter.execute("INSERT INTO t VALUES (1)")
    assert caught.value.retryable and "Retry" in str(caught.value)
    holder.execute("ROLLBACK")
    with write_transaction(waiter, what="ingest test"):  # free again: the same call succeeds
        waiter.execute("INSERT INTO t VALUES (1)")
    assert holder.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_an_ingest_that_fails_after_its_renames_removes_only_its_own_files(store):
    before = {p.name for p in store.workspace.offline_dir.rglob("*.parquet")}

    def fail_before_commit(i):
        if i == 1:  # one file, already renamed: i == number of files is "just before the commit"
            raise OSError("injected")

    with pytest.raises(OSError, match="injected"):
        store.ingest("u", W.batch(5, 0, day=9), _before_publish=fail_before_commit)
    assert {p.name for p in store.workspace.offline_dir.rglob("*.parquet")} == before
    assert store.meta.reservations() == [] and store.verify().ok
    assert len(store.read_offline("u")) == 15
