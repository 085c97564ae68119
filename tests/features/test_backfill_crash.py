"""A backfill or a promotion killed with SIGKILL leaves the live version untouched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from mlops_kit.features import FeatureStore

from .backfill_helpers import DAY, bumped, canon, day_rows, live_store, no_sleep
from .helpers import T0, entities

START, END = T0 + DAY, T0 + 3 * DAY
REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime, timedelta, timezone
    sys.path.insert(0, {repo!r})
    from mlops_kit.features import FeatureStore
    from tests.features.backfill_helpers import bumped as compute

    step, root = sys.argv[1], sys.argv[2]
    T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    DAY = timedelta(days=1)

    def pause(name):
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    store = FeatureStore(root, clock=lambda: T0 + 60 * DAY)
    if step.startswith("promote"):
        rec = store.backfill("user_stats", T0 + DAY, T0 + 3 * DAY, compute=compute, sleep=lambda s: None)
        store.promote_backfill(rec.backfill_id, force_reason="values fixed", _pause=pause)
    else:
        store.backfill("user_stats", T0 + DAY, T0 + 3 * DAY, compute=compute, sleep=lambda s: None,
                       _pause=pause)
    print("not killed")
""")


def _live_view(store: FeatureStore) -> tuple:
    probe = entities([(u, START + pd.Timedelta(hours=h)) for u in (1, 2, 3) for h in (2, 14, 31)])
    hist = store.get_historical_features(probe, ["user_stats:amount", "user_stats:count"])
    online = store.get_online_features(["user_stats:amount"], [{"user_id": u} for u in (1, 2, 3)],
                                       at=T0 + 5 * DAY)
    return (store.live_version("user_stats"), canon(store.read_offline("user_stats")), hist, online,
            store.offline_files("user_stats"))


def _same(a: tuple, b: tuple) -> None:
    assert a[0] == b[0] and a[3] == b[3] and a[4] == b[4]
    pd.testing.assert_frame_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2])


@pytest.mark.parametrize("step", ["partition-staged:1", "partition-written:1", "partition-committed:0",
                                  "promote:before-commit"])
def test_sigkill_leaves_live_untouched(tmp_path, step):
    store = live_store(tmp_path)
    store.materialize(T0, T0 + 5 * DAY)
    before = _live_view(store)
    script = tmp_path / "crash.py"
    script.write_text(SCRIPT.format(repo=str(REPO)))
    proc = subprocess.run([sys.executable, str(script), step, str(store.workspace.root)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    reopened = FeatureStore(store.workspace.root)
    _same(_live_view(reopened), before)
    rec = reopened.list_backfills("user_stats")[0]
    if step.startswith("promote"):
        assert rec.outcome == "validation_failed"          # never marked promoted
        promoted = reopened.promote_backfill(rec.backfill_id, force_reason="values fixed")
        assert promoted.outcome == "promoted"
        assert canon(reopened.read_offline("user_stats"))["amount"].sum() == pytest.approx(
            day_rows(T0, T0 + 5 * DAY)["amount"].sum() + 0.5 * 24)
    else:
        assert rec.outcome == "running"                    # crashed mid-way: resumable
        done = reopened.backfill("user_stats", START, END, compute=bumped, resume=rec.backfill_id,
                                 sleep=no_sleep())
        assert done.outcome == "validation_failed" and all(p.status == "done" for p in done.partitions)
        shadow = canon(reopened.read_offline("user_stats", version=rec.shadow_version))
        expected = canon(pd.concat([day_rows(T0, START), day_rows(START, END, bump=0.5),
                                    day_rows(END, T0 + 5 * DAY)]))
        pd.testing.assert_frame_equal(shadow, expected)
