"""``Scenario``: every parameter of the seeded card-payments world, validated and persisted.

A scenario is a declaration: frozen, keyword-only, validated at construction, and
round-tripped through ``to_dict``/``from_dict`` (JSON with sorted keys). Scenario switches
(drift, schema change, outages, duplicates) are all off by default. ``scale`` multiplies
the user, merchant and transaction counts, so one definition serves a notebook
(``scale=1``) and a benchmark (``scale=200`` is 10 million transactions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from . import _checks as _c
from .._time import UTC, ensure_utc
from ..errors import DefinitionError, NotFoundError

__all__ = ["Scenario", "Sizes", "SCHEMA_CHANGES", "SCHEMA_CHANGE_FIELDS", "MAX_TRANSACTIONS"]

SCHEMA_CHANGES = ("rename", "retype")
#: fields of the transactions table a schema change may touch
SCHEMA_CHANGE_FIELDS = ("amount", "merchant_category", "channel", "country")
MAX_TRANSACTIONS = 200_000_000
_DATETIME_FIELDS = ("start", "covariate_drift_from", "concept_drift_from")


class Sizes(NamedTuple):
    """Row counts after ``scale`` is applied."""

    users: int
    merchants: int
    transactions: int


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """The parameters of one data world (see ``data/README.md`` for the presets).

    Parameters
    ----------
    name:
        A label recorded with the generated data.
    start:
        First instant of the world (tz-aware UTC).
    days:
        Length of the world in days.
    n_users, n_merchants, n_transactions:
        Counts at ``scale=1``; ``sizes`` gives the scaled counts.
    scale:
        Multiplies the three counts (``scale=200`` gives 10 million transactions).
    late_share:
        Share of transactions ingested ``late_delay_hours`` late instead of seconds late.
    late_delay_hours:
        (low, high) bounds of the late ingestion delay in hours (log-uniform).
    ingest_delay_seconds:
        Mean ingestion delay of on-time transactions (exponential).
    base_fraud_rate:
        Target share of fraudulent transactions.
    chargeback_delay_median_days, chargeback_delay_sigma:
        Log-normal delay between a fraudulent transaction and its chargeback (its label).
    label_maturity_days:
        A legitimate transaction's label becomes known when its chargeback window closes.
    profile_change_rate:
        Expected profile changes per user and 30 days (credit limit, risk review, status).
    covariate_drift_from:
        From this instant amounts rise and the merchant and channel mix shifts (None: off).
    concept_drift_from:
        From this instant the fraud mechanism changes (None: off).
    schema_change:
        None, ``"rename"`` (``schema_change_field`` becomes ``<field>_v2``) or ``"retype"``
        (amount becomes text, a categorical field becomes integer codes).
    outages:
        Ingestion outages as (start, end) pairs: nothing is ingested inside
        ``[start, end)``; what arrived meanwhile is ingested right after ``end``.
    duplicate_share:
        Share of transactions delivered twice (same ``transaction_id``, later ``ingested_at``).

    Examples
    --------
    >>> Scenario.default().sizes
    Sizes(users=2000, merchants=200, transactions=50000)
    >>> Scenario.default().with_scale(0.1).sizes.transactions
    5000
    """

    name: str = "default"
    start: datetime = field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    days: int = 60
    n_users: int = 2_000
    n_merchants: int = 200
    n_transactions: int = 50_000
    scale: float = 1.0
    late_share: float = 0.05
    late_delay_hours: tuple[float, float] = (1.0, 72.0)
    ingest_delay_seconds: float = 30.0
    base_fraud_rate: float = 0.02
    chargeback_delay_median_days: float = 10.0
    chargeback_delay_sigma: float = 0.6
    label_maturity_days: float = 45.0
    profile_change_rate: float = 0.3
    covariate_drift_from: datetime | None = None
    concept_drift_from: datetime | None = None
    schema_change: str | None = None
    schema_change_field: str = "amount"
    outages: tuple[tuple[datetime, datetime], ...] = ()
    duplicate_share: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise _c.fail("name", self.name, "must be a non-empty string", "Pass e.g. name='default'.")
        _c.check_start(self)
        _c.check_counts(self)
        for name in ("late_share", "duplicate_share"):
            _c.check_share(self, name, low=0.0, high=1.0)
        _c.check_share(self, "base_fraud_rate", low=0.001, high=0.3)
        _c.check_positive(self, "scale", 1e-6, 1e6)
        _c.check_positive(self, "ingest_delay_seconds", 0.0, 86_400.0, allow_zero=True)
        _c.check_positive(self, "chargeback_delay_median_days", 0.1, 365.0)
        _c.check_positive(self, "chargeback_delay_sigma", 0.0, 3.0, allow_zero=True)
        _c.check_positive(self, "label_maturity_days", 1.0, 730.0)
        _c.check_positive(self, "profile_change_rate", 0.0, 30.0, allow_zero=True)
        _c.check_late_delay(self)
        for name in ("covariate_drift_from", "concept_drift_from"):
            _c.check_drift(self, name)
        _c.check_schema_change(self, SCHEMA_CHANGES, SCHEMA_CHANGE_FIELDS)
        _c.check_outages(self)
        sizes = self.sizes
        if sizes.transactions > MAX_TRANSACTIONS:
            raise _c.fail("scale", self.scale, f"gives {sizes.transactions:,} transactions, more "
                        f"than the supported {MAX_TRANSACTIONS:,}", "Lower scale or n_transactions.")

    # ------------------------------------------------------------------ derived values
    @property
    def end(self) -> datetime:
        """First instant after the world (``start + days``)."""
        return self.start + timedelta(days=self.days)

    @property
    def sizes(self) -> Sizes:
        """User, merchant and transaction counts after ``scale`` is applied (each >= 1)."""
        def scaled(n: int) -> int:
            return max(1, int(round(n * self.scale)))
        return Sizes(scaled(self.n_users), scaled(self.n_merchants), scaled(self.n_transactions))

    def with_scale(self, scale: float) -> "Scenario":
        """The same scenario at another scale (validated)."""
        return replace(self, scale=scale)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO-8601 strings); ``from_dict`` inverts it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif f.name == "late_delay_hours":
                value = list(value)
            elif f.name == "outages":
                value = [[lo.isoformat(), hi.isoformat()] for lo, hi in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scenario":
        """Rebuild a scenario from ``to_dict`` output; unknown keys are refused."""
        if not isinstance(data, dict):
            raise DefinitionError(f"Scenario.from_dict: expected a dict, got {type(data).__name__}.",
                                  fix="Pass the output of Scenario.to_dict() or a scenario JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DefinitionError(f"Scenario.from_dict: unknown keys {unknown}.",
                                  fix=f"Use only {sorted(known)}.", unknown=unknown)
        kwargs = dict(data)
        for name in _DATETIME_FIELDS:
            if isinstance(kwargs.get(name), str):
                kwargs[name] = ensure_utc(kwargs[name], name=f"Scenario {name!r}")
        if "late_delay_hours" in kwargs and isinstance(kwargs["late_delay_hours"], list):
            kwargs["late_delay_hours"] = tuple(kwargs["late_delay_hours"])
        if isinstance(kwargs.get("outages"), (list, tuple)):
            kwargs["outages"] = tuple(
                tuple(ensure_utc(t, name="Scenario 'outages'") if isinstance(t, str) else t for t in w)
                if isinstance(w, (list, tuple)) else w for w in kwargs["outages"])
        return cls(**kwargs)

    def to_json(self) -> str:
        """Pretty JSON with sorted keys (the format of ``data/scenarios/*.json``)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, path: str | Path) -> "Scenario":
        """Read a scenario from a JSON file written by ``to_json``."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"Scenario file {str(path)!r} does not exist.",
                                fix="Pass the path of a data/scenarios/*.json file.", path=str(path))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DefinitionError(f"Scenario file {str(path)!r} is not valid JSON: {exc}.",
                                  fix="Regenerate it with Scenario.to_json().") from exc
        return cls.from_dict(data)

    # ------------------------------------------------------------------ presets
    @classmethod
    def default(cls) -> "Scenario":
        """2,000 users, 200 merchants, 50,000 transactions over 60 days; no switches on."""
        return cls()

    @classmethod
    def small(cls) -> "Scenario":
        """500 users, 50 merchants, 5,000 transactions over 30 days (fast tests, demos)."""
        return cls(name="small", days=30, n_users=500, n_merchants=50, n_transactions=5_000,
                   base_fraud_rate=0.03)

    @classmethod
    def covariate_drift(cls) -> "Scenario":
        """The default world with amounts and merchant/channel mix shifting from day 40."""
        base = cls.default()
        return replace(base, name="covariate_drift", covariate_drift_from=base.start + timedelta(days=40))

    @classmethod
    def concept_drift(cls) -> "Scenario":
        """The default world with the fraud mechanism changing from day 40."""
        base = cls.default()
        return replace(base, name="concept_drift", concept_drift_from=base.start + timedelta(days=40))

    @classmethod
    def outage(cls) -> "Scenario":
        """The default world with a 6-hour outage on day 20 and a whole-day outage on day 35."""
        s = cls.default().start
        return cls(name="outage", outages=(
            (s + timedelta(days=20, hours=8), s + timedelta(days=20, hours=14)),
            (s + timedelta(days=35), s + timedelta(days=36))))

    @classmethod
    def messy(cls) -> "Scenario":
        """Late-heavy ingestion (15%) with 2% duplicate deliveries."""
        return cls(name="messy", late_share=0.15, duplicate_share=0.02)

    @classmethod
    def schema_rename(cls) -> "Scenario":
        """The upstream producer renamed ``amount`` to ``amount_v2``."""
        return cls(name="schema_rename", schema_change="rename")

    @classmethod
    def schema_retype(cls) -> "Scenario":
        """The upstream producer now sends ``amount`` as text."""
        return cls(name="schema_retype", schema_change="retype")

    @classmethod
    def presets(cls) -> dict[str, "Scenario"]:
        """Every named preset, by name."""
        return {s.name: s for s in (cls.default(), cls.small(), cls.covariate_drift(),
                                    cls.concept_drift(), cls.outage(), cls.messy(),
                                    cls.schema_rename(), cls.schema_retype())}

    @classmethod
    def preset(cls, name: str) -> "Scenario":
        """The preset called ``name`` (see ``presets()``)."""
        presets = cls.presets()
        if name not in presets:
            raise NotFoundError(f"Scenario preset {name!r} does not exist.",
                                fix=f"Use one of {sorted(presets)}.", name=name)
        return presets[name]
