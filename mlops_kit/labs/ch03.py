"""Chapter 3 lab: quality gates and drift triage on the seeded card-payments world.

The notebook calls these functions so that its cells stay short:

* quality: :func:`upstream_batch` cuts a daily delivery of transactions (with the card
  holder's segment), :func:`break_upstream` injects what a broken producer sends (nulls
  in one segment, an unknown channel, on top of the ``messy`` preset's duplicates),
  :func:`transactions_suite` declares the checks with severity, owner, remediation and
  blast radius, and :func:`gated_training` refuses to train on data the gate rejects;
* drift: :func:`drift_frames` gives reference and current windows of scored
  transactions, :func:`drift_samples` the fixed-size samples saved for the grader,
  :func:`triage` separates "the world changed" from "our pipeline changed", and
  :func:`drift_at` is the plain function behind the drift-magnitude widget.

Backfill, cost, privacy and lifecycle live in :mod:`mlops_kit.labs.ch03_ops`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from .._time import FixedClock
from ..datasets import Scenario, deduplicate, generate_world, training_set
from ..datasets import _catalog as C
from ..errors import QualityGateError, ValidationError
from ..quality import (AllowedValuesCheck, FreshnessCheck, NullRateCheck, QualitySuite, RangeCheck,
                       ResponsePolicy, SqlInvariantCheck, UniqueKeyCheck, VolumeCheck, column_drift,
                       gate, psi)

__all__ = [
    "SOURCE", "CRITICALITY", "lab_clock", "NUMERIC_DRIFT", "CATEGORICAL_DRIFT", "LabData", "make_data",
    "upstream_batch", "break_upstream", "repair_upstream", "transactions_suite", "gated_training",
    "drift_frames", "drift_samples", "triage", "label_shift", "drift_at", "drift_response_table",
]

#: the upstream table the fraud features are computed from
SOURCE = "card_transactions"
#: how much each monitored feature matters to the fraud model (drives the drift response)
CRITICALITY = {"amount": "critical", "amount_avg_7d": "high", "txn_count_24h": "medium",
               "merchant_category": "high", "channel": "medium"}
NUMERIC_DRIFT = ("amount", "amount_avg_7d", "txn_count_24h")
CATEGORICAL_DRIFT = ("merchant_category", "channel")
_BATCH_COLUMNS = ["transaction_id", "user_id", "merchant_id", "amount", "merchant_category", "channel",
                  "country", "event_timestamp", "ingested_at", "segment"]


def _seed(seed: Any, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(f"{where}: seed must be an integer >= 0, got {seed!r}.", fix="Pass e.g. seed=7.")
    return int(seed)


def _scale(scale: Any, where: str) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.05 <= scale <= 20:
        raise ValidationError(f"{where}: scale must be a number in [0.05, 20], got {scale!r}.",
                              fix="Use scale=1 for the notebook.")
    return float(scale)


@dataclass(frozen=True, kw_only=True)
class LabData:
    """The worlds of the chapter: honest, messy (duplicates, late rows) and the two drifts."""

    seed: int
    scale: float
    default: Any
    messy: Any
    covariate: Any
    concept: Any


def make_data(*, seed: int, scale: float = 1.0) -> LabData:
    """Generate the four worlds of the chapter at ``scale`` (same seed, same users)."""
    seed, scale = _seed(seed, "make_data"), _scale(scale, "make_data")
    worlds = {name: generate_world(getattr(Scenario, preset)().with_scale(scale), seed=seed)
              for name, preset in (("default", "default"), ("messy", "messy"),
                                   ("covariate", "covariate_drift"), ("concept", "concept_drift"))}
    return LabData(seed=seed, scale=scale, **worlds)


def lab_clock(world: Any, *, hours_after_end: float = 1.0) -> FixedClock:
    """A fixed "now" shortly after the world ends: every recorded time is reproducible."""
    return FixedClock(world.scenario.end + timedelta(hours=hours_after_end))


# -- quality -----------------------------------------------------------------------------------------
def upstream_batch(world: Any, *, first_day: int, days: int) -> pd.DataFrame:
    """The transactions of days ``[first_day, first_day + days)`` with the holder's ``segment``.

    Columns come as the producer delivers them (a renamed field stays renamed)."""
    for name, value in (("first_day", first_day), ("days", days)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "first_day" else 1):
            raise ValidationError(f"upstream_batch: {name} must be a non-negative integer (days >= 1), got {value!r}.",
                                  fix="Pass e.g. first_day=50, days=7.")
    start = world.scenario.start + timedelta(days=first_day)
    end = start + timedelta(days=days)
    txn = world.transactions
    rows = txn[(txn["event_timestamp"] >= start) & (txn["event_timestamp"] < end)]
    out = rows.merge(world.users[["user_id", "segment"]], on="user_id", how="left", validate="many_to_one")
    cols = [c for c in _BATCH_COLUMNS if c in out.columns] + [c for c in out.columns if c not in _BATCH_COLUMNS]
    return out[cols].sort_values(["event_timestamp", "transaction_id"], kind="stable",
                                           ignore_index=True)


def break_upstream(batch: pd.DataFrame, *, seed: int, segment: str = "premium", null_share: float = 0.25,
                   unknown_channel: str = "wallet", unknown_share: float = 0.03) -> pd.DataFrame:
    """What a broken producer delivers: ``amount`` null for ``null_share`` of one segment's rows
    (a failed currency join for that card programme) and a channel outside the taxonomy."""
    if segment not in set(batch["segment"]):
        raise ValidationError(f"break_upstream: segment {segment!r} is not in the batch.",
                              fix=f"Use one of {sorted(set(batch['segment']))}.")
    for name, value in (("null_share", null_share), ("unknown_share", unknown_share)):
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValidationError(f"break_upstream: {name} must be in [0, 1], got {value!r}.", fix="Use e.g. 0.25.")
    rng = np.random.default_rng(_seed(seed, "break_upstream"))
    out = batch.copy()
    in_segment = (out["segment"] == segment).to_numpy()
    out.loc[in_segment & (rng.random(len(out)) < null_share), "amount"] = np.nan
    channel = out["channel"].astype(object)
    channel[rng.random(len(out)) < unknown_share] = unknown_channel
    out["channel"] = channel.astype(batch["channel"].dtype)
    return out


def repair_upstream(clean_batch: pd.DataFrame) -> pd.DataFrame:
    """The remediation: the producer re-delivers the batch (clean values) and we drop redeliveries."""
    return deduplicate(clean_batch).sort_values(["event_timestamp", "transaction_id"], kind="stable",
                                                ignore_index=True)


def transactions_suite(*, null_check: NullRateCheck | None = None) -> QualitySuite:
    """The checks on the upstream delivery: hard fails for what breaks training, warnings for the rest.

    ``null_check`` replaces the reference null-rate-by-segment check (exercise 3.1).
    """
    if null_check is not None and not isinstance(null_check, NullRateCheck):
        raise ValidationError(f"transactions_suite: null_check must be a NullRateCheck, got {null_check!r}.",
                              fix="Pass the check you wrote in exercise 3.1.")
    own, ml = "payments-data (#payments-data-oncall)", "fraud-ml (#fraud-ml)"
    return QualitySuite(view=SOURCE, timestamp_column="event_timestamp", checks=[
        null_check or NullRateCheck(id="amount_nulls_by_segment", severity="block", owner=own, column="amount",
                      max_rate=0.01, segment_by=("segment",), min_rows=100,
                      remediation="Re-run the upstream currency join for the failing segment and re-deliver "
                                  "the partition."),
        NullRateCheck(id="amount_nulls_overall", severity="warn", owner=own, column="amount", max_rate=0.05,
                      remediation="Look at amount_nulls_by_segment: a global rate hides one broken segment."),
        RangeCheck(id="amount_range", severity="block", owner=own, column="amount", min_value=0.01,
                   max_value=50_000.0, remediation="Quarantine the partition; ask the producer about units."),
        UniqueKeyCheck(id="transaction_id_unique", severity="block", owner=own, columns=("transaction_id",),
                       remediation="Deduplicate redeliveries (keep the first ingested) before computing features."),
        AllowedValuesCheck(id="channel_taxonomy", severity="block", owner=ml, column="channel",
                           allowed=C.CHANNELS, remediation="Map the new channel in the contract (new feature "
                                                           "version) or reject the rows; never one-hot it silently."),
        AllowedValuesCheck(id="category_taxonomy", severity="warn", owner=ml, column="merchant_category",
                           allowed=C.CATEGORIES, max_violation_rate=0.01,
                           remediation="Open a ticket to extend the category vocabulary."),
        SqlInvariantCheck(id="ingested_after_event", severity="block", owner=own,
                          expression="ingested_at >= event_timestamp",
                          remediation="Fix the producer's clock or the timestamp mapping; re-deliver."),
        FreshnessCheck(id="source_freshness", severity="warn", owner=own, max_age=timedelta(hours=6),
                       remediation="Check the ingestion job; features age past the serving SLO."),
        VolumeCheck(id="daily_volume", severity="warn", owner=own, max_change=0.6,
                    remediation="Compare with the producer's row counts; a drop is often a partial load."),
    ])


def gated_training(batch: pd.DataFrame, suite: QualitySuite, train: Callable[[pd.DataFrame], Any], *,
                   now: Any, catalog: Any = None) -> dict[str, Any]:
    """Run the suite, pass the gate, and only then call ``train(batch)``.

    Returns ``{"report": QualityReport, "trained": bool, "result": train's result or None,
    "error": the QualityGateError or None}``; the training step is never reached when the gate
    refuses the data.
    """
    if not callable(train):
        raise ValidationError("gated_training: train must be callable.", fix="Pass a function taking the batch.")
    report = suite.run(batch, now=now, catalog=catalog)
    try:
        gate(report)
    except QualityGateError as exc:
        return {"report": report, "trained": False, "result": None, "error": exc}
    return {"report": report, "trained": True, "result": train(batch), "error": None}


# -- drift -------------------------------------------------------------------------------------------
def drift_frames(world: Any, *, split_day: int = 40, days: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scored transactions (request and user-activity features, label, segment) of the ``days``
    before ``split_day`` (reference) and from ``split_day`` on (current)."""
    if isinstance(split_day, bool) or not isinstance(split_day, int) or not days <= split_day < world.scenario.days:
        raise ValidationError(f"drift_frames: split_day must be an integer in [{days}, {world.scenario.days}), "
                              f"got {split_day!r}.", fix="Use split_day=40 (where the drift presets start).")
    frame = training_set(world).merge(world.users[["user_id", "segment"]], on="user_id", how="left")
    cols = ["transaction_id", "event_timestamp", "segment", *NUMERIC_DRIFT, *CATEGORICAL_DRIFT, "is_fraud"]
    split = world.scenario.start + timedelta(days=split_day)
    ts = frame["event_timestamp"]
    ref = frame[(ts >= split - timedelta(days=days)) & (ts < split)][cols]
    cur = frame[(ts >= split) & (ts < split + timedelta(days=days))][cols]
    return ref.reset_index(drop=True), cur.reset_index(drop=True)


def drift_samples(reference: pd.DataFrame, current: pd.DataFrame, *, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded samples of ``n`` rows of each window (numeric drift columns and segment) for the evidence."""
    cols = ["segment", *NUMERIC_DRIFT]
    take = [frame.sample(n=min(n, len(frame)), random_state=_seed(seed, "drift_samples"))[cols]
            .reset_index(drop=True) for frame in (reference, current)]
    return take[0], take[1]


def triage(*, offline_psi: float, online_psi: float, parity_mismatch: float, label_shift: float | None = None,
           drift_at: float = 0.1, parity_at: float = 0.01, label_at: float = 0.3) -> dict[str, str]:
    """Is it the world or our pipeline? One verdict from four measurements of a feature.

    * offline and online both drift and serving agrees with offline -> the world changed;
    * online drifts but offline does not, or serving disagrees with offline -> serving path
      (ingestion, materialization lag, a transformation that differs online);
    * offline drifts but online does not -> backfill gap or a stale online cache;
    * no feature drift but the label relationship moved (``label_shift``) -> concept drift.
    """
    for name, value in (("offline_psi", offline_psi), ("online_psi", online_psi), ("parity_mismatch", parity_mismatch)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValidationError(f"triage: {name} must be a number >= 0, got {value!r}.", fix="Pass the measured value.")
    off, on = offline_psi >= drift_at, online_psi >= drift_at
    if parity_mismatch > parity_at or (on and not off):
        return {"cause": "pipeline: serving path", "next": "compare the online transformation and materialization "
                "with the offline definition; fix or roll back the serving change"}
    if off and not on:
        return {"cause": "pipeline: offline backfill or stale online cache", "next": "check partitions, backfill "
                "history and the online watermark"}
    if off and on:
        return {"cause": "world: covariate drift", "next": "confirm with the business (launch, season); "
                "watch model metrics, plan a retrain on recent data"}
    if label_shift is not None and label_shift >= label_at:
        return {"cause": "world: concept drift", "next": "features look stable but their meaning moved: "
                "retrain on matured labels, review the fraud rules"}
    return {"cause": "no drift", "next": "nothing to do"}


def label_shift(reference: pd.DataFrame, current: pd.DataFrame, *, by: str = "merchant_category") -> dict[str, Any]:
    """How the fraud rate per ``by`` moved: total variation distance of the fraud mix and the worst change."""
    def mix(frame: pd.DataFrame) -> pd.Series:
        fraud = frame.loc[frame["is_fraud"].astype(bool), by].value_counts()
        return fraud / max(int(fraud.sum()), 1)

    rates = pd.DataFrame({"reference": reference.groupby(by)["is_fraud"].mean(),
                          "current": current.groupby(by)["is_fraud"].mean()}).fillna(0.0)
    a, b = mix(reference), mix(current)
    keys = sorted(set(a.index) | set(b.index))
    tvd = 0.5 * float(sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys))
    return {"fraud_mix_tvd": round(tvd, 4), "fraud_rate": rates.round(4).sort_index()}


def drift_at(reference: Any, magnitude: float, *, policy: ResponsePolicy, criticality: str = "critical",
             seed: int = 0) -> dict[str, Any]:
    """PSI, the drift test's verdict and the response when ``reference`` values grow by ``magnitude``
    (0.2 = +20 %) with noise. The policy reads both: a failed test with PSI under 0.1 is moderate drift.

    The plain function behind the drift slider: the current sample is the reference shuffled
    and multiplied by ``1 + magnitude`` (and 5 % multiplicative noise).
    """
    if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)) or not -0.9 <= magnitude <= 5:
        raise ValidationError(f"drift_at: magnitude must be a number in [-0.9, 5], got {magnitude!r}.",
                              fix="Use e.g. magnitude=0.2 for +20 %.")
    ref = np.asarray(reference, dtype=float)
    ref = ref[~np.isnan(ref)]
    rng = np.random.default_rng(_seed(seed, "drift_at"))
    cur = rng.permutation(ref) * (1 + magnitude) * rng.lognormal(0.0, 0.05, size=ref.size)
    value = psi(ref, cur)
    result = column_drift(ref, cur, column="amount")
    response = policy.evaluate(criticality=criticality, psi=value, test_failed=result.verdict == "drift")
    return {"magnitude": magnitude, "psi": round(value, 4), "method": result.method,
            "verdict": result.verdict, "level": response.level, "action": response.action}


def drift_response_table(reference: Any, magnitudes: list[float], *, policy: ResponsePolicy,
                         criticality: str = "critical", seed: int = 0) -> pd.DataFrame:
    """:func:`drift_at` for several magnitudes, one row each."""
    return pd.DataFrame([drift_at(reference, m, policy=policy, criticality=criticality, seed=seed)
                         for m in magnitudes])
