"""Concurrent writers lose nothing; a registration killed mid-transaction leaves no half version."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

from registry_helpers import T0, fit_model, infer_signature, lineage, metadata, move_aliases, register

import mlops_kit
from mlops_kit._time import FixedClock
from mlops_kit.registry import PAUSE_IN_REGISTER_ENV, ModelRegistry
from mlops_kit.registry.artifacts import ArtifactStore

WORKERS, MOVES = 8, 25


def test_eight_processes_times_25_moves_lose_nothing(workspace):
    reg = ModelRegistry(workspace, clock=FixedClock(T0))
    model, X = fit_model(0)
    signature, meta, lin = infer_signature(X), metadata(), lineage()
    for _ in range(WORKERS * MOVES):  # one distinct target version per move: no move is a no-op
        reg.register_model("fraud", model, signature=signature, metadata=meta, lineage=lin, author="alice")
    before = len(reg.audit)
    reg.close()
    plan = {w: [w * MOVES + k + 1 for k in range(MOVES)] for w in range(WORKERS)}
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=move_aliases, args=(str(workspace.root), w, plan[w], MOVES, barrier))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    reg = ModelRegistry(workspace, clock=FixedClock(T0))
    assert len(reg.audit) == before + WORKERS * MOVES
    assert reg.audit.verify().ok
    hot = reg.alias_history("fraud", "hot")
    expected_hot = {plan[w][k] for w in range(WORKERS) for k in range(0, MOVES, 2)}
    assert len(hot) == len(expected_hot) == 8 * 13
    assert {e.to_version for e in hot} == expected_hot
    for earlier, later in zip(hot, hot[1:]):  # each move saw the previous one: no lost update
        assert later.from_version == earlier.to_version
    assert reg.get_model_version_by_alias("fraud", "hot").version == hot[-1].to_version
    for w in range(WORKERS):
        mine = reg.alias_history("fraud", f"w{w}")
        assert [e.to_version for e in mine] == plan[w][1::2]
        assert [e.from_version for e in mine] == [None, *plan[w][1::2][:-1]]
    seqs = [e.audit_seq for e in hot]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    reg.close()


CRASH_SCRIPT = """
import sys
from registry_helpers import register
from mlops_kit.registry import ModelRegistry
from mlops_kit._time import FixedClock
from registry_helpers import T0
reg = ModelRegistry(sys.argv[1], clock=FixedClock(T0))
register(reg, seed=7)
print("committed", flush=True)
"""


def test_killed_registration_leaves_no_half_version(registry):
    register(registry)
    before = (len(registry.audit), registry.audit.head())
    root = Path(mlops_kit.__path__[0]).parent
    env = {**os.environ, PAUSE_IN_REGISTER_ENV: "60",
           "PYTHONPATH": os.pathsep.join([str(root), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(registry.workspace.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert line.startswith("paused in register_model fraud v2"), line + proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    reopened = ModelRegistry(registry.workspace, clock=FixedClock(T0))
    assert [v.version for v in reopened.search_model_versions("fraud")] == [1]
    assert (len(reopened.audit), reopened.audit.head()) == before
    assert reopened.audit.verify().ok
    # the artifact was written before the transaction: an orphan, harmless and collectable (skops bytes
    # are canonical, so the model refitted here hashes to what the killed process wrote)
    digest = hashlib.sha256(ArtifactStore.serialize(fit_model(7)[0])).hexdigest()
    assert reopened._artifacts.path_for(digest).is_file()
    assert reopened.gc_artifacts(dry_run=True) == [digest]
    assert reopened.gc_artifacts() == [digest]
    assert reopened.gc_artifacts() == []
    assert reopened.load_model("fraud", version=1) is not None  # referenced artifacts are kept
    assert register(reopened, seed=7).version == 2
    reopened.close()
