"""Artifacts are safe to load: skops by default, pickle only on explicit trust, legacy pickles migrate."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shlex
import sqlite3
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from registry_helpers import T0, fit_model, lineage, make_data, metadata, numeric, register
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from mlops_kit._time import FixedClock
from mlops_kit.errors import IntegrityError, MlopsKitError, RegistryError, ValidationError
from mlops_kit.labs import ch04, ch06
from mlops_kit.registry import ModelRegistry, UnsafeArtifactWarning, build_release, check_release, infer_signature
from mlops_kit.rollout.demo import demo_world

REPO = Path(__file__).resolve().parents[2]


class Hostile:
    """Looks like a model; unpickling it runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def predict(self, X):  # pragma: no cover - never reached
        return np.zeros(len(X))

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _sql(registry: ModelRegistry) -> sqlite3.Connection:
    conn = sqlite3.connect(str(registry.workspace.registry_db), isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def _plant(registry: ModelRegistry, data: bytes, *, fmt: str = "skops", trusted: list[str] | None = None) -> int:
    """Store ``data`` as an artifact and add a version row that registers its sha256 (a forged row)."""
    digest = registry._artifacts.put_bytes(data)
    conn = _sql(registry)
    try:
        row = conn.execute("SELECT * FROM versions WHERE name = 'fraud' ORDER BY version DESC LIMIT 1").fetchone()
        version = int(row["version"]) + 1
        conn.execute("INSERT INTO versions (name, version, created_at, artifact_sha256, state, author, spec_json, "
                     "audit_seq, artifact_format, trusted_types_json) VALUES ('fraud', ?, ?, ?, 'registered', ?, ?, ?, ?, ?)",
                     (version, row["created_at"], digest, row["author"], row["spec_json"], row["audit_seq"], fmt,
                      json.dumps(trusted if trusted is not None else json.loads(row["trusted_types_json"]))))
    finally:
        conn.close()
    assert hashlib.sha256(registry._artifacts.path_for(digest).read_bytes()).hexdigest() == digest
    return version


def _run_python(code: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **extra_env, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def _prove_hostile(payload: bytes, marker: Path, tmp_path: Path) -> None:
    """The payload really does run its command when unpickled (so the refusals above mean something)."""
    (tmp_path / "payload.pkl").write_bytes(payload)
    proc = _run_python(f"import pickle; pickle.loads(open({str(tmp_path / 'payload.pkl')!r}, 'rb').read())")
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


# -- the hostile artifact -----------------------------------------------------------------
def test_hostile_pickle_with_registered_hash_is_refused_and_never_runs(registry, tmp_path):
    register(registry)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Hostile(marker), protocol=5)
    version = _plant(registry, payload)  # where a skops artifact is expected, its hash registered
    for trusted in (False, True):        # a format mismatch is refused even when the caller trusts it
        with pytest.raises(IntegrityError, match="pickle stream") as info:
            registry.load_model("fraud", version=version, trusted=trusted)
        assert info.value.details["found_format"] == "pickle" and "nothing was deserialised" in str(info.value)
        assert not marker.exists()
    _prove_hostile(payload, marker, tmp_path)


def test_hostile_pickle_registered_as_pickle_loads_only_when_trusted(registry, tmp_path):
    marker = tmp_path / "pwned"
    X = numeric(make_data(0)[0])
    with pytest.warns(UnsafeArtifactWarning, match="trusted=True"):
        mv = registry.register_model("evil", Hostile(marker), signature=infer_signature(X), metadata=metadata(),
                                     lineage=lineage(), author="mallory", format="pickle")
    assert mv.artifact_format == "pickle" and mv.trusted_types == ()
    with pytest.raises(RegistryError, match="is a pickle") as info:
        registry.load_model("evil", version=1)
    assert "trusted=True" in info.value.fix and "migrate_artifacts" in info.value.fix
    assert not marker.exists()
    with pytest.warns(UnsafeArtifactWarning, match="runs any code"):
        registry.load_model("evil", version=1, trusted=True)  # the explicit opt-in does what it says
    assert marker.exists()


def test_hostile_release_artifact_is_never_loaded(registry, tmp_path):
    register(registry)
    golden = numeric(make_data(0, 300)[0]).head(10)
    folder = build_release(registry, "fraud", 1, tmp_path / "rc", golden_df=golden)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Hostile(marker), protocol=5)
    (folder / "model.skops").write_bytes(payload)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.skops"] = manifest["artifact_sha256"] = hashlib.sha256(payload).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = check_release(folder)
    assert not report.ok and report.manifest_ok and "pickle stream" in " ".join(report.errors)
    assert not marker.exists()


# -- skops round trips ----------------------------------------------------------------------
def _capstone():
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({c: rng.gamma(2.0, 40.0, n) for c in ch06.INPUTS}).assign(is_online=rng.integers(0, 2, n))
    frame.loc[rng.random(n) < 0.1, "credit_limit"] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-(frame["amount"] - 80) / 40))).astype(int)
    scorer = ch06.CapstoneScorer(ch06.INPUTS, C=0.5).fit(frame, y)
    return scorer, ch06.model_signature(ch06.INPUTS), frame


def _fraud_scorer(kind):
    data = ch04.make_data(seed=3, scale=0.25)
    scorer, _ = ch04.train_scorer(data, kind=kind, seed=3)
    return scorer, ch04.model_signature(scorer.inputs), data.eval


def _linear(which):
    world = demo_world(2_000, seed=2)
    X = world["traffic"][["amount_log"]].head(300).assign(user_risk=0.1, user_txn_7d=6.0)
    return world[which], infer_signature(X), X


def _sklearn():
    model, X = fit_model(4)
    return model, infer_signature(X), X


MODELS = {  # builder, the types a load must trust beyond skops' defaults (read off the classes by hand)
    "sklearn-logistic": (_sklearn, []),
    "ch04-fraud-logistic": (lambda: _fraud_scorer("logistic"), ["mlops_kit.labs.ch04.FraudScorer"]),
    "ch04-fraud-hgb": (lambda: _fraud_scorer("hgb"), [
        "mlops_kit.labs.ch04.FraudScorer", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]),
    "ch05-stable": (lambda: _linear("stable"), ["mlops_kit.rollout.demo.LinearScorer"]),
    "ch05-candidate": (lambda: _linear("candidate"), ["mlops_kit.rollout.demo.LinearScorer"]),
    "ch06-capstone": (_capstone, ["mlops_kit.labs.ch06.CapstoneScorer"]),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_skops_round_trip_for_every_chapter_model_type(registry, kind):
    build, expected_types = MODELS[kind]
    model, signature, X = build()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default path warns about nothing
        mv = registry.register_model("fraud", model, signature=signature, metadata=metadata(), lineage=lineage(),
                                     author="alice")
        loaded = registry.load_model("fraud", version=mv.version)
    assert mv.artifact_format == "skops" and list(mv.trusted_types) == expected_types
    assert registry.audit.entries()[-1].payload["trusted_types"] == expected_types
    data = registry._artifacts.path_for(mv.artifact_sha256).read_bytes()
    assert data[:4] == b"PK\x03\x04" and hashlib.sha256(data).hexdigest() == mv.artifact_sha256
    assert type(loaded) is type(model) and loaded is not model
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_equal_models_give_equal_digests_in_any_process(tmp_path):
    digests = []
    for root, seed in (("a", 6), ("b", 6), ("c", 7)):
        reg = ModelRegistry(tmp_path / root, clock=FixedClock(T0))
        digests.append(register(reg, seed=seed).artifact_sha256)
        reg.close()
    assert digests[0] == digests[1] != digests[2]
    code = ("import hashlib, registry_helpers as h; from mlops_kit.registry.artifacts import ArtifactStore; "
            "print(hashlib.sha256(ArtifactStore.serialize(h.fit_model(6)[0])).hexdigest())")
    for hash_seed in ("0", "4242"):  # other interpreters, other hash seeds, other object ids
        proc = _run_python(code, PYTHONHASHSEED=hash_seed)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == digests[0]
    stored = (tmp_path / "a" / "artifacts" / "sha256" / digests[0][:2] / digests[0]).read_bytes()
    with zipfile.ZipFile(io.BytesIO(stored)) as archive:
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert archive.namelist()[-1] == "schema.json"


# -- the trusted-type check -----------------------------------------------------------------
def test_a_file_asking_for_an_unrecorded_type_is_refused_naming_it(registry):
    mv = register(registry)
    assert mv.trusted_types == ()  # a plain scikit-learn model needs nothing beyond skops' defaults
    sneaky = make_pipeline(FunctionTransformer(func=os.system), LogisticRegression())  # transform() would run it
    version = _plant(registry, sio.dumps(sneaky))  # written by skops itself, not by the kit
    with pytest.raises(RegistryError) as info:
        registry.load_model("fraud", version=version)
    assert info.value.details["untrusted_types"] == ["posix.system"]
    assert "posix.system" in str(info.value) and "skops.io.get_untrusted_types" in info.value.fix
    other = _plant(registry, sio.dumps(_linear("stable")[0]))
    with pytest.raises(RegistryError, match=r"mlops_kit\.rollout\.demo\.LinearScorer"):
        registry.load_model("fraud", version=other)
    loaded = registry.load_model("fraud", version=other, trusted=True)  # an explicit, reviewed decision
    assert type(loaded).__name__ == "LinearScorer"


def test_bad_format_and_trust_arguments(registry):
    model, X = fit_model(0)
    with pytest.raises(ValidationError, match="format must be one of"):
        registry.register_model("fraud", model, signature=infer_signature(X), metadata=metadata(),
                                lineage=lineage(), author="alice", format="joblib")
    assert registry.list_models() == []
    register(registry)
    with pytest.raises(ValidationError, match="trusted must be a bool"):
        registry.load_model("fraud", version=1, trusted="yes")
    for call in (lambda: registry.migrate_artifacts(dry_run="no"), lambda: registry.migrate_artifacts(actor="a b")):
        with pytest.raises(ValidationError):
            call()


def test_pickle_opt_in_round_trips_with_warnings_and_is_not_released(registry, tmp_path):
    model, X = fit_model(1)
    with pytest.warns(UnsafeArtifactWarning, match="format='pickle'"):
        mv = registry.register_model("fraud", model, signature=infer_signature(X), metadata=metadata(),
                                     lineage=lineage(), author="alice", format="pickle")
    stored = registry._artifacts.path_for(mv.artifact_sha256).read_bytes()
    assert stored == pickle.dumps(model, protocol=5) and mv.artifact_format == "pickle"
    with pytest.raises(RegistryError, match="not loaded by default"):
        registry.load_model("fraud", version=1)
    with pytest.warns(UnsafeArtifactWarning):
        loaded = registry.load_model("fraud", version=1, trusted=True)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    with pytest.raises(RegistryError, match="migrate_artifacts"):
        build_release(registry, "fraud", 1, tmp_path / "rc", golden_df=X.head(5))
    assert not (tmp_path / "rc").exists()


# -- legacy workspaces and migration ---------------------------------------------------------
_V1_TRIGGER = """CREATE TRIGGER versions_spec_immutable
BEFORE UPDATE OF name, version, created_at, artifact_sha256, author, spec_json, audit_seq
ON versions
BEGIN
    SELECT RAISE(ABORT, 'model versions are immutable');
END"""


def _legacy_workspace(root: Path) -> list:
    """A workspace as schema version 1 left it: pickled artifacts, no format columns, no artifact events."""
    reg = ModelRegistry(root, clock=FixedClock(T0))
    models = []
    for seed in (0, 1):
        model, X = fit_model(seed)
        with pytest.warns(UnsafeArtifactWarning):
            reg.register_model("fraud", model, signature=infer_signature(X), metadata=metadata(run=f"run-{seed}"),
                               lineage=lineage(), author="alice", format="pickle")
        models.append((model, X))
    reg.close()
    conn = sqlite3.connect(str(root / "registry.sqlite"), isolation_level=None)
    conn.executescript("DROP TRIGGER versions_spec_immutable; DROP TABLE artifact_events; "
                       "ALTER TABLE versions DROP COLUMN artifact_format; "
                       "ALTER TABLE versions DROP COLUMN trusted_types_json; "
                       "UPDATE meta SET value = '1' WHERE key = 'schema_version';")
    conn.execute(_V1_TRIGGER)
    conn.close()
    return models


def _rows(registry: ModelRegistry, table: str) -> list[dict]:
    conn = _sql(registry)
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
    finally:
        conn.close()


def test_legacy_workspace_opens_reads_and_loads_only_when_trusted(tmp_path):
    models = _legacy_workspace(tmp_path / "ws")
    reg = ModelRegistry(tmp_path / "ws", clock=FixedClock(T0))
    assert _rows(reg, "meta") == [{"key": "schema_version", "value": "2"}]
    assert [r["artifact_format"] for r in _rows(reg, "versions")] == [None, None]  # the old rows, as written
    mv = reg.get_model_version("fraud", 2)
    assert (mv.artifact_format, mv.trusted_types) == ("pickle", ())
    with pytest.raises(RegistryError, match="pickle"):
        reg.load_model("fraud", version=2)
    with pytest.warns(UnsafeArtifactWarning):
        loaded = reg.load_model("fraud", version=2, trusted=True)
    model, X = models[1]
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    conn = _sql(reg)
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE versions SET artifact_format = 'skops' WHERE version = 1")
    conn.close()


def test_migrate_artifacts_rewrites_pickles_through_audited_events(tmp_path):
    models = _legacy_workspace(tmp_path / "ws")
    reg = ModelRegistry(tmp_path / "ws", clock=FixedClock(T0))
    before_rows, before_audit = _rows(reg, "versions"), reg.audit.entries()
    plan = reg.migrate_artifacts(dry_run=True)
    assert [(p["version"], p["status"]) for p in plan] == [(1, "would migrate"), (2, "would migrate")]
    assert reg.audit.entries() == before_audit and _rows(reg, "artifact_events") == []

    with pytest.warns(UnsafeArtifactWarning, match="unpickled 2"):
        done = reg.migrate_artifacts(actor="ops")
    assert [d["status"] for d in done] == ["migrated", "migrated"]
    assert _rows(reg, "versions") == before_rows  # the version records are untouched
    after = reg.audit.entries()
    assert after[:len(before_audit)] == before_audit and len(after) == len(before_audit) + 2
    assert reg.audit.verify().ok
    for report, entry, (model, X), old in zip(done, after[-2:], models, before_rows):
        new = report["artifact_sha256"]
        assert report["from_sha256"] == old["artifact_sha256"] != new
        assert entry.action == "migrate_artifact" and entry.actor == "ops"
        assert entry.payload == {"name": "fraud", "version": report["version"], "from_sha256": old["artifact_sha256"],
                                 "artifact_sha256": new, "artifact_format": "skops", "trusted_types": []}
        data = reg._artifacts.path_for(new).read_bytes()
        assert hashlib.sha256(data).hexdigest() == new
        assert np.array_equal(sio.loads(data, trusted=[]).predict_proba(X), model.predict_proba(X))
        assert reg._artifacts.path_for(old["artifact_sha256"]).is_file()  # the old artifact stays
        mv = reg.get_model_version("fraud", report["version"])
        assert (mv.artifact_sha256, mv.artifact_format) == (new, "skops")
        history = reg.artifact_history("fraud", report["version"])
        assert [(h.from_sha256, h.artifact_sha256, h.audit_seq) for h in history] == \
            [(old["artifact_sha256"], new, entry.seq)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = reg.load_model("fraud", version=report["version"])  # no trusted=True any more
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert reg.gc_artifacts(dry_run=True) == []  # both generations are referenced

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reg.migrate_artifacts(actor="ops") == []  # idempotent: nothing unpickled, nothing written
    assert reg.audit.entries() == after
    conn = _sql(reg)
    for sql in ("UPDATE artifact_events SET artifact_sha256 = 'x'", "DELETE FROM artifact_events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()
    # a fresh registry object on the same workspace sees the same current artifacts
    again = ModelRegistry(tmp_path / "ws")
    assert [v.artifact_sha256 for v in again.search_model_versions("fraud")] == [d["artifact_sha256"] for d in done]


def test_a_workspace_from_a_newer_kit_is_refused(tmp_path):
    reg = ModelRegistry(tmp_path / "ws")
    reg.close()
    conn = sqlite3.connect(str(tmp_path / "ws" / "registry.sqlite"), isolation_level=None)
    conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(MlopsKitError, match="schema 9"):
        ModelRegistry(tmp_path / "ws")
