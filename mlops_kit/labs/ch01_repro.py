"""Chapter 1 lab, reproducibility: a mutable "latest" table vs content-addressed snapshots.

The "latest" labelled training table is what a warehouse shows at a processing time: it
grows as transactions are ingested and labels mature, and the job overwrites it in place.
A snapshot freezes one version; its id is the sha256 of its Parquet bytes, and every load
re-hashes the file and refuses a mismatch.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_path, sha256_file
from .._time import ensure_utc
from ..datasets import World, fit_evaluate, time_split, training_set
from ..errors import IntegrityError, NotFoundError, ValidationError
from ..workspace import Workspace

__all__ = ["latest_training_table", "write_latest", "write_snapshot", "load_snapshot", "train_and_score",
           "snapshot_run"]

_TABLE_COLUMNS = ("transaction_id", "event_timestamp", "is_fraud", "amount", "merchant_category", "channel",
                  "txn_count_1h", "txn_count_24h", "amount_sum_24h", "txn_count_7d", "amount_avg_7d",
                  "amount_avg_30d", "txn_count_30d", "chargeback_count_30d", "fraud_rate_30d",
                  "risk_tier", "account_status", "credit_limit")


def latest_training_table(world: World, *, as_of: datetime, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The "latest" labelled training table as the warehouse shows it at processing time ``as_of``.

    Rows whose transaction was ingested and whose label was known by ``as_of``; features as of
    each row's event time. Later calls with a later ``as_of`` see more rows: the table mutates.
    """
    as_of = ensure_utc(as_of, name="latest_training_table(as_of)")
    full = training_set(world) if frame is None else frame
    ingested = world.transactions.drop_duplicates("transaction_id").set_index("transaction_id")["ingested_at"]
    known = (full["label_timestamp"] <= pd.Timestamp(as_of)) & \
            (full["transaction_id"].map(ingested) <= pd.Timestamp(as_of))
    table = full.loc[known, list(_TABLE_COLUMNS)].reset_index(drop=True)
    table["is_fraud"] = table["is_fraud"].astype(bool)
    return table


def write_latest(ws: Workspace, table: pd.DataFrame) -> Path:
    """Overwrite the mutable ``latest`` table (``offline/latest_training.parquet``)."""
    target = ws.offline_dir / "latest_training.parquet"
    with atomic_path(target) as tmp:
        table.to_parquet(tmp, index=False)
    return target


def write_snapshot(ws: Workspace, table: pd.DataFrame) -> str:
    """Freeze ``table`` as an immutable snapshot; returns its id (sha256 of the Parquet bytes)."""
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise ValidationError("write_snapshot: expected a non-empty DataFrame.", fix="Pass the training table.")
    staging = ws.tmp_dir / "snapshot.parquet"
    with atomic_path(staging) as tmp:
        table.to_parquet(tmp, index=False)
    snap_id = sha256_file(staging)
    target = ws.snapshots_dir / f"{snap_id}.parquet"
    if target.exists():
        staging.unlink()
    else:
        staging.replace(target)
    return snap_id


def load_snapshot(ws: Workspace, snap_id: str) -> pd.DataFrame:
    """Read a snapshot by id after re-hashing its bytes (refuses a modified file)."""
    path = ws.snapshots_dir / f"{snap_id}.parquet"
    if not path.is_file():
        raise NotFoundError(f"load_snapshot: no snapshot {snap_id[:12]}... in {ws.snapshots_dir.name}/.",
                            fix="Use an id returned by write_snapshot().")
    actual = sha256_file(path)
    if actual != snap_id:
        raise IntegrityError(f"load_snapshot: snapshot {snap_id[:12]}... hashes to {actual[:12]}...",
                             fix="The file was modified; restore it or re-create the snapshot.")
    return pd.read_parquet(path)


def train_and_score(table: pd.DataFrame, *, seed: int) -> dict[str, Any]:
    """Train the chapter's scorer on the first 70 % of ``table`` (by time); AUC on the rest."""
    frame = table.sort_values(["event_timestamp", "transaction_id"], kind="stable").reset_index(drop=True)
    split = time_split(frame, test_share=0.3)
    report = fit_evaluate(split.train, split.test, model="logistic", seed=seed)
    return {"rows": int(len(frame)), "auc": round(report.auc, 6), "n_train": report.n_train,
            "n_test": report.n_test, "test_positives": report.test_positives}


def snapshot_run(ws: Workspace, snap_id: str, *, seed: int) -> dict[str, Any]:
    """Train from snapshot ``snap_id``: the fingerprint is the sha256 of the bytes actually read."""
    table = load_snapshot(ws, snap_id)
    return {"fingerprint": sha256_file(ws.snapshots_dir / f"{snap_id}.parquet"), **train_and_score(table, seed=seed)}
