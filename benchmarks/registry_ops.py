"""Registry write and audit costs against the floor cost of a durable SQLite transaction.

Measures, in one process on a fresh workspace:
- register_model latency (pickle + content-addressed write + one transaction + audit entry),
- promote latency for a free-form alias (policy-free) and a stage alias (two default policies),
- audit.verify() over the whole chain and per entry,
baseline: one BEGIN IMMEDIATE / INSERT / COMMIT on a WAL database with synchronous=FULL
(the cost every durable registry write must pay), measured in the same run.

Usage: python benchmarks/registry_ops.py [--versions 200] [--moves 400]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_kit._time import FixedClock  # noqa: E402
from mlops_kit.registry import (  # noqa: E402
    DataSnapshot,
    FeatureRef,
    Lineage,
    ModelMetadata,
    ModelRegistry,
    capture_environment,
    infer_signature,
)


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def baseline_tx(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    out = []
    for i in range(n):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (f"row {i}",))
        conn.execute("COMMIT")
        out.append(time.perf_counter() - start)
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--moves", type=int, default=400)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    y = (X["a"] + rng.normal(size=2000) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    meta = ModelMetadata(code_revision="abc", training_run_id="r1", environment=capture_environment(),
                         parameters={"C": 1.0}, metrics={"auc": 0.8}, eval_set_id="e" * 64)
    lin = Lineage(features=(FeatureRef(view="v", version=1, fingerprint="fp", features=("a", "b")),),
                  snapshots=(DataSnapshot(name="train", sha256=hashlib.sha256(b"x").hexdigest()),))
    sig = infer_signature(X)
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_tx(Path(tmp) / "baseline.sqlite", args.versions)
        reg = ModelRegistry(Path(tmp) / "ws", clock=FixedClock(datetime(2024, 1, 1, tzinfo=timezone.utc)))
        reg_t = []
        for i in range(args.versions):
            start = time.perf_counter()
            reg.register_model("m", model, signature=sig, metadata=meta, lineage=lin, author="alice")
            reg_t.append(time.perf_counter() - start)
        free_t = []
        for i in range(args.moves):
            start = time.perf_counter()
            reg.promote("m", 1 + i % args.versions, "hot", actor="bob")
            free_t.append(time.perf_counter() - start)
        stage_t = []
        for v in range(1, args.versions + 1):
            start = time.perf_counter()
            reg.promote("m", v, "candidate", actor="bob")
            stage_t.append(time.perf_counter() - start)
        entries = len(reg.audit)
        verify_t = []
        for _ in range(3):
            start = time.perf_counter()
            ok = reg.audit.verify().ok
            verify_t.append(time.perf_counter() - start)
        reg.close()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"sqlite {sqlite3.sqlite_version}, scikit-learn {sklearn.__version__}, load average {load}")
    print(f"sizes: {args.versions} versions, {args.moves} free-form alias moves, {entries} audit entries")
    b = median_ms(base)
    rows = [("baseline: one durable SQLite transaction", b),
            ("register_model", median_ms(reg_t)),
            ("promote, free-form alias (no policies)", median_ms(free_t)),
            ("promote, stage alias (2 policies + state change)", median_ms(stage_t))]
    print("| operation | median ms | ratio to baseline |\n|---|---:|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} | {ms / b:.1f}x |")
    v = statistics.median(verify_t)
    print(f"| audit.verify() over {entries} entries (ok={ok}) | {1000 * v:.1f} | "
          f"{1e6 * v / entries:.1f} us/entry |")


if __name__ == "__main__":
    main()
