"""The shared foundation: error tree, UTC handling, clocks, atomic writes, workspace layout."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from mlops_kit import Workspace, errors
from mlops_kit._io import atomic_path, atomic_write_json, canonical_json, sha256_file
from mlops_kit._time import FixedClock, SimulatedClock, ensure_utc, ensure_utc_series


def test_every_error_derives_from_the_root():
    for name in errors.__all__:
        cls = getattr(errors, name)
        if name.endswith("Warning"):
            assert issubclass(cls, UserWarning)
        else:
            assert issubclass(cls, errors.MlopsKitError), name


def test_error_message_carries_the_fix_and_details():
    err = errors.SchemaError("column 'x' is missing.", fix="Add it.", column="x")
    assert str(err) == "column 'x' is missing. Fix: Add it."
    assert err.details == {"column": "x"}
    assert isinstance(err, ValueError)
    # KeyError subclasses must not repr() their message
    assert str(errors.NotFoundError("no view 'v'.")) == "no view 'v'."


def test_ensure_utc_refuses_naive_and_converts_offsets():
    with pytest.raises(errors.TimezoneError, match="tz_localize|replace"):
        ensure_utc(datetime(2024, 1, 1))
    plus2 = timezone(timedelta(hours=2))
    assert ensure_utc(datetime(2024, 1, 1, 2, tzinfo=plus2)) == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert ensure_utc("2024-01-01T00:00:00+00:00").tzinfo == timezone.utc
    with pytest.raises(errors.ValidationError):
        ensure_utc(12)


def test_ensure_utc_series():
    naive = pd.Series(pd.to_datetime(["2024-01-01"]))
    with pytest.raises(errors.TimezoneError, match="tz_localize"):
        ensure_utc_series(naive, name="ts")
    with pytest.raises(errors.ValidationError, match="to_datetime"):
        ensure_utc_series(pd.Series([1, 2]), name="ts")
    aware = pd.Series(pd.to_datetime(["2024-01-01T02:00:00+02:00"], utc=False))
    out = ensure_utc_series(aware, name="ts")
    assert str(out.dtype) == "datetime64[us, UTC]"
    assert out.iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_clocks_are_deterministic_and_monotonic():
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    fixed = FixedClock(start)
    assert fixed() == fixed() == start
    fixed.advance(timedelta(hours=1))
    assert fixed() == start + timedelta(hours=1)
    with pytest.raises(errors.ValidationError):
        fixed.advance(timedelta(seconds=-1))
    with pytest.raises(errors.ValidationError):
        fixed.set(start)
    sim = SimulatedClock(start, step=timedelta(seconds=5))
    assert [sim(), sim(), sim()] == [start + timedelta(seconds=5 * i) for i in range(3)]


def test_canonical_json_is_key_order_independent():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert canonical_json({"a": 1}) == '{"a":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_atomic_write_leaves_previous_content_on_failure(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"v": 1})
    before = sha256_file(target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "half')
            raise RuntimeError("interrupted")
    assert sha256_file(target) == before
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_workspace_layout_and_isolation(tmp_path):
    a, b = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    assert a.root != b.root
    for ws in (a, b):
        assert ws.offline_dir.is_dir() and ws.offline_dir.parent == ws.root
        assert ws.registry_db.parent == ws.root
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.ValidationError, match="not a folder"):
        Workspace(tmp_path / "file")
    with pytest.raises(errors.ValidationError):
        Workspace("")


def test_importing_the_kit_writes_nothing(tmp_path):
    import subprocess
    import sys

    before = set(os.listdir(tmp_path))
    subprocess.run(
        [sys.executable, "-c", "import mlops_kit, mlops_kit.errors, mlops_kit.workspace"],
        cwd=tmp_path, check=True,
    )
    assert set(os.listdir(tmp_path)) == before


def test_enable_wal_survives_connections_racing_on_a_new_file(tmp_path):
    """Two connections switching the same brand-new file to WAL at once both succeed."""
    import sqlite3
    import threading

    from mlops_kit._sqlite import enable_wal

    for round_ in range(20):
        path = tmp_path / f"race{round_}.sqlite"
        errors_seen: list[BaseException] = []
        start = threading.Barrier(4)

        def open_and_write(i: int) -> None:
            try:
                con = sqlite3.connect(path, timeout=30, isolation_level=None)
                start.wait()
                enable_wal(con)
                con.execute("CREATE TABLE IF NOT EXISTS t (i INTEGER)")
                con.execute("INSERT INTO t VALUES (?)", (i,))
                con.close()
            except BaseException as exc:  # collected and asserted below
                errors_seen.append(exc)

        threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors_seen == []
        con = sqlite3.connect(path)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 4
