"""Chapter 1 lab: the platform map, its contracts, SLOs on measured data, and reproducibility.

The notebook calls these functions so its cells stay short. ``build_platform`` puts the
seeded world into a real feature store (offline Parquet, online SQLite) in a workspace;
``system_map`` draws the workspace's components and the contract at every boundary;
``measure_slo_indicators`` reads the online store the way a scoring service does and
returns the observations the SLOs are evaluated on.

Reproducibility (mutable table vs snapshot ids) lives in :mod:`mlops_kit.labs.ch01_repro`;
failure modes, observability and the runbook in :mod:`mlops_kit.labs.ch01_ops`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._time import FixedClock, ensure_utc
from ..datasets import World, user_profile_features, user_transaction_stats
from ..errors import NotFoundError, ValidationError
from ..evidence import load_rubric
from ..features import Entity, FeatureStore, FeatureView, Field, parity_report
from ..quality import SLO, Alert, evaluate_slo
from ..workspace import Workspace

__all__ = [
    "USER_VIEW", "PROFILE_VIEW", "N_SHARDS", "USER_FEATURES", "ASSUMPTIONS", "rubric_table", "build_platform", "restore_shards", "system_map",
    "draw_system_map", "measure_contract_lags", "request_users", "default_slos", "measure_slo_indicators",
    "evaluate_slos", "slos_after_delay",
]

USER_VIEW = "user_transaction_stats"
PROFILE_VIEW = "user_profile"
#: the online store's keys are spread over this many shards (``user_id % N_SHARDS``)
N_SHARDS = 4
USER_FEATURES = ("txn_count_24h", "amount_sum_24h", "txn_count_7d", "amount_avg_7d", "amount_avg_30d")
#: the run's explicit assumptions (section 1); the SLOs and contracts below use these numbers
ASSUMPTIONS = {
    "authoritative_time": "event_timestamp (when the card was used); ingested_at is processing time",
    "label_time": "label_timestamp (chargeback received or window closed)",
    "allowed_materialization_lag_h": 24,
    "allowed_feature_age_p95_h": 120,
    "online_feature_ttl_days": 7,
    "latency_budget_ms": {"p95": 10, "p99": 25},
    "max_ingestion_lag_p90_h": 1,
    "max_parity_mismatch_rate": 0.01,
    "max_feature_null_rate": 0.05,
}


def rubric_table(chapter: int = 1, path: str | Path | None = None) -> pd.DataFrame:
    """The rubric rows of ``chapter`` (id, points, evidence, what the grader verifies)."""
    rows = [c for c in load_rubric(path) if c.chapter == chapter]
    if not rows:
        raise NotFoundError(f"rubric_table: the rubric has no rows for chapter {chapter}.",
                            fix="Check the chapter number, or add its section to rubric.md.")
    return pd.DataFrame([{"id": c.id, "points": c.points, "evidence": c.evidence,
                          "verifies": c.verifies} for c in rows])


def _stats_rows(world: World, stats: pd.DataFrame | None) -> pd.DataFrame:
    stats = user_transaction_stats(world) if stats is None else stats
    return stats[["user_id", "event_timestamp", *USER_FEATURES]].reset_index(drop=True)


def _profile_rows(world: World) -> pd.DataFrame:
    """Profile versions from the world's start on: the version valid at the start is stamped
    at the start (older history is compacted away, one partition instead of hundreds)."""
    prof = user_profile_features(world).drop(columns=["created_timestamp"])
    start = pd.Timestamp(world.scenario.start)
    before = prof["event_timestamp"] <= start
    valid_at_start = prof[before].groupby("user_id", as_index=False).tail(1).assign(event_timestamp=start)
    out = pd.concat([valid_at_start, prof[~before]], ignore_index=True)
    out["event_timestamp"] = out["event_timestamp"].astype("datetime64[us, UTC]")
    return out.sort_values(["event_timestamp", "user_id"], kind="stable").reset_index(drop=True)


def build_platform(ws: Workspace, world: World, *, now: datetime, shards: tuple[int, ...] | None = None,
                   stats: pd.DataFrame | None = None) -> FeatureStore:
    """Ingest the world's user features and materialize them up to ``now``.

    One entity (``user``) and two views owned by ``risk-features``: ``user_transaction_stats``
    (activity before each transaction, TTL 7 days) and ``user_profile`` (profile versions,
    stamped at ``valid_from``, history before the world's start compacted to the version
    valid at the start; no TTL). ``shards`` (a subset of ``0..N_SHARDS-1``) keeps only the
    users with ``user_id % N_SHARDS`` in it: a replica that restored part of its keys.
    ``stats`` is ``user_transaction_stats(world)`` when already computed.
    """
    if not isinstance(ws, Workspace):
        raise ValidationError(f"build_platform: expected a Workspace, got {type(ws).__name__}.",
                              fix="Pass rec.workspace().")
    if shards is not None and (not isinstance(shards, tuple) or not set(shards) <= set(range(N_SHARDS))):
        raise ValidationError(f"build_platform: shards must be a tuple of ints in 0..{N_SHARDS - 1}, got {shards!r}.",
                              fix="Pass e.g. shards=(0, 1), or None for every user.")
    now = ensure_utc(now, name="build_platform(now)")
    store = FeatureStore(ws, clock=FixedClock(now))
    user = Entity(name="user", join_keys=["user_id"])
    stats_view = FeatureView(name=USER_VIEW, entities=[user], owner="risk-features",
                             ttl=timedelta(days=ASSUMPTIONS["online_feature_ttl_days"]),
                             schema=[Field(name="txn_count_24h", dtype="int64"),
                                     Field(name="amount_sum_24h", dtype="float64"),
                                     Field(name="txn_count_7d", dtype="int64"),
                                     Field(name="amount_avg_7d", dtype="float64"),
                                     Field(name="amount_avg_30d", dtype="float64")],
                             description="user card activity before each transaction (event time)")
    profile = FeatureView(name=PROFILE_VIEW, entities=[user], owner="risk-features", ttl=None,
                          schema=[Field(name="account_status", dtype="string"),
                                  Field(name="credit_limit", dtype="float64"),
                                  Field(name="risk_tier", dtype="string")],
                          description="account profile versions, valid from event_timestamp")
    store.apply([user, stats_view, profile])
    rows, prof = _stats_rows(world, stats), _profile_rows(world)
    if shards is not None:
        rows = rows[(rows["user_id"] % N_SHARDS).isin(shards)]
        prof = prof[(prof["user_id"] % N_SHARDS).isin(shards)]
    store.ingest(USER_VIEW, rows.reset_index(drop=True))
    store.ingest(PROFILE_VIEW, prof.reset_index(drop=True))
    store.materialize_incremental(now)
    return store


def restore_shards(store: FeatureStore, world: World, *, shards: tuple[int, ...], now: datetime,
                   stats: pd.DataFrame | None = None) -> int:
    """Ingest the given key shards into a partial replica and re-materialize it; returns rows added."""
    if not isinstance(shards, tuple) or not shards or not set(shards) <= set(range(N_SHARDS)):
        raise ValidationError(f"restore_shards: shards must be a non-empty tuple of ints in 0..{N_SHARDS - 1}, "
                              f"got {shards!r}.", fix="Pass e.g. shards=(2, 3).")
    now = ensure_utc(now, name="restore_shards(now)")
    rows = _stats_rows(world, stats)
    rows = rows[(rows["user_id"] % N_SHARDS).isin(shards)].reset_index(drop=True)
    prof = _profile_rows(world)
    prof = prof[(prof["user_id"] % N_SHARDS).isin(shards)].reset_index(drop=True)
    store.ingest(USER_VIEW, rows)
    store.ingest(PROFILE_VIEW, prof)
    store.materialize(world.scenario.start, now)
    return int(len(rows) + len(prof))


_COMPONENTS = (
    ("data", "source tables", "transactions, labels, profiles (generated world)"),
    ("features", "offline store", "offline/ Parquet + features.sqlite"),
    ("online", "online store", "online.sqlite (keyed lookup, TTL)"),
    ("model", "training", "fit on point-in-time training sets"),
    ("registry", "model registry", "registry.sqlite + artifacts/"),
    ("deployment", "scoring service", "online features + registry alias"),
    ("monitoring", "monitoring", "prediction logs, SLOs, drift"),
)
_BOUNDARIES = (
    ("data", "features", "user_id, amount, event_timestamp, ingested_at", "event_timestamp",
     ASSUMPTIONS["max_ingestion_lag_p90_h"], "payments-data"),
    ("features", "online", "user_id, " + ", ".join(USER_FEATURES), "event_timestamp",
     ASSUMPTIONS["allowed_materialization_lag_h"], "risk-features"),
    ("features", "model", "training rows + features as of event_timestamp, is_fraud",
     "event_timestamp (features), label_timestamp (labels)", 24 * 60, "ml-training"),
    ("model", "registry", "artifact sha256, signature, snapshot ids, metrics", "registered_at", 24,
     "ml-training"),
    ("registry", "deployment", "alias deployed-prod -> version", "deployed_at", 1, "ml-platform"),
    ("online", "deployment", "user_id -> features + feature event_timestamp", "event_timestamp",
     ASSUMPTIONS["allowed_feature_age_p95_h"], "risk-features"),
    ("deployment", "monitoring", "prediction log: version, feature age, fallback, score", "scored_at",
     0.25, "ml-platform"),
)


def system_map(ws: Workspace) -> tuple[Any, pd.DataFrame]:
    """The workspace's components as a ``networkx.DiGraph`` and the boundary contracts table.

    Each node carries its role and where it lives in the workspace; each edge carries its
    contract: ``schema``, ``time_field``, ``allowed_lag_h`` and ``owner``.
    """
    import networkx as nx

    if not isinstance(ws, Workspace):
        raise ValidationError(f"system_map: expected a Workspace, got {type(ws).__name__}.",
                              fix="Pass rec.workspace().")
    graph = nx.DiGraph()
    for name, role, where in _COMPONENTS:
        graph.add_node(name, role=role, where=where)
    rows = []
    for src, dst, schema, time_field, lag, owner in _BOUNDARIES:
        graph.add_edge(src, dst, schema=schema, time_field=time_field, allowed_lag_h=lag, owner=owner)
        rows.append({"boundary": f"{src} -> {dst}", "schema": schema, "time_field": time_field,
                     "allowed_lag_h": lag, "owner": owner})
    return graph, pd.DataFrame(rows)


def draw_system_map(graph: Any) -> Any:
    """A left-to-right drawing of the map; edges labelled with owner and allowed lag."""
    import matplotlib.pyplot as plt
    import networkx as nx

    pos = {"data": (0, 0), "features": (1, 0), "online": (2, 0.8), "model": (2, -0.8),
           "registry": (3, -0.8), "deployment": (4, 0), "monitoring": (5, 0)}
    missing = set(graph.nodes) - set(pos)
    if missing:
        raise ValidationError(f"draw_system_map: no position for nodes {sorted(missing)}.",
                              fix="Draw the graph returned by system_map().")
    fig, ax = plt.subplots(figsize=(11, 3.8))
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=3400, node_color="#dbe9f6", edgecolors="#2b5d8a")
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=8)
    nx.draw_networkx_edges(graph, pos, ax=ax, arrows=True, arrowsize=16, node_size=3400, edge_color="#555")
    labels = {(u, v): f"{d['owner']}\n<= {d['allowed_lag_h']:g} h" for u, v, d in graph.edges(data=True)}
    nx.draw_networkx_edge_labels(graph, pos, edge_labels=labels, ax=ax, font_size=7)
    ax.set_title("System map: every boundary has a contract (owner, allowed lag)")
    ax.set_axis_off()
    ax.margins(x=0.06, y=0.25)
    fig.tight_layout()
    return fig


def measure_contract_lags(world: World, store: FeatureStore, *, now: datetime) -> pd.DataFrame:
    """Measured lag at the boundaries this chapter exercises, against the allowed lag.

    ``data -> features``: p90 of ``ingested_at - event_timestamp`` (hours; the ~5 % of late
    rows are expected and handled by event-time joins, so the contract bounds the bulk);
    ``features -> online``: ``now`` minus the view's materialization watermark (hours).
    """
    now = ensure_utc(now, name="measure_contract_lags(now)")
    txn = world.transactions
    lag_h = (txn["ingested_at"] - txn["event_timestamp"]).dt.total_seconds() / 3600
    mark = store.watermark(USER_VIEW)
    online_lag = np.inf if mark is None else (now - mark).total_seconds() / 3600
    rows = [("data -> features", "p90 ingestion lag", float(np.percentile(lag_h, 90)),
             ASSUMPTIONS["max_ingestion_lag_p90_h"]),
            ("features -> online", "now - materialization watermark", float(online_lag),
             ASSUMPTIONS["allowed_materialization_lag_h"])]
    out = pd.DataFrame(rows, columns=["boundary", "measure", "measured_h", "allowed_h"])
    out["within"] = out["measured_h"] <= out["allowed_h"]
    out["measured_h"] = out["measured_h"].round(3)
    return out


def default_slos() -> list[SLO]:
    """Freshness, correctness, latency (p95 and p99) and quality SLOs, each with owner and alert."""
    day = timedelta(days=1)
    return [
        SLO(name="feature_freshness_p95", kind="freshness", indicator="feature_age_hours", statistic="p95",
            objective=float(ASSUMPTIONS["allowed_feature_age_p95_h"]), window=day, owner="risk-features", unit="h",
            alert=Alert(name="FeatureFreshnessBurn", severity="critical", route="pagerduty:risk-features")),
        SLO(name="online_offline_parity", kind="correctness", indicator="parity_mismatch", statistic="rate",
            objective=ASSUMPTIONS["max_parity_mismatch_rate"], window=day, owner="risk-features",
            alert=Alert(name="FeatureParityBroken", severity="critical", route="pagerduty:risk-features")),
        SLO(name="online_read_latency_p95", kind="latency", indicator="online_read_ms", statistic="p95",
            objective=float(ASSUMPTIONS["latency_budget_ms"]["p95"]), window=day, owner="ml-platform",
            unit="ms", alert=Alert(name="OnlineLatencyP95", severity="warning", route="jira:MLPLAT")),
        SLO(name="online_read_latency_p99", kind="latency", indicator="online_read_ms", statistic="p99",
            objective=float(ASSUMPTIONS["latency_budget_ms"]["p99"]), window=day, owner="ml-platform",
            unit="ms", alert=Alert(name="OnlineLatencyP99", severity="critical", route="pagerduty:ml-platform")),
    ]


def request_users(world: World, *, now: datetime, seed: int, n: int) -> np.ndarray:
    """``n`` user ids drawn like scoring traffic: a random transaction of the 7 days before ``now``."""
    now = ensure_utc(now, name="request_users(now)")
    txn = world.transactions
    recent = txn.loc[(txn["event_timestamp"] >= pd.Timestamp(now - timedelta(days=7)))
                     & (txn["event_timestamp"] < pd.Timestamp(now)), "user_id"].to_numpy(np.int64)
    if recent.size == 0:
        raise ValidationError(f"request_users: no transactions in the 7 days before {now.isoformat()}.",
                              fix="Pass a `now` inside the world's time range.")
    return np.random.default_rng(seed).choice(recent, size=n, replace=True)


def measure_slo_indicators(store: FeatureStore, world: World, *, now: datetime, seed: int,
                           n_requests: int = 400) -> pd.DataFrame:
    """Replay ``n_requests`` scoring requests against the online store and measure indicators.

    Returns long-form observations ``indicator, value``: ``feature_age_hours`` (now minus the
    served value's event time, for keys that returned a value), ``online_read_ms`` (wall time
    of each keyed read), ``feature_null`` (1 when ``amount_avg_7d`` came back null) and
    ``parity_mismatch`` (1 per offline/online disagreement from ``parity_report``).
    """
    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 20:
        raise ValidationError(f"measure_slo_indicators: n_requests must be an integer >= 20, got {n_requests!r}.",
                              fix="Use e.g. n_requests=400.")
    now = ensure_utc(now, name="measure_slo_indicators(now)")
    users = request_users(world, now=now, seed=seed, n=n_requests)
    refs = [f"{USER_VIEW}:{f}" for f in USER_FEATURES]
    ages, nulls, millis = [], [], []
    for user in users.tolist():
        t0 = time.perf_counter()
        row = store.get_online_features(refs, [{"user_id": user}], include_timestamps=True)
        millis.append((time.perf_counter() - t0) * 1000)
        ts = row[f"{USER_VIEW}__event_timestamp"][0]
        nulls.append(1.0 if row["amount_avg_7d"][0] is None else 0.0)
        if ts is not None:
            ages.append((now - ensure_utc(pd.Timestamp(ts).to_pydatetime(), name="ts")).total_seconds() / 3600)
    parity = parity_report(store, refs, sample_size=200, seed=seed, at=now, tolerance=1e-9)
    bad = len(parity.mismatches) + len(parity.missing_online)
    parity_obs = [1.0] * bad + [0.0] * max(parity.compared - bad, 0)
    frames = [pd.DataFrame({"indicator": name, "value": np.asarray(vals, dtype=float)})
              for name, vals in (("feature_age_hours", ages), ("online_read_ms", millis),
                                 ("feature_null", nulls), ("parity_mismatch", parity_obs))]
    return pd.concat(frames, ignore_index=True)


def evaluate_slos(slos: list[SLO], observations: pd.DataFrame) -> pd.DataFrame:
    """Evaluate each SLO on the observations of its indicator; one row per SLO."""
    if not isinstance(observations, pd.DataFrame) or not {"indicator", "value"} <= set(observations.columns):
        raise ValidationError("evaluate_slos: observations need 'indicator' and 'value' columns.",
                              fix="Pass the frame from measure_slo_indicators().")
    rows = []
    for slo in slos:
        values = observations.loc[observations["indicator"] == slo.indicator, "value"].to_numpy(float)
        result = evaluate_slo(slo, values)
        rows.append({"slo": slo.name, "kind": slo.kind, "statistic": slo.statistic,
                     "observed": None if result.observed is None else round(result.observed, 2),
                     "objective": slo.objective, "verdict": result.verdict, "n": result.n,
                     "alert": slo.alert.name, "fires": result.alert is not None, "owner": slo.owner})
    return pd.DataFrame(rows)


def slos_after_delay(slos: list[SLO], observations: pd.DataFrame, delay_h: float) -> pd.DataFrame:
    """The SLO table if the materialization job had stalled ``delay_h`` hours (ages grow by it)."""
    if isinstance(delay_h, bool) or not isinstance(delay_h, (int, float)) or not 0 <= delay_h <= 24 * 30:
        raise ValidationError(f"slos_after_delay: delay_h must be a number of hours in [0, 720], got {delay_h!r}.",
                              fix="Pass e.g. delay_h=12.")
    shifted = observations.copy()
    ages = shifted["indicator"] == "feature_age_hours"
    shifted.loc[ages, "value"] = shifted.loc[ages, "value"] + float(delay_h)
    return evaluate_slos(slos, shifted)
