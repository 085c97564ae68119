"""Input validation and typing: pandas frames in, typed Arrow tables out (or a clear error).

Nothing here writes anything. ``to_arrow_rows`` checks a frame to be ingested against a
view; ``prepare_entity_df`` checks a point-in-time request; ``parse_refs`` resolves
``"view:feature"`` references.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from .._time import ensure_utc_series
from ..errors import NotFoundError, SchemaError, TimezoneError, ValidationError
from .definitions import FeatureView

__all__ = ["ARROW_TYPES", "FeatureRef", "to_arrow_rows", "prepare_entity_df", "parse_refs",
           "key_dtype_of"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def _is_string(series: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return True
    if series.dtype == object:
        return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")
    return False


def key_dtype_of(series: pd.Series) -> str | None:
    """``'int64'`` or ``'string'`` for a join-key column, ``None`` if neither."""
    if pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return "int64"
    if _is_string(series):
        return "string"
    return None


def _column_to_arrow(view: str, name: str, series: pd.Series, dtype: str) -> pa.Array:
    """Convert one column to the Arrow type of ``dtype`` or raise a SchemaError."""
    kind = series.dtype
    bad = SchemaError(
        f"ingest into {view!r}: column {name!r} has dtype {kind}, which is not compatible "
        f"with the declared {dtype!r}.",
        fix=_FIXES[dtype].format(name=name), view=view, column=name, dtype=str(kind), expected=dtype,
    )
    if dtype == "timestamp":
        return pa.array(ensure_utc_series(series, name=name), type=ARROW_TYPES[dtype])
    if dtype == "int64":
        ok = pd.api.types.is_integer_dtype(kind) and not pd.api.types.is_bool_dtype(kind)
    elif dtype == "float64":
        ok = (pd.api.types.is_float_dtype(kind) or pd.api.types.is_integer_dtype(kind)) \
            and not pd.api.types.is_bool_dtype(kind)
    elif dtype == "bool":
        ok = pd.api.types.is_bool_dtype(kind)
    else:
        ok = _is_string(series)
    if not ok:
        raise bad
    if pd.api.types.is_unsigned_integer_dtype(kind) and dtype == "int64" and len(series) \
            and series.max() > 2**63 - 1:
        raise bad
    return pa.array(series, type=ARROW_TYPES[dtype], from_pandas=True)


_FIXES = {
    "int64": "Cast it: df[{name!r}] = df[{name!r}].astype('Int64') (nullable) or 'int64'.",
    "float64": "Cast it: df[{name!r}] = df[{name!r}].astype('float64').",
    "string": "Cast it: df[{name!r}] = df[{name!r}].astype('string').",
    "bool": "Cast it: df[{name!r}] = df[{name!r}].astype('boolean').",
    "timestamp": "Convert it: df[{name!r}] = pd.to_datetime(df[{name!r}], utc=True).",
}


def to_arrow_rows(view: FeatureView, df: object, pinned_keys: dict[str, str]) -> tuple[pa.Table, dict[str, str]]:
    """Validate ``df`` for ``view`` and return the typed table and the join-key dtypes.

    Columns kept: join keys, timestamp field, created column (if declared), features;
    extra columns are ignored. Raises ``SchemaError``/``TimezoneError`` before any write.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"ingest into {view.name!r}: expected a pandas DataFrame, got "
                              f"{type(df).__name__}.", fix="Pass a pandas.DataFrame.", view=view.name)
    required = list(view.join_keys) + [view.timestamp_field]
    if view.created_timestamp_column:
        required.append(view.created_timestamp_column)
    required += list(view.feature_names)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SchemaError(f"ingest into {view.name!r}: missing columns {missing}.",
                          fix=f"Provide every column of the view: {required}.", view=view.name,
                          missing=missing)
    if len(set(map(str, df.columns))) != len(df.columns):
        raise SchemaError(f"ingest into {view.name!r}: the frame has duplicate column names.",
                          fix="Rename or drop the duplicate columns.", view=view.name)
    declared = view.declared_key_dtypes
    key_dtypes: dict[str, str] = {}
    arrays: dict[str, pa.Array] = {}
    for key in view.join_keys:
        series = df[key]
        if series.isna().any():
            raise SchemaError(
                f"ingest into {view.name!r}: join key {key!r} has {int(series.isna().sum())} null "
                "value(s).", fix=f"Drop or fill those rows first: df = df.dropna(subset=[{key!r}]).",
                view=view.name, column=key)
        found = key_dtype_of(series)
        expected = declared.get(key) or pinned_keys.get(key)
        if found is None or (expected is not None and found != expected):
            want = expected or "int64 or string"
            raise SchemaError(
                f"ingest into {view.name!r}: join key {key!r} has dtype {series.dtype}, expected {want}.",
                fix=f"Cast it, e.g. df[{key!r}] = df[{key!r}].astype('{'int64' if want != 'string' else 'string'}').",
                view=view.name, column=key)
        key_dtypes[key] = found
        arrays[key] = pa.array(series, type=ARROW_TYPES[found], from_pandas=True)
    for col in [view.timestamp_field] + ([view.created_timestamp_column] if view.created_timestamp_column else []):
        series = df[col]
        arrays[col] = _column_to_arrow(view.name, col, series, "timestamp")
        if arrays[col].null_count:
            raise SchemaError(f"ingest into {view.name!r}: timestamp column {col!r} has "
                              f"{arrays[col].null_count} null value(s).",
                              fix="Every row needs its timestamps; drop or fill those rows.",
                              view=view.name, column=col)
    for f in view.features:
        arrays[f.name] = _column_to_arrow(view.name, f.name, df[f.name], f.dtype)
    return pa.table(arrays), key_dtypes


def prepare_entity_df(entity_df: object, keys: Sequence[str], key_dtypes: Callable[[str], str | None]) -> pa.Table:
    """Check a point-in-time request frame; return keys + ``event_timestamp`` + ``__row_id``."""
    if not isinstance(entity_df, pd.DataFrame):
        raise ValidationError(f"get_historical_features: entity_df must be a pandas DataFrame, got "
                              f"{type(entity_df).__name__}.", fix="Pass a pandas.DataFrame.")
    needed = list(keys) + ["event_timestamp"]
    missing = [c for c in needed if c not in entity_df.columns]
    if missing:
        raise SchemaError(f"get_historical_features: entity_df is missing columns {missing}.",
                          fix=f"Provide the join keys and 'event_timestamp': {needed}.", missing=missing)
    arrays: dict[str, pa.Array] = {}
    for key in keys:
        series = entity_df[key]
        found = key_dtype_of(series)
        expected = key_dtypes(key)
        if found is None or (expected is not None and found != expected):
            raise SchemaError(
                f"get_historical_features: entity_df column {key!r} has dtype {series.dtype}, but the "
                f"offline rows hold {expected or 'int64 or string'} keys.",
                fix=f"Cast it: entity_df[{key!r}] = entity_df[{key!r}].astype('{expected or 'int64'}').",
                column=key)
        arrays[key] = pa.array(series, type=ARROW_TYPES[found], from_pandas=True)
    try:
        ts = ensure_utc_series(entity_df["event_timestamp"], name="event_timestamp")
    except TimezoneError as exc:
        raise TimezoneError(f"get_historical_features: entity_df {exc.message}", fix=exc.fix) from None
    arrays["event_timestamp"] = pa.array(ts, type=ARROW_TYPES["timestamp"])
    if arrays["event_timestamp"].null_count:
        raise SchemaError("get_historical_features: entity_df['event_timestamp'] has null values.",
                          fix="Every entity row needs an as-of time; drop or fill those rows.")
    arrays["__row_id"] = pa.array(np.arange(len(entity_df), dtype=np.int64))
    return pa.table(arrays)


@dataclass(frozen=True)
class FeatureRef:
    """A parsed ``"view:feature"`` or ``"view@v2:feature"`` reference."""

    view: FeatureView
    feature: str

    @property
    def full_name(self) -> str:
        return f"{self.view.name}__{self.feature}"


def parse_refs(features: object, resolve: Callable[[str, int | None], FeatureView]) -> list[FeatureRef]:
    """Resolve references; ``view@vN:feature`` pins a version, otherwise the latest applies."""
    if isinstance(features, str) or not isinstance(features, (list, tuple)) or not features:
        raise ValidationError(f"features must be a non-empty list of 'view:feature' strings, got "
                              f"{features!r}.", fix="Pass e.g. features=['user_7d:amount_7d'].")
    refs: list[FeatureRef] = []
    versions: dict[str, int] = {}
    for item in features:
        if not isinstance(item, str) or item.count(":") != 1:
            raise ValidationError(f"feature reference {item!r} is not of the form 'view:feature'.",
                                  fix="Write e.g. 'user_7d:amount_7d' or 'user_7d@v2:amount_7d'.")
        view_part, feature = item.split(":")
        version: int | None = None
        if "@" in view_part:
            view_part, _, vtext = view_part.partition("@")
            digits = vtext[1:] if vtext[:1] in ("v", "V") else vtext
            if not digits.isdigit():
                raise ValidationError(f"feature reference {item!r}: version {vtext!r} is not like 'v2'.",
                                      fix="Write e.g. 'user_7d@v2:amount_7d'.")
            version = int(digits)
        view = resolve(view_part, version)
        if feature not in view.feature_names:
            raise NotFoundError(
                f"feature reference {item!r}: view {view.name!r} v{view.version} has no feature "
                f"{feature!r}.", fix=f"Use one of {list(view.feature_names)}.", ref=item)
        if versions.setdefault(view.name, view.version) != view.version:
            raise ValidationError(f"features mix two versions of view {view.name!r}.",
                                  fix="Read one version of a view per request.", view=view.name)
        refs.append(FeatureRef(view=view, feature=feature))
    if len({(r.view.name, r.feature) for r in refs}) != len(refs):
        raise ValidationError(f"features lists a reference twice: {list(features)!r}.",
                              fix="List each feature once.")
    return refs
