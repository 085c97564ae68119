"""``forget_offline_files`` as the ``before_delete`` of ``governance.apply_retention``."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from mlops_kit.errors import ValidationError
from mlops_kit.features import FeatureStore
from mlops_kit.governance import apply_retention

from .backfill_helpers import DAY, bumped, canon, day_rows, live_store, no_sleep
from .helpers import T0, snapshot


def test_retention_with_forget_keeps_readers_consistent_across_versions(tmp_path):
    store = live_store(tmp_path)
    rec = store.backfill("user_stats", T0 + DAY, T0 + 3 * DAY, compute=bumped, sleep=no_sleep())
    store.promote_backfill(rec.backfill_id, force_reason="corrected amounts")
    # v2 shares v1's files for days 1, 4, 5; retention drops days 1 and 2 (v1 and v2 folders)
    result = apply_retention(store.workspace.offline_dir, max_age=timedelta(days=3), now=T0 + 5 * DAY,
                             before_delete=store.forget_offline_files)
    assert sorted(r["partition_date"] for r in result.deleted) == ["2024-01-01", "2024-01-02", "2024-01-02"]
    expected_v2 = canon(pd.concat([day_rows(T0 + 2 * DAY, T0 + 3 * DAY, bump=0.5),
                                   day_rows(T0 + 3 * DAY, T0 + 5 * DAY)]))
    reopened = FeatureStore(store.workspace)
    pd.testing.assert_frame_equal(canon(reopened.read_offline("user_stats")), expected_v2)
    expected_v1 = canon(day_rows(T0 + 2 * DAY, T0 + 5 * DAY))
    pd.testing.assert_frame_equal(canon(reopened.read_offline("user_stats", version=1)), expected_v1)
    assert all(p.exists() for v in (1, 2) for p in reopened.offline_files("user_stats", version=v))


def test_forget_single_files_and_folders_counts_rows(tmp_path):
    store = live_store(tmp_path, days=3)
    files = store.offline_files("user_stats")
    assert store.forget_offline_files([files[0]]) == 1
    assert store.offline_files("user_stats") == files[1:]
    folder = files[1].parent.relative_to(store.workspace.offline_dir)
    assert store.forget_offline_files([folder]) == 1                 # relative folder path
    assert store.offline_files("user_stats") == files[2:]
    assert store.forget_offline_files([files[0]]) == 0               # already forgotten


def test_failing_before_delete_deletes_nothing_and_bad_paths_are_refused(tmp_path):
    store = live_store(tmp_path, days=3)
    before = snapshot(store.workspace.offline_dir), store.offline_files("user_stats")

    def refuse(paths):
        store.forget_offline_files(paths + [tmp_path / "elsewhere" / "date=2024-01-01"])

    with pytest.raises(ValidationError, match="not inside the offline folder"):
        apply_retention(store.workspace.offline_dir, max_age=timedelta(days=1), now=T0 + 3 * DAY,
                        before_delete=refuse)
    assert (snapshot(store.workspace.offline_dir), store.offline_files("user_stats")) == before
    with pytest.raises(ValidationError, match="expected a list of paths"):
        store.forget_offline_files(str(store.offline_files("user_stats")[0]))
    with pytest.raises(ValidationError, match="is not a path"):
        store.forget_offline_files([3])
    assert store.offline_files("user_stats") == before[1]
