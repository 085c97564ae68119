"""Online reads: resolve a request once, then keyed lookups with TTL enforced on read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from .._time import UTC, ensure_utc
from ..errors import ValidationError
from .definitions import FeatureView
from .online import OnlineStore
from .validation import FeatureRef

__all__ = ["OnlinePlan", "plan_online", "read_online", "keys_of", "us_to_datetime", "datetime_to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_PLAIN_KEYS = {int, str}  # join-key value types taken as they are (type(): a bool is not an int)
_DICT = {dict}


def us_to_datetime(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def datetime_to_us(value: object, name: str) -> int:
    """Microseconds since the epoch of a tz-aware instant; naive or non-time input is refused
    (``ensure_utc``). A plain aware ``datetime`` (a clock's answer) takes no pandas round trip."""
    if type(value) is datetime and value.utcoffset() is not None:
        return (value - _EPOCH) // _ONE_US
    return int(pd.Timestamp(ensure_utc(value, name=name)).value // 1000)


@dataclass(frozen=True)
class _ViewRead:
    """What ``read_online`` needs per view, worked out once per plan (not per call)."""

    view: FeatureView
    features: tuple[str, ...]
    join_keys: tuple[str, ...]
    ttl_us: int | None  # None: no TTL bound
    outputs: tuple[tuple[str, str, str], ...]  # (feature, output name, dtype)
    ts_name: str


@dataclass(frozen=True)
class OnlinePlan:
    """A resolved ``get_online_features`` request: views, their features, output names."""

    views: tuple[tuple[FeatureView, tuple[str, ...], tuple[str, ...]], ...]
    join_keys: tuple[str, ...]
    timestamp_names: tuple[str, ...]
    reads: tuple[_ViewRead, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        reads = []
        for (view, features, names), ts_name in zip(self.views, self.timestamp_names):
            dtypes = {f.name: f.dtype for f in view.features}
            ttl_us = view.ttl // timedelta.resolution if view.ttl_active else None  # type: ignore[operator]
            reads.append(_ViewRead(view=view, features=features, join_keys=view.join_keys, ttl_us=ttl_us,
                                   outputs=tuple((f, n, dtypes[f]) for f, n in zip(features, names)),
                                   ts_name=ts_name))
        object.__setattr__(self, "reads", tuple(reads))


def plan_online(refs: Sequence[FeatureRef], full_feature_names: bool) -> OnlinePlan:
    """Group refs by view and name the output columns (a bare-name clash is an error)."""
    grouped: dict[str, list[FeatureRef]] = {}
    for ref in refs:
        grouped.setdefault(ref.view.name, []).append(ref)
    views = []
    names: list[str] = []
    for group in grouped.values():
        out = tuple(r.full_name if full_feature_names else r.feature for r in group)
        names += out
        views.append((group[0].view, tuple(r.feature for r in group), out))
    keys = tuple(dict.fromkeys(k for v, _, _ in views for k in v.join_keys))
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(keys)))
    if clash:
        raise ValidationError(f"feature names clash in the output: {clash}.",
                              fix="Pass full_feature_names=True to name columns 'view__feature'.",
                              clash=clash)
    ts_names = tuple(f"{v.name}__event_timestamp" for v, _, _ in views)
    return OnlinePlan(views=tuple(views), join_keys=keys, timestamp_names=ts_names)


def keys_of(entity_rows: object, keys: tuple[str, ...]) -> dict[str, list[object]]:
    if isinstance(entity_rows, dict) or not isinstance(entity_rows, (list, tuple)):
        raise ValidationError(f"entity_rows must be a list of dicts, got {type(entity_rows).__name__}.",
                              fix="Pass e.g. entity_rows=[{'user_id': 7}].")
    if set(map(type, entity_rows)) <= _DICT:  # plain dicts: one pass per key column
        columns = {k: [row.get(k) for row in entity_rows] for k in keys}
        if all(set(map(type, col)) <= _PLAIN_KEYS for col in columns.values()):
            return columns
    columns = {k: [] for k in keys}
    for i, row in enumerate(entity_rows):
        if not isinstance(row, dict):
            raise ValidationError(f"entity_rows[{i}] must be a dict, got {row!r}.",
                                  fix="Pass e.g. entity_rows=[{'user_id': 7}].")
        for k in keys:
            value = row.get(k)
            if type(value) is not int and type(value) is not str:
                value = _key_value(i, k, value, row, keys)
            columns[k].append(value)
    return columns


def _key_value(i: int, k: str, value: object, row: dict, keys: tuple[str, ...]) -> int | str:
    """Normalize a join-key value that is not a plain int or str (numpy scalars) or refuse it."""
    if value is None:
        raise ValidationError(f"entity_rows[{i}] has no value for join key {k!r}: {row!r}.",
                              fix=f"Give every row all join keys: {list(keys)}.", key=k)
    if hasattr(value, "item") and not isinstance(value, (bool, float)):
        value = value.item()  # numpy / pandas scalar
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValidationError(f"entity_rows[{i}][{k!r}] must be an int or str, got "
                              f"{type(value).__name__} {value!r}.",
                              fix="Pass join keys as Python ints or strings.", key=k)
    return value


def read_online(online: OnlineStore, plan: OnlinePlan, key_columns: dict[str, list[object]],
                at_us: int, include_timestamps: bool) -> dict[str, list]:
    """Read the plan's features for the keys (from ``keys_of``) as of ``at_us`` (TTL on read)."""
    out: dict[str, list] = key_columns
    for read in plan.reads:
        key_cols = [out[k] for k in read.join_keys]
        keys = list(zip(*key_cols))
        ts, values = online.read_rows(read.view, read.features, keys)
        if read.ttl_us is not None:
            cutoff = at_us - read.ttl_us
            for i, t in enumerate(ts):
                if t is not None and t < cutoff:
                    ts[i] = None
                    for col in values.values():
                        col[i] = None
        for feature, name, dtype in read.outputs:
            col = values[feature]
            if dtype == "bool":
                col = [None if v is None else bool(v) for v in col]
            elif dtype == "timestamp":
                col = [us_to_datetime(v) for v in col]
            out[name] = col
        if include_timestamps:
            out[read.ts_name] = [us_to_datetime(t) for t in ts]
    return out
