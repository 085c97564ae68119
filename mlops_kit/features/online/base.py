"""The ``OnlineStore`` interface every online engine implements, and its shared row form.

An online store keeps, per view version and entity key, the winning row of the latest
materialization: its event timestamp, created timestamp and feature values in raw storage
form (int64 / bool / timestamp as Python ints, the timestamp in microseconds since the
epoch; float64 as float; string as str; null as None; a float NaN is stored and read as
null, as ingest treats it). Writes are guarded upserts: a stored value is replaced only by
a row with a later event timestamp, or the same event timestamp and a created timestamp
not earlier; an older row never overwrites a newer one. TTL is not the store's business:
``serving.read_online`` applies it on read, the same code above every engine.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

from ..definitions import FeatureView

__all__ = ["OnlineStore", "OnlineRows", "NO_CREATED"]

NO_CREATED = -(2**63)  # stored created timestamp of views without a created column

# For one view: (event_ts_us per requested key, {feature: values per requested key}).
OnlineRows = tuple[list[int | None], dict[str, list[object]]]


class OnlineStore(abc.ABC):
    """Where the latest feature values are served from, keyed by entity."""

    @abc.abstractmethod
    def write_rows(self, view: FeatureView, key_dtypes: dict[str, str], rows: Iterable[tuple]) -> int:
        """Upsert ``(keys..., event_ts_us, created_ts_us|None, features...)`` tuples.

        Returns the number of rows the guard let through (inserted or replaced; a row
        equal in both timestamps to the stored one counts). Must never replace a newer
        value with an older one.
        """

    @abc.abstractmethod
    def read_rows(self, view: FeatureView, features: Sequence[str], keys: Sequence[tuple]) -> OnlineRows:
        """Values (raw storage form) for ``keys``; unknown keys give ``None``."""

    @abc.abstractmethod
    def count(self, view: FeatureView) -> int:
        """Number of entities stored for ``view``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def describe(self) -> dict[str, object]:
        """The engine's kind and location, safe to print (no secrets)."""
        return {"kind": type(self).__name__}
