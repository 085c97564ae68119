"""``FeatureStore(duckdb_memory_limit=...)``: refused before anything is written, handed to
DuckDB as given, spills under the workspace's tmp folder, and results do not depend on it."""

from __future__ import annotations

import warnings
from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_kit.errors import ValidationError
from mlops_kit.features import FeatureStore

from .helpers import T0, USER, snapshot, view

BAD = ["", "4", "4 GBs", "four GB", "GB", "-1GB", "80%", "-1", "1MB", "31.9MB", "30MiB", "0GB",
       "4GB; SET threads=1", 4_000_000_000, 4.0, None, b"4GB", ["4GB"]]


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bad_limits_are_refused_before_the_workspace_is_created(tmp_path, bad):
    root = tmp_path / "ws"
    with pytest.raises(ValidationError, match="duckdb_memory_limit must be a size") as err:
        FeatureStore(root, duckdb_memory_limit=bad)
    assert err.value.fix is not None and "duckdb_memory_limit='2GB'" in err.value.fix
    assert repr(bad) in str(err.value)
    assert not root.exists()


def test_a_bad_limit_leaves_an_existing_workspace_byte_for_byte(workspace):
    store = FeatureStore(workspace)
    store.apply([USER, view()])
    store.close()
    before = snapshot(workspace.root)
    with pytest.raises(ValidationError):
        FeatureStore(workspace, duckdb_memory_limit="lots")
    assert snapshot(workspace.root) == before


@pytest.mark.parametrize("limit", ["4GB", "512MB", "1.5GiB", " 64 mb ", "32MB", "31MiB", "1TB"])
def test_accepted_limits_reach_duckdb_as_duckdb_reads_them(workspace, limit):
    store = FeatureStore(workspace, duckdb_memory_limit=limit)
    got = store.duckdb.sql("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchall()[0]
    reference = duckdb.connect(config={"memory_limit": limit.strip()})  # DuckDB's own reading of the string
    assert got == (reference.sql("SELECT current_setting('memory_limit')").fetchall()[0][0],
                   str(workspace.tmp_dir / "duckdb"))
    reference.close()
    store.close()


def test_data_over_the_limit_spills_into_the_workspace_tmp_folder(workspace):
    store = FeatureStore(workspace, duckdb_memory_limit="32MB")
    con = store.duckdb
    # about 120 MB of column data in a 32 MB budget: DuckDB must evict blocks to its temp files
    con.execute("CREATE TEMP TABLE big AS SELECT i, i * 2 AS j, hash(i) AS k FROM range(5000000) t(i)")
    files = con.sql("SELECT path, size FROM duckdb_temporary_files()").fetchall()
    spill = workspace.tmp_dir / "duckdb"
    assert files and sum(size for _, size in files) > 32 * 10**6
    assert all(str(path).startswith(str(spill) + "/") for path, _ in files)
    assert con.sql("SELECT count(*), sum(j - 2 * i) FROM big").fetchall()[0] == (5_000_000, 0)
    store.close()


def _features(n_rows: int, n_users: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(rng.integers(0, 10 * 86_400 * 10**6, n_rows), unit="us")
    frame = pd.DataFrame({"user_id": rng.integers(0, n_users, n_rows).astype("int64"),
                          "event_timestamp": pd.Series(ts).astype("datetime64[us, UTC]")})
    frame["created"] = frame["event_timestamp"] + pd.to_timedelta(rng.integers(0, 3 * 3600 * 10**6, n_rows),
                                                                  unit="us")
    frame["amount"] = rng.normal(size=n_rows)
    frame["count"] = pd.array(rng.integers(0, 100, n_rows), dtype="Int64")
    return frame


def test_a_join_under_a_tight_limit_gives_the_same_frame_as_under_the_default(tmp_path):
    feats = _features(300_000, 3_000, seed=7)
    rng = np.random.default_rng(8)
    probe = pd.DataFrame({"user_id": rng.integers(0, 3_100, 30_000).astype("int64"),  # some unknown keys
                          "event_timestamp": pd.Series(T0 + pd.to_timedelta(
                              rng.integers(0, 11 * 86_400 * 10**6, 30_000), unit="us")).astype("datetime64[us, UTC]")})
    out = {}
    for limit in ("32MB", "8GB"):
        store = FeatureStore(tmp_path / limit, duckdb_memory_limit=limit)
        store.apply([USER, view(ttl=timedelta(hours=12))])
        store.ingest("user_stats", feats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for filtered in (False, True):
                out[limit, filtered] = store.get_historical_features(
                    probe, ["user_stats:amount", "user_stats:count"], filter_by_created_timestamp=filtered)
        store.close()
    for filtered in (False, True):
        pd.testing.assert_frame_equal(out["32MB", filtered], out["8GB", filtered])
    assert out["32MB", False]["amount"].notna().sum() > 10_000  # the join found values, not only nulls
