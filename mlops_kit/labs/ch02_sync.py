"""Chapter 2 lab, sections 3-6: the TTL exercise and widget, offline/online sync, definitions
as code and governance (the data behind them comes from ``ch02``), and the store's engines.

>>> import pandas as pd
>>> from datetime import timedelta
>>> rows = pd.DataFrame({"event_timestamp": pd.to_datetime(["2024-01-01", "2024-01-03"], utc=True),
...                      "fraud_rate_30d": [0.1, 0.2]})
>>> at = pd.Timestamp("2024-01-04", tz="UTC")
>>> ttl_window(rows, at, timedelta(days=1))["status"].tolist()
['too old', 'winner']
"""

from __future__ import annotations

import shutil
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..datasets import World, entity_frame, merchant_risk
from ..errors import ValidationError
from ..features import FeatureStore, FeatureView, Field, parity_report
from ..quality import NullRateCheck, QualitySuite, RangeCheck, UniqueKeyCheck
from ..workspace import Workspace
from .ch02 import MERCHANT

__all__ = [
    "GOOD_AGE", "STALE_AGE", "gappy_merchant_risk", "ttl_admission", "ttl_window", "asof_join_sql",
    "asof_probe", "asof_reference", "asof_diagnosis", "offline_rows_in",
    "online_ages", "p95", "parity_table", "contract_suite", "broken_batch", "lab_store", "engines",
    "engine_equality",
]

#: A merchant risk row this old is still good (one missed daily run).
GOOD_AGE = timedelta(hours=48)
#: A merchant risk row older than this must read null (the model falls back to a default).
STALE_AGE = timedelta(hours=72)


# -- TTL: exercise 2.1 and the widget --------------------------------------------------------
def gappy_merchant_risk(world: World, *, seed: int, merchants: int = 20, first_day: int = 30,
                        last_day: int = 40) -> pd.DataFrame:
    """Daily merchant risk where the job failed for ``merchants`` merchants on days
    ``first_day..last_day`` (their rows are missing), so some rows grow old."""
    risk = merchant_risk(world)
    rng = np.random.default_rng(seed)
    ids = world.merchants["merchant_id"].to_numpy()
    hit = rng.choice(ids, size=min(merchants, len(ids)), replace=False)
    day = (risk["event_timestamp"] - pd.Timestamp(world.scenario.start)) // pd.Timedelta(days=1)
    gap = risk["merchant_id"].isin(hit) & (day >= first_day) & (day <= last_day)
    return risk[~gap].reset_index(drop=True)


def ttl_admission(root: str | Path, world: World, risk: pd.DataFrame, ttl: Any) -> dict[str, Any]:
    """Join every training row to ``risk`` through a fresh store whose view has ``ttl``.

    Row age is computed independently (pandas ``merge_asof`` without any TTL). Returns the
    counts of good rows (age <= ``GOOD_AGE``) admitted and stale rows (age > ``STALE_AGE``)
    admitted, whether every admitted row is within the TTL, and two edge probes read through
    the same store: a row exactly ``GOOD_AGE`` old (``edge_good_admitted``) and a row one
    minute older than ``STALE_AGE`` (``edge_stale_refused``), so the rule is tested at its
    edges even where the data has no row of those ages.
    """
    if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
        raise ValidationError(f"ttl_admission: ttl must be a positive timedelta, got {ttl!r}.",
                              fix="Pass a datetime.timedelta greater than zero.")
    folder = Path(root) / f"ttl-{int(ttl.total_seconds())}"
    if folder.exists():
        shutil.rmtree(folder)
    store = FeatureStore(Workspace(folder))
    view = FeatureView(name="merchant_risk_ttl", entities=[MERCHANT], ttl=ttl,
                       schema=[Field(name="txn_count_30d", dtype="int64"),
                               Field(name="fraud_rate_30d", dtype="float64")],
                       created_timestamp_column="created_timestamp")
    store.apply([view])
    store.ingest(view.name, risk[["merchant_id", "event_timestamp", "txn_count_30d", "fraud_rate_30d",
                                  "created_timestamp"]])
    rows = entity_frame(world, request_features=False)[["merchant_id", "event_timestamp"]]
    got = store.get_historical_features(rows, ["merchant_risk_ttl:txn_count_30d"])
    stamps = risk[["merchant_id", "event_timestamp"]].rename(columns={"event_timestamp": "row_ts"})
    stamps["event_timestamp"] = stamps["row_ts"]
    ordered = rows.reset_index().sort_values("event_timestamp", kind="stable")
    asof = pd.merge_asof(ordered, stamps.sort_values("event_timestamp"), on="event_timestamp",
                         by="merchant_id", direction="backward").set_index("index").sort_index()
    age = rows["event_timestamp"] - asof["row_ts"]
    admitted = pd.Series(got["txn_count_30d"].notna().to_numpy(), index=rows.index)
    good, stale = age <= GOOD_AGE, age > STALE_AGE
    last = risk.sort_values("event_timestamp", kind="stable").iloc[-1]
    edges = pd.DataFrame({"merchant_id": [last["merchant_id"]] * 2,
                          "event_timestamp": [last["event_timestamp"] + GOOD_AGE,
                                              last["event_timestamp"] + STALE_AGE + timedelta(minutes=1)]})
    edges["event_timestamp"] = edges["event_timestamp"].astype(rows["event_timestamp"].dtype)
    edge = store.get_historical_features(edges, ["merchant_risk_ttl:txn_count_30d"])["txn_count_30d"]
    return {"ttl_hours": round(ttl / timedelta(hours=1), 2), "rows": int(len(rows)),
            "good_rows": int(good.sum()), "good_admitted": int((admitted & good).sum()),
            "stale_rows": int(stale.sum()), "stale_admitted": int((admitted & stale).sum()),
            "admitted_beyond_ttl": int((admitted & (age > ttl)).sum()),
            "edge_good_admitted": bool(pd.notna(edge.iloc[0])), "edge_stale_refused": bool(pd.isna(edge.iloc[1]))}


def ttl_window(rows: pd.DataFrame, at: Any, ttl: timedelta | None, *, value: str = "fraud_rate_30d") -> pd.DataFrame:
    """Which feature rows of one key a training row at ``at`` can see under ``ttl``.

    Status per row: ``future`` (after ``at``), ``too old`` (before ``at - ttl``),
    ``candidate`` or ``winner`` (the latest candidate). ``ttl=None`` means no bound.
    """
    at = pd.Timestamp(at)
    if at.tzinfo is None:
        raise ValidationError("ttl_window: at must be tz-aware.", fix="Use pd.Timestamp(..., tz='UTC').")
    out = rows[["event_timestamp", value]].sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    age = at - out["event_timestamp"]
    status = np.where(age < pd.Timedelta(0), "future",
                      np.where((ttl is not None) & (age > pd.Timedelta(ttl or timedelta(0))), "too old", "candidate"))
    status = pd.Series(status, dtype=object)
    cands = np.flatnonzero(status.to_numpy() == "candidate")
    if len(cands):
        status.iloc[cands[-1]] = "winner"
    out["age_h"] = (age / pd.Timedelta(hours=1)).round(1)
    out["status"] = status
    return out


# -- exercise 2.2: the as-of condition in SQL ------------------------------------------------
def asof_join_sql(store: FeatureStore, entity_df: pd.DataFrame, condition: str, *,
                  view: str = "merchant_risk", key: str = "merchant_id",
                  feature: str = "fraud_rate_30d") -> pd.DataFrame:
    """Join ``entity_df`` (``key, event_timestamp``) to ``view`` with ``condition`` in DuckDB.

    ``condition`` is SQL over ``e`` (the entity row) and ``f`` (a feature row); among the
    feature rows of the same key that satisfy it, the latest ``f.event_timestamp`` wins
    (ties: latest ``f.created_timestamp``). Returns ``entity_df`` with ``feature`` added.
    """
    if not isinstance(condition, str) or not condition.strip():
        raise ValidationError("asof_join_sql: condition must be a SQL boolean expression.",
                              fix="Write e.g. \"f.event_timestamp <= e.event_timestamp\".")
    files = ", ".join(f"'{p}'" for p in store.offline_files(view))
    con = store.duckdb.cursor()
    frame = entity_df[[key, "event_timestamp"]].reset_index(drop=True).copy()
    frame["row_id"] = np.arange(len(frame))
    con.register("e_rows", frame)
    sql = (f"SELECT e.row_id, f.{feature} AS v FROM e_rows e LEFT JOIN read_parquet([{files}]) f "
           f"ON e.{key} = f.{key} AND ({condition}) "
           f"QUALIFY row_number() OVER (PARTITION BY e.row_id ORDER BY f.event_timestamp DESC NULLS LAST, "
           f"f.created_timestamp DESC NULLS LAST) = 1")
    got = con.sql(sql).df().set_index("row_id").sort_index()
    con.close()
    out = entity_df.reset_index(drop=True).copy()
    out[feature] = got["v"].reindex(range(len(out))).to_numpy()
    return out


def asof_probe(rows: pd.DataFrame, store: FeatureStore, *, view: str = "merchant_risk",
               hours: range = range(6, 97, 6), merchants: int = 5) -> pd.DataFrame:
    """Probe rows for an as-of condition: ``rows`` (``merchant_id, event_timestamp``) plus rows
    after the view's last day, ``hours`` after its last row, for the first ``merchants``.

    The later rows have only old feature rows to choose from, so a condition that ignores
    the view's TTL reads a value there that the store's join refuses.
    """
    base = rows[["merchant_id", "event_timestamp"]].reset_index(drop=True)
    last = pd.Timestamp(store.read_offline(view)["event_timestamp"].max())
    keys = sorted(base["merchant_id"].unique())[:merchants]
    late = pd.DataFrame([{"merchant_id": k, "event_timestamp": last + pd.Timedelta(hours=h)}
                         for k in keys for h in hours])
    late["event_timestamp"] = late["event_timestamp"].astype(base["event_timestamp"].dtype)
    return pd.concat([base, late], ignore_index=True)


def asof_reference(store: FeatureStore, probe: pd.DataFrame, *, feature: str = "merchant_risk:fraud_rate_30d") -> pd.DataFrame:
    """The store's own point-in-time join of ``probe`` (``filter_by_created_timestamp=True``)."""
    return store.get_historical_features(probe, [feature], filter_by_created_timestamp=True)


def asof_diagnosis(mine: Any, reference: Any) -> str:
    """How two joined columns differ: rows only yours reads, rows only the reference reads, other values."""
    a, b = pd.Series(mine).reset_index(drop=True), pd.Series(reference).reset_index(drop=True)
    extra = int((a.notna() & b.isna()).sum())
    missing = int((a.isna() & b.notna()).sum())
    other = int((a.notna() & b.notna() & (a.astype("float64") != b.astype("float64"))).sum())
    return (f"{extra} rows read a value where the store's join reads null, {missing} rows read null where it reads "
            f"a value, {other} rows read another feature row: compare f's timestamps with e's on those rows")


def offline_rows_in(store: FeatureStore, view: str, start: datetime | None, end: datetime, *,
                    version: int | None = None) -> int:
    """Offline rows of ``view`` with ``start <= event_timestamp < end`` (``start`` None: no lower bound)."""
    ts = pd.to_datetime(store.read_offline(view, version=version)["event_timestamp"], utc=True)
    keep = ts < pd.Timestamp(end)
    if start is not None:
        keep &= ts >= pd.Timestamp(start)
    return int(keep.sum())


# -- section 4: freshness and parity ------------------------------------------------------
def online_ages(store: FeatureStore, feature: str, users: list[int], at: datetime) -> pd.DataFrame:
    """Online values with their event time and age in hours, as served at ``at``."""
    view = feature.split(":")[0].split("@")[0]
    got = store.get_online_features([feature], [{"user_id": int(u)} for u in users], at=at,
                                     include_timestamps=True)
    ts = pd.to_datetime(pd.Series(got[f"{view}__event_timestamp"]), utc=True)
    out = pd.DataFrame({"user_id": users, "value": got[feature.split(":")[1]], "event_timestamp": ts})
    out["age_h"] = ((pd.Timestamp(at) - ts) / pd.Timedelta(hours=1)).round(3)
    return out


def p95(values: Any) -> float:
    """The 95th percentile (numpy's default linear method), nulls dropped."""
    arr = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy()
    if arr.size == 0:
        raise ValidationError("p95: no values.", fix="Read ages for at least one entity.")
    return float(np.percentile(arr, 95))


def parity_table(store: FeatureStore, feature: str, at: datetime, *, seed: int,
                 tolerance: float = 1e-9) -> tuple[pd.DataFrame, Any]:
    """The kit's ``parity_report`` over every entity, and a full offline/online table.

    The table (``user_id, offline, online, status``) holds every compared entity, so the
    mismatch count can be recomputed from it.
    """
    view = feature.split(":")[0]
    users = sorted(int(u) for u in store.read_offline(view)["user_id"].unique())
    report = parity_report(store, [feature], sample_size=max(len(users), 1), seed=seed, at=at,
                           tolerance=tolerance)
    entity = pd.DataFrame({"user_id": users,
                           "event_timestamp": pd.Series([pd.Timestamp(at)] * len(users)).astype("datetime64[us, UTC]")})
    name = feature.split(":")[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        offline = store.get_historical_features(entity, [feature])[name]
    online = store.get_online_features([feature], [{"user_id": u} for u in users], at=at)[name]
    table = pd.DataFrame({"user_id": users, "offline": offline.astype("Float64").to_numpy(),
                          "online": pd.array(online, dtype="Float64")})
    off_null, on_null = table["offline"].isna(), table["online"].isna()
    close = (table["offline"] - table["online"]).abs().fillna(np.inf) <= tolerance
    table["status"] = np.select([off_null & on_null, on_null, off_null, close],
                                ["match", "missing_online", "missing_offline", "match"], "mismatch")
    return table, report


# -- section 6: the data contract --------------------------------------------------------
def contract_suite(view: FeatureView) -> QualitySuite:
    """Validation rules of the ``user_txn_count`` contract (blocking, owned, with remediation)."""
    owner = view.owner or "risk-features"
    return QualitySuite(view=view.name, checks=[
        UniqueKeyCheck(id="one_row_per_user_day", severity="block", owner=owner,
                       columns=("user_id", "event_timestamp"),
                       remediation="De-duplicate the batch: one row per user and midnight."),
        RangeCheck(id="count_non_negative", severity="block", owner=owner, column="txn_count",
                   min_value=0, max_value=500, remediation="A count is never negative: fix the window code."),
        NullRateCheck(id="count_present", severity="block", owner=owner, column="txn_count", max_rate=0.0,
                      remediation="Write 0 for users without transactions, never null."),
    ])


def broken_batch(good: pd.DataFrame, *, seed: int, share: float = 0.02) -> pd.DataFrame:
    """An upstream bug: a share of counts become -1 and some rows are delivered twice."""
    rng = np.random.default_rng(seed)
    bad = good.copy()
    hit = rng.random(len(bad)) < share
    bad.loc[hit, "txn_count"] = -1
    return pd.concat([bad, bad.iloc[: max(1, int(share * len(bad)))]], ignore_index=True)


# -- engines: the store the chapter runs on ----------------------------------------------------
_ENGINE_FIX = {"online_store": 'Pass "sqlite" or a Redis URL such as "redis://127.0.0.1:6379/0".',
               "offline_engine": 'Pass "duckdb" or "spark" (local[2]; needs pyspark and Java 17+).'}


def lab_store(ws: Workspace, *, clock: Any, online_store: str = "sqlite",
              offline_engine: str = "duckdb") -> FeatureStore:
    """The chapter's feature store: ``online_store`` is ``"sqlite"`` or ``"redis://host:port/db"``,
    ``offline_engine`` is ``"duckdb"``, ``"spark"`` (``local[2]``) or ``"spark://host:port"``.

    Both are notebook parameters, so both must be non-empty strings; the store's own
    configuration parsers then refuse an unsupported value (``StoreConfigError``). Spark starts
    on the first point-in-time join (``OfflineEngineError`` without pyspark or Java 17+).
    """
    for name, value in (("online_store", online_store), ("offline_engine", offline_engine)):
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"lab_store: {name} must be a non-empty string, got {value!r}.",
                                  fix=_ENGINE_FIX[name])
    return FeatureStore(ws, clock=clock, online_store=online_store, offline_engine=offline_engine)


def engines(store: FeatureStore) -> dict[str, str]:
    """The engine kinds only (no URL, port or path), so a run prints and records the same thing."""
    described = store.describe()
    return {"online_store": str(described["online_store"]["kind"]),
            "offline_engine": str(described["offline_engine"]["kind"])}


def engine_equality(frame: pd.DataFrame | None, reference: pd.DataFrame | None, difference: str | None, *,
                    engine: str, reference_engine: str = "duckdb") -> dict[str, Any]:
    """The record of one training set built on ``engine`` and on ``reference_engine``.

    ``difference`` is what ``pandas.testing.assert_frame_equal(frame, reference)`` raised (None:
    it passed). With ``frame`` None nothing was compared (the build ran on one engine only).
    ``verdict`` is the one line the notebook prints.
    """
    if not isinstance(engine, str) or not engine:
        raise ValidationError(f"engine_equality: engine must name the offline engine, got {engine!r}.",
                              fix='Pass engines(store)["offline_engine"], e.g. "spark".')
    if frame is None:
        return {"compared": False, "engines": [engine], "equal": None,
                "verdict": f"not compared: this build runs its joins on {engine} only; build the chapter "
                           f'with offline_engine="spark" to compare it with {reference_engine}'}
    if reference is None or (difference is not None and not isinstance(difference, str)):
        raise ValidationError("engine_equality: pass both frames and the assertion text (or None).",
                              fix="Catch AssertionError from pandas.testing.assert_frame_equal and pass str(exc).")
    equal = difference is None
    shape = f"{len(frame)} rows x {frame.shape[1]} columns"
    first = None if equal else next((line.strip() for line in difference.splitlines() if line.strip()), "")
    return {"compared": True, "engines": [engine, reference_engine], "equal": equal,
            "rows": [int(len(frame)), int(len(reference))], "columns": [int(frame.shape[1]), int(reference.shape[1])],
            "difference": None if equal else difference[:2000],
            "verdict": (f"{engine} and {reference_engine} built the same training set: {shape}, identical "
                        "values, dtypes, index and order" if equal
                        else f"{engine} and {reference_engine} differ ({shape} on {engine}): {first}")}
