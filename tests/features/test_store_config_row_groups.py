"""The offline writer's row group size changes how files are laid out, never what any read returns."""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_kit.features import FeatureStore
from mlops_kit.features import offline as offline_writer

from .helpers import T0, USER, view

END = T0 + timedelta(days=1)


def _frame(n_rows: int, seed: int) -> pd.DataFrame:
    """Rows of one day (one partition file); ties on (key, event ts) included on purpose."""
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(rng.integers(0, 86_400, n_rows) * 10**6, unit="us")  # whole seconds: ties
    frame = pd.DataFrame({"user_id": rng.integers(0, 40, n_rows).astype("int64"),
                          "event_timestamp": pd.Series(ts).astype("datetime64[us, UTC]")})
    frame["created"] = frame["event_timestamp"] + pd.to_timedelta(rng.integers(0, 60, n_rows), unit="s")
    frame["amount"] = rng.normal(size=n_rows)
    frame["count"] = pd.array(rng.integers(0, 9, n_rows), dtype="Int64")
    return frame


def _everything(root, group_rows: int, monkeypatch) -> dict:
    monkeypatch.setattr(offline_writer, "ROW_GROUP_ROWS", group_rows)
    store = FeatureStore(root, clock=lambda: END)
    store.apply([USER, view(ttl=timedelta(hours=6))])
    for seed in (1, 2):
        store.ingest("user_stats", _frame(3_000, seed))
    groups = [pq.ParquetFile(f).metadata.num_row_groups for f in store.offline_files("user_stats")]
    rng = np.random.default_rng(3)
    probe = pd.DataFrame({"user_id": rng.integers(0, 45, 2_000).astype("int64"),
                          "event_timestamp": pd.Series(T0 + pd.to_timedelta(
                              rng.integers(0, 90_000, 2_000), unit="s")).astype("datetime64[us, UTC]")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joined = [store.get_historical_features(probe, ["user_stats:amount", "user_stats:count"],
                                                filter_by_created_timestamp=f) for f in (False, True)]
    report = store.materialize(T0, END)
    online = store.get_online_features(["user_stats:amount", "user_stats:count"],
                                       [{"user_id": k} for k in range(45)], include_timestamps=True)
    out = {"groups": groups, "offline": store.read_offline("user_stats"), "joined": joined,
           "written": report.rows_written, "online": online}
    store.close()
    return out


@pytest.mark.parametrize("group_rows", [7, 256, 1_000])
def test_small_row_groups_give_the_same_reads_as_one_group_per_file(tmp_path, monkeypatch, group_rows):
    one = _everything(tmp_path / "one", 1 << 20, monkeypatch)
    many = _everything(tmp_path / "many", group_rows, monkeypatch)
    assert one["groups"] == [1, 1] and many["groups"] == [-(-3_000 // group_rows)] * 2
    pd.testing.assert_frame_equal(many["offline"], one["offline"])
    for a, b in zip(many["joined"], one["joined"]):
        pd.testing.assert_frame_equal(a, b)
    assert many["written"] == one["written"] == 40
    assert many["online"] == one["online"]
