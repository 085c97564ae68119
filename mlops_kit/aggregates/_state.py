"""The state of an aggregate table and the cost report of each run.

An aggregate table is one folder::

    <table_dir>/state.json                              the state (the single commit point)
    <table_dir>/data/date=YYYY-MM-DD/part-gNNNNNN.parquet   one output file per day

``state.json`` holds the spec fingerprint, the processing-time watermark, the footer
signature of every source partition seen, and the manifest: which file holds each output
day. Output files are written under a new generation name first; the run commits by
atomically replacing ``state.json``. Readers go through the manifest, so an interrupted
run leaves the previous output and state exactly as they were.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from .._time import ensure_utc
from ..errors import IntegrityError

__all__ = ["AggregateState", "RunReport", "STATE_FILE", "read_state", "write_state"]

STATE_FILE = "state.json"
_FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class AggregateState:
    """What an aggregate table has computed so far (persisted as ``state.json``)."""

    spec_fingerprint: str
    spec: dict[str, Any]
    source: str
    as_of: datetime
    generation: int
    watermark: datetime | None
    last_day: date | None
    partitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    output: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (timestamps as ISO-8601 strings)."""
        return {"format": _FORMAT, "spec_fingerprint": self.spec_fingerprint, "spec": self.spec,
                "source": self.source, "as_of": self.as_of.isoformat(),
                "generation": self.generation,
                "watermark": None if self.watermark is None else self.watermark.isoformat(),
                "last_day": None if self.last_day is None else self.last_day.isoformat(),
                "partitions": self.partitions, "output": self.output}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateState:
        """Inverse of :meth:`to_dict`; a malformed document raises ``IntegrityError``."""
        try:
            if data.get("format") != _FORMAT:
                raise KeyError("format")
            return cls(
                spec_fingerprint=str(data["spec_fingerprint"]), spec=dict(data["spec"]),
                source=str(data["source"]),
                as_of=ensure_utc(data["as_of"], name="state.as_of"),
                generation=int(data["generation"]),
                watermark=None if data["watermark"] is None
                else ensure_utc(data["watermark"], name="state.watermark"),
                last_day=None if data["last_day"] is None else date.fromisoformat(data["last_day"]),
                partitions={str(k): dict(v) for k, v in data["partitions"].items()},
                output={str(k): dict(v) for k, v in data["output"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(
                f"aggregate state is malformed ({type(exc).__name__}: {exc}).",
                fix="Rebuild the table with full_refresh() (it rewrites the state).",
            ) from exc


def read_state(table_dir: str | os.PathLike[str]) -> AggregateState | None:
    """The committed state of ``table_dir``, or None when nothing was committed yet."""
    path = Path(table_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IntegrityError(f"aggregate state {str(path)!r} is not valid JSON.",
                             fix="Rebuild the table with full_refresh().") from exc
    if not isinstance(data, dict):
        raise IntegrityError(f"aggregate state {str(path)!r} is not a JSON object.",
                             fix="Rebuild the table with full_refresh().")
    return AggregateState.from_dict(data)


def write_state(table_dir: str | os.PathLike[str], state: AggregateState) -> Path:
    """Commit ``state`` atomically (temp file, fsync, rename)."""
    return atomic_write_json(Path(table_dir) / STATE_FILE, state.to_dict())


@dataclass(frozen=True, kw_only=True)
class RunReport:
    """The cost of one run, counted honestly.

    ``rows_scanned`` is the row count of every source file the run actually read (from the
    Parquet footers), ``bytes_scanned`` their size; the change detection itself reads only
    footers. ``wall_seconds`` is measured with ``time.perf_counter`` around the whole run.
    """

    mode: str
    spec_name: str
    spec_fingerprint: str
    as_of: datetime
    partitions_total: int
    partitions_changed: tuple[str, ...]
    partitions_read: int
    files_read: int
    rows_scanned: int
    bytes_scanned: int
    rows_total: int
    rows_new: int
    rows_late: int
    output_days_written: int
    output_rows_written: int
    output_days_removed: int
    watermark_before: datetime | None
    watermark_after: datetime | None
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (timestamps as ISO strings)."""
        out = asdict(self)
        for key in ("as_of", "watermark_before", "watermark_after"):
            out[key] = None if out[key] is None else out[key].isoformat()
        out["partitions_changed"] = list(self.partitions_changed)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        for key in ("as_of", "watermark_before", "watermark_after"):
            if fields.get(key) is not None:
                fields[key] = ensure_utc(fields[key], name=key)
        fields["partitions_changed"] = tuple(fields.get("partitions_changed", ()))
        return cls(**fields)

    def summary(self) -> str:
        """One line for a notebook: mode, rows scanned, partitions read and time."""
        return (f"{self.mode}: scanned {self.rows_scanned:,} rows in {self.partitions_read} "
                f"partition(s), wrote {self.output_rows_written:,} rows for "
                f"{self.output_days_written} day(s) in {self.wall_seconds:.2f} s")
