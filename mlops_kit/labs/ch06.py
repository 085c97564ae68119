"""Chapter 6 lab (capstone): the whole lifecycle in one workspace, and its rebuild from lineage.

The notebook calls these functions so its cells stay short:

- :func:`make_world` generates the seeded card-payments world of the capstone (26 days);
- :func:`daily_user_features` is the feature pipeline: per user and UTC midnight, the
  activity that had been *ingested* before that midnight (so offline rows are what a daily
  job could have computed), plus the profile's credit limit;
- :func:`build_features` applies the two feature views, ingests the offline rows and
  writes nothing online (the daily job in :class:`DailyJobSource` materializes);
- :func:`training_frames` builds the point-in-time training and evaluation sets with
  ``FeatureStore.get_historical_features`` and writes them as content-addressed snapshots;
- :class:`CapstoneScorer` is the model artifact (preprocessing packaged with the estimator);
- :func:`register` and :func:`approve_and_promote` put versions through the registry's gates;
- :func:`rebuild_from_lineage` replays all of it in a clean workspace from a lineage document.

Time windows (days after the world's start): training days 7-16, evaluation days 16-19,
then three traffic windows: the release canary (19-22), the outage drill (22-24) and the
drift drill (24-26).
"""

from __future__ import annotations

import hashlib
import inspect
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .._io import atomic_path, sha256_file
from .._time import UTC, FixedClock
from ..datasets import Scenario, deduplicate, entity_frame, generate_world, user_profile_features
from ..errors import ValidationError
from ..features import Entity, FeatureStore, FeatureView, Field
from ..registry import (ColumnSpec, DataSnapshot, FeatureRef, Lineage, ModelMetadata, ModelRegistry,
                        ModelSignature, capture_environment)
from .ch02_sync import lab_store

__all__ = ["MODEL", "START", "DAY", "TRAIN_START", "TRAIN_END", "EVAL_END", "WINDOWS", "DAILY_FEATURES", "REQUEST_INPUTS",
           "INPUTS", "FILL", "scenario", "make_world", "daily_user_features", "feature_views", "build_features",
           "training_frames", "write_snapshot", "CapstoneScorer", "train", "model_signature", "code_revision",
           "register", "approve_and_promote", "lab_registry", "rebuild_from_lineage", "feature_refs",
           "lineage_document", "fingerprints", "audit_compare"]

MODEL = "fraud_capstone"
START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
#: training rows start once every user's 7-day window is complete (earlier rows see truncated history)
TRAIN_START = START + 7 * DAY
TRAIN_END = START + 16 * DAY
EVAL_END = START + 19 * DAY
#: traffic windows after the training cutoff: name -> (start, end)
WINDOWS = {"release": (EVAL_END, START + 22 * DAY), "outage": (START + 22 * DAY, START + 24 * DAY),
           "drift": (START + 24 * DAY, START + 26 * DAY)}
DAILY_FEATURES = ("txn_count_1d", "txn_count_7d", "amount_avg_7d", "amount_avg_30d")
#: sent by the payments service with every scoring request
REQUEST_INPUTS = ("amount", "is_online")
INPUTS = (*REQUEST_INPUTS, *DAILY_FEATURES, "credit_limit")
#: what a missing value is served as (also used in training, so both paths agree)
FILL = {"amount": 50.0, "is_online": 0.0, "txn_count_1d": 0.0, "txn_count_7d": 0.0, "amount_avg_7d": 50.0,
        "amount_avg_30d": 50.0, "credit_limit": 2000.0}


def _seed(seed: Any, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(f"{where}: seed must be an integer >= 0, got {seed!r}.", fix="Pass e.g. seed=7.")
    return int(seed)


def scenario(scale: float = 1.0) -> Scenario:
    """The capstone world: 3,000 users, 80,000 transactions x ``scale`` over 26 days."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.25 <= scale <= 4:
        raise ValidationError(f"scenario: scale must be a number in [0.25, 4], got {scale!r}.",
                              fix="Pass scale=1 (the default world).")
    return Scenario(name="capstone", start=START, days=26, n_users=3_000, n_merchants=200,
                    n_transactions=80_000, scale=float(scale))


def make_world(*, seed: int, scale: float = 1.0) -> Any:
    """Generate the capstone world (deterministic in ``seed`` and ``scale``)."""
    return generate_world(scenario(scale), seed=_seed(seed, "make_world"))


def daily_user_features(world: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The offline rows of the two views: ``user_daily`` and ``user_profile``.

    ``user_daily``: one row per user and UTC midnight M (from day 1 on); a transaction counts
    at M only when its event time AND its ingestion time are before M. ``txn_count_1d`` and
    ``txn_count_7d`` count events in [M - 1 day, M) and [M - 7 days, M); ``amount_avg_7d``
    and ``amount_avg_30d`` are mean amounts over 7 and 30 days (null when none).
    ``created_timestamp`` equals ``event_timestamp``. ``user_profile``: credit limit per
    profile version (SCD2 ``valid_from``).
    """
    txn = deduplicate(world.transactions)
    users = np.sort(world.users["user_id"].to_numpy(dtype=np.int64))
    pos = np.searchsorted(users, txn["user_id"].to_numpy(dtype=np.int64))
    event = txn["event_timestamp"].to_numpy(dtype="datetime64[us]").astype(np.int64)
    avail = np.maximum(event, txn["ingested_at"].to_numpy(dtype="datetime64[us]").astype(np.int64))
    amount = txn["amount"].to_numpy(dtype=float)
    day_us = int(DAY / timedelta(microseconds=1))
    start_us = int(pd.Timestamp(world.scenario.start).value // 1000)
    frames = []
    for d in range(1, world.scenario.days + 1):
        m = start_us + d * day_us
        known = avail < m

        def window(days: int, known: np.ndarray = known, m: int = m) -> tuple[np.ndarray, np.ndarray]:
            sel = known & (event >= m - days * day_us)
            count = np.bincount(pos[sel], minlength=len(users)).astype(np.int64)
            total = np.bincount(pos[sel], weights=amount[sel], minlength=len(users))
            return count, total

        c1, _ = window(1)
        c7, s7 = window(7)
        c30, s30 = window(30)
        with np.errstate(invalid="ignore", divide="ignore"):
            frames.append(pd.DataFrame({
                "user_id": users, "event_timestamp": pd.Timestamp(m, unit="us", tz=UTC),
                "txn_count_1d": c1, "txn_count_7d": c7,
                "amount_avg_7d": np.round(np.where(c7 > 0, s7 / np.maximum(c7, 1), np.nan), 4),
                "amount_avg_30d": np.round(np.where(c30 > 0, s30 / np.maximum(c30, 1), np.nan), 4)}))
    daily = pd.concat(frames, ignore_index=True)
    daily["event_timestamp"] = daily["event_timestamp"].astype("datetime64[us, UTC]")
    daily["created_timestamp"] = daily["event_timestamp"]
    profile = user_profile_features(world)[["user_id", "event_timestamp", "credit_limit", "created_timestamp"]]
    return daily, profile.reset_index(drop=True)


def feature_views() -> dict[str, FeatureView]:
    """``user_daily`` (TTL two days: one missed daily job is tolerated) and ``user_profile``."""
    user = Entity(name="user", join_keys=["user_id"])
    daily = FeatureView(name="user_daily", entities=[user], ttl=2 * DAY, created_timestamp_column="created_timestamp",
                        schema=[Field(name="txn_count_1d", dtype="int64"), Field(name="txn_count_7d", dtype="int64"),
                                Field(name="amount_avg_7d", dtype="float64"),
                                Field(name="amount_avg_30d", dtype="float64")],
                        owner="risk-features", description="user activity as of each UTC midnight (daily job)")
    profile = FeatureView(name="user_profile", entities=[user], ttl=None,
                          created_timestamp_column="created_timestamp",
                          schema=[Field(name="credit_limit", dtype="float64")], owner="accounts-data",
                          description="credit limit per profile version")
    return {"user_daily": daily, "user_profile": profile}


def feature_refs() -> list[str]:
    """The model's feature-store inputs as ``view:feature`` references."""
    return [f"user_daily:{f}" for f in DAILY_FEATURES] + ["user_profile:credit_limit"]


def build_features(ws: Any, world: Any, *, clock: FixedClock | None = None,
                   online_store: str = "sqlite") -> tuple[FeatureStore, dict[str, Any]]:
    """Apply the views and ingest the offline rows into ``ws``'s feature store (online stays empty).

    ``online_store`` is ``"sqlite"`` or a Redis URL, validated as in chapter 2 (``ch02_sync.lab_store``).
    """
    store = lab_store(ws, clock=clock or FixedClock(world.scenario.start), online_store=online_store)
    views = feature_views()
    store.apply([views["user_daily"].entities[0], *views.values()])
    daily, profile = daily_user_features(world)
    report = {"user_daily": store.ingest("user_daily", daily)["rows"],
              "user_profile": store.ingest("user_profile", profile)["rows"],
              "fingerprints": {name: v.fingerprint for name, v in views.items()}}
    return store, report


def _entities(world: Any) -> pd.DataFrame:
    ent = entity_frame(world)
    out = ent[["transaction_id", "user_id", "event_timestamp", "is_fraud", "label_timestamp", "amount",
               "channel"]].copy()
    out["is_online"] = (out["channel"].astype(str) == "online").astype(np.float64)
    out["is_fraud"] = out["is_fraud"].astype(np.int8)
    return out


def training_frames(store: FeatureStore, world: Any) -> dict[str, pd.DataFrame]:
    """Point-in-time training (``TRAIN_START``-``TRAIN_END``) and evaluation (``TRAIN_END``-``EVAL_END``) sets.

    Also returns ``traffic``: every later transaction (the requests of the three windows),
    with its label and the request inputs only; features are fetched online when served.
    """
    ent = _entities(world)
    ts = ent["event_timestamp"]
    labelled = ent[(ts >= pd.Timestamp(TRAIN_START)) & (ts < pd.Timestamp(EVAL_END))].reset_index(drop=True)
    joined = store.get_historical_features(labelled, feature_refs())
    train = joined[joined["event_timestamp"] < pd.Timestamp(TRAIN_END)].reset_index(drop=True)
    evalset = joined[joined["event_timestamp"] >= pd.Timestamp(TRAIN_END)].reset_index(drop=True)
    traffic = ent[ts >= pd.Timestamp(EVAL_END)].reset_index(drop=True)
    return {"train": train, "eval": evalset, "traffic": traffic}


def write_snapshot(ws: Any, name: str, df: pd.DataFrame) -> tuple[Path, str]:
    """Write ``df`` as ``<snapshots_dir>/<name>.parquet`` (atomic); return its path and sha256."""
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValidationError(f"write_snapshot({name!r}): expected a non-empty DataFrame.", fix="Pass the frame.")
    target = Path(ws.snapshots_dir) / f"{name}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False, compression="zstd")
    return target, sha256_file(target)


class CapstoneScorer:
    """A logistic scorer packaged with its preprocessing; takes the raw inputs of its signature.

    Missing inputs are filled with :data:`FILL` (the serving path does the same), then
    transformed: log amounts and counts, the amount's log-ratio to the user's 7- and 30-day
    averages, and the online flag.
    """

    def __init__(self, inputs: tuple[str, ...], *, C: float = 0.5) -> None:
        unknown = [i for i in inputs if i not in INPUTS]
        if not inputs or unknown:
            raise ValidationError(f"CapstoneScorer: unknown inputs {unknown or inputs!r}.", fix=f"Use names from {INPUTS}.")
        self.inputs = tuple(inputs)
        self.C = float(C)
        self.estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=self.C))
        self.feature_names_in_ = np.array(self.inputs, dtype=object)

    def matrix(self, df: pd.DataFrame) -> pd.DataFrame:
        """The numeric design matrix of ``df`` (only this scorer's inputs are read)."""
        missing = [c for c in self.inputs if c not in df.columns]
        if missing:
            raise ValidationError(f"CapstoneScorer: input lacks columns {missing}.", fix="Pass every signature input.")
        x = {c: pd.to_numeric(df[c], errors="coerce").astype(float).fillna(FILL[c]).to_numpy() for c in self.inputs}
        out = {}
        if "amount" in x:
            out["log_amount"] = np.log1p(np.clip(x["amount"], 0, None))
        for c in ("txn_count_1d", "txn_count_7d", "credit_limit"):
            if c in x:
                out[f"log_{c}"] = np.log1p(np.clip(x[c], 0, None))
        for c in ("amount_avg_7d", "amount_avg_30d"):
            if c in x and "amount" in x:
                out[f"ratio_{c}"] = np.log((np.clip(x["amount"], 0, None) + 1) / (np.clip(x[c], 0, None) + 1))
        if "is_online" in x:
            out["is_online"] = x["is_online"]
        return pd.DataFrame(out)

    def fit(self, df: pd.DataFrame, y: Any) -> "CapstoneScorer":
        """Fit on a training frame and its 0/1 labels."""
        self.estimator.fit(self.matrix(df), np.asarray(y, dtype=int))
        return self

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """``[P(legit), P(fraud)]`` per row."""
        return self.estimator.predict_proba(self.matrix(df))

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """The fraud probability per row."""
        return self.predict_proba(df)[:, 1]


def train(frames: dict[str, pd.DataFrame], *, inputs: tuple[str, ...] = INPUTS, C: float = 0.5,
          train_key: str = "train") -> tuple[CapstoneScorer, dict[str, Any]]:
    """Fit a scorer on ``frames[train_key]``; report AUC and per-channel AUC on ``frames['eval']``."""
    tr, ev = frames[train_key], frames["eval"]
    scorer = CapstoneScorer(tuple(inputs), C=C).fit(tr, tr["is_fraud"])
    scores = scorer.predict(ev)
    y = ev["is_fraud"].astype(int).to_numpy()
    seg = {}
    for channel in sorted(ev["channel"].astype(str).unique()):
        m = (ev["channel"].astype(str) == channel).to_numpy()
        seg[f"channel={channel}"] = {"auc": round(float(roc_auc_score(y[m], scores[m])), 6)}
    return scorer, {"auc": round(float(roc_auc_score(y, scores)), 6), "segment_metrics": seg,
                    "parameters": {"model": "logistic", "C": float(C), "inputs": list(inputs), "train_set": train_key}}


def model_signature(inputs: tuple[str, ...]) -> ModelSignature:
    """Declared domains: request inputs non-null, feature-store inputs nullable, numbers >= 0."""
    specs = [ColumnSpec(name=c, dtype="float64", nullable=c not in REQUEST_INPUTS, minimum=0.0,
                        maximum=1.0 if c == "is_online" else None) for c in inputs]
    return ModelSignature(inputs=tuple(specs), outputs=(ColumnSpec(name="fraud_probability", dtype="float64",
                                                                   nullable=False, minimum=0.0, maximum=1.0),))


def code_revision() -> str:
    """Content hash (first 12 hex) of this module's source: the training code's revision."""
    return hashlib.sha256(inspect.getsource(inspect.getmodule(code_revision)).encode()).hexdigest()[:12]


def lab_registry(ws: Any, *, policies: dict[str, list[Any]] | None = None) -> tuple[ModelRegistry, FixedClock]:
    """A registry on ``ws`` with a ``FixedClock`` at the training cutoff plus three days."""
    clock = FixedClock(EVAL_END - timedelta(hours=12))
    return ModelRegistry(ws, clock=clock, stage_policies=policies), clock


def register(registry: ModelRegistry, scorer: CapstoneScorer, report: dict[str, Any], *,
             snapshots: dict[str, tuple[str, int]], params: dict[str, Any], author: str, run_id: str) -> Any:
    """Register ``scorer`` with metadata, signature and lineage (views, fingerprints, snapshot hashes).

    ``snapshots`` maps snapshot name (``train``/``eval`` or a variant) to ``(sha256, rows)``;
    ``params`` (seed, scale, scenario, windows) are stored with the model's hyperparameters.
    """
    views = feature_views()
    view_of = {ref.split(":")[1]: ref.split(":")[0] for ref in feature_refs()}
    used = {name: tuple(f for f in scorer.inputs if view_of.get(f) == name) for name in views}
    names = tuple(snapshots)
    refs = tuple(FeatureRef(view=n, version=v.version, fingerprint=v.fingerprint, features=used[n], snapshots=names)
                 for n, v in sorted(views.items()) if used[n])
    snaps = tuple(DataSnapshot(name=n, sha256=h, rows=rows, role="evaluation" if n.startswith("eval") else "training",
                               as_of=(EVAL_END if n.startswith("eval") else TRAIN_END).isoformat())
                  for n, (h, rows) in snapshots.items())
    eval_id = next(h for n, (h, _) in snapshots.items() if n.startswith("eval"))
    meta = ModelMetadata(code_revision=code_revision(), training_run_id=run_id,
                         environment=capture_environment(["numpy", "pandas", "scikit-learn"]),
                         parameters={**report["parameters"], **params}, metrics={"auc": report["auc"]},
                         eval_set_id=eval_id, segment_metrics=report["segment_metrics"],
                         preprocessing_fingerprint=hashlib.sha256("|".join(scorer.inputs).encode()).hexdigest())
    return registry.register_model(MODEL, scorer, signature=model_signature(scorer.inputs), metadata=meta,
                                   lineage=Lineage(features=refs, snapshots=snaps), author=author)


def approve_and_promote(registry: ModelRegistry, clock: FixedClock, version: int, *, deploy: bool = False) -> None:
    """candidate -> staging -> two approvals (ml-owner, risk) -> approved-prod (-> deploy)."""
    for alias in ("candidate", "staging"):
        registry.promote(MODEL, version, alias, actor="dana", reason=f"CI gates passed for {alias}")
        clock.advance(timedelta(minutes=10))
    registry.approve(MODEL, version, actor="olivia", role="ml-owner", note="offline and segment metrics reviewed")
    registry.approve(MODEL, version, actor="rita", role="risk", note="risk review: golden set and contract pass")
    registry.promote(MODEL, version, "approved-prod", actor="olivia", reason="approved by ml-owner and risk")
    clock.advance(timedelta(minutes=10))
    if deploy:
        registry.deploy(MODEL, actor="deployer", reason="initial release")


def lineage_document(registry: ModelRegistry, version: int) -> dict[str, Any]:
    """The registry's lineage of ``version`` plus the run parameters it was trained with."""
    mv = registry.get_model_version(MODEL, version)
    return {**registry.lineage(MODEL, version), "parameters": dict(mv.metadata.parameters),
            "metrics": dict(mv.metadata.metrics)}


def fingerprints(doc: dict[str, Any]) -> dict[str, Any]:
    """What a rebuild must reproduce, read from a lineage document."""
    return {"code_revision": doc["code"]["revision"], "artifact_sha256": doc["model"]["artifact_sha256"],
            "snapshots": {s["name"]: s["sha256"] for s in doc["lineage"]["snapshots"]},
            "view_fingerprints": {f["view"]: f["fingerprint"] for f in doc["lineage"]["features"]},
            "auc": doc["metrics"]["auc"]}


def audit_compare(original: dict[str, Any], rebuilt: dict[str, Any], *, tolerance: float = 1e-9) -> pd.DataFrame:
    """One row per fingerprint (snapshots, views, code, artifact) and the AUC, with ``match``."""
    rows = [{"item": f"snapshot:{n}", "original": h[:12], "rebuilt": str(rebuilt["snapshots"].get(n))[:12],
             "match": rebuilt["snapshots"].get(n) == h} for n, h in original["snapshots"].items()]
    rows += [{"item": f"view:{n}", "original": h[:12], "rebuilt": str(rebuilt["view_fingerprints"].get(n))[:12],
              "match": rebuilt["view_fingerprints"].get(n) == h} for n, h in original["view_fingerprints"].items()]
    for k in ("code_revision", "artifact_sha256"):
        rows.append({"item": k, "original": original[k][:12], "rebuilt": str(rebuilt[k])[:12],
                     "match": original[k] == rebuilt[k]})
    diff = abs(float(original["auc"]) - float(rebuilt["auc"]))
    rows.append({"item": "auc", "original": f"{original['auc']:.6f}", "rebuilt": f"{rebuilt['auc']:.6f}",
                 "match": bool(diff <= tolerance)})
    return pd.DataFrame(rows)


def rebuild_from_lineage(lineage: dict[str, Any], ws: Any) -> dict[str, Any]:
    """Rebuild the model of a lineage document in the clean workspace ``ws`` and report every fingerprint.

    Reads only the lineage: ``parameters`` (seed, scale, inputs, C), the feature views and
    the snapshot names; regenerates the world, the feature views, the point-in-time sets,
    the snapshots and the model, registers it in ``ws``'s registry and returns the rebuilt
    fingerprints (code revision, view fingerprints, snapshot sha256, artifact sha256, AUC).
    """
    if not isinstance(lineage, dict) or "parameters" not in lineage or "lineage" not in lineage:
        raise ValidationError("rebuild_from_lineage: expected the dict from lineage_document().",
                              fix="Pass lineage_document(registry, version).")
    p = lineage["parameters"]
    world = make_world(seed=int(p["seed"]), scale=float(p["scale"]))
    store, feat = build_features(ws, world)
    frames = training_frames(store, world)
    snaps = {}
    for s in lineage["lineage"]["snapshots"]:
        key = "eval" if s["name"].startswith("eval") else "train"
        snaps[s["name"]] = write_snapshot(ws, s["name"], frames[key])
    scorer, report = train(frames, inputs=tuple(p["inputs"]), C=float(p["C"]))
    registry, _ = lab_registry(ws)
    mv = register(registry, scorer, report, snapshots={n: (h, len(frames["eval" if n.startswith("eval") else "train"]))
                                                       for n, (_, h) in snaps.items()},
                  params={k: p[k] for k in ("seed", "scale")}, author="auditor", run_id="rebuild")
    return {"code_revision": code_revision(), "view_fingerprints": feat["fingerprints"],
            "snapshots": {n: h for n, (_, h) in snaps.items()}, "artifact_sha256": mv.artifact_sha256,
            "auc": report["auc"], "segment_metrics": report["segment_metrics"], "version": int(mv.version),
            "snapshot_paths": {n: str(path) for n, (path, _) in snaps.items()}}
