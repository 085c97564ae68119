"""Privacy helpers: salted hashing, bucketing, rare-category suppression and retention.

* ``salted_hash`` - a keyed pseudonym (sha256 of salt + value): deterministic for one salt,
  unlinkable across salts (rotate the salt to break joins with old logs).
* ``bucketize`` - coarse ranges with explicit edges instead of precise values.
* ``suppress_rare`` - categories seen fewer than ``k`` times become ``other`` (k-anonymity
  style: no category identifies fewer than ``k`` rows).
* ``apply_retention`` - deletes offline partition folders ``date=YYYY-MM-DD`` whose every row
  is older than the policy allows, with a dry-run mode and a log line per deletion.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._time import ensure_utc
from ..errors import ValidationError

__all__ = ["salted_hash", "bucketize", "suppress_rare", "apply_retention", "RetentionResult"]

log = logging.getLogger("mlops_kit.governance.retention")
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def _series(values: Any, where: str) -> tuple[pd.Series, bool]:
    if isinstance(values, pd.Series):
        return values, False
    if isinstance(values, (str, bytes, int, float)) or values is None:
        return pd.Series([values], dtype=object), True
    try:
        return pd.Series(list(values), dtype=object), False
    except TypeError as exc:
        raise ValidationError(f"{where}: values must be a scalar, a list or a Series, got {type(values).__name__}.",
                              fix="Pass e.g. df['card_id'].") from exc


def salted_hash(values: Any, *, salt: str, length: int = 16) -> Any:
    """Hex sha256 of ``salt + "|" + str(value)``, truncated to ``length`` characters; nulls stay null.

    Values are hashed by their text, so ``1`` and ``1.0`` differ: cast identifiers to one
    type (e.g. ``df["card_id"].astype("int64")`` or ``str``) before hashing.

    >>> salted_hash("4111-1111", salt="s1") == salted_hash("4111-1111", salt="s1")
    True
    >>> salted_hash("4111-1111", salt="s1") == salted_hash("4111-1111", salt="s2")
    False
    """
    if not isinstance(salt, str) or len(salt) < 2:
        raise ValidationError(f"salted_hash: salt must be a string of at least 2 characters, got {salt!r}.",
                              fix="Keep a secret salt per purpose, e.g. salt=os.environ['PII_SALT'].")
    if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= 64:
        raise ValidationError(f"salted_hash: length must be an integer in [8, 64], got {length!r}.",
                              fix="Use length=16 (64 bits) or more.")
    series, scalar = _series(values, "salted_hash")
    prefix = (salt + "|").encode()
    out = pd.Series([None if pd.isna(v) else hashlib.sha256(prefix + str(v).encode()).hexdigest()[:length]
                     for v in series], index=series.index, dtype=object)
    return out.iloc[0] if scalar else out


def bucketize(values: Any, *, edges: Any) -> Any:
    """Replace numbers by the label of their bucket: ``<e1``, ``[e1, e2)``, ..., ``>=e_last``.

    A value equal to an edge goes to the bucket on the edge's right (as in ``psi``); nulls
    stay null.

    >>> list(bucketize([5, 10, 99, 250], edges=[10, 100]))
    ['<10', '[10, 100)', '[10, 100)', '>=100']
    """
    arr = np.asarray(edges, dtype=float) if not isinstance(edges, (str, bytes)) else np.array([])
    if arr.ndim != 1 or arr.size < 1 or not np.isfinite(arr).all() or (np.diff(arr) <= 0).any():
        raise ValidationError(f"bucketize: edges must be a non-empty, strictly increasing list of numbers, got {edges!r}.",
                              fix="Pass e.g. edges=[10, 100, 1000].")
    series, scalar = _series(values, "bucketize")
    try:
        numbers = pd.to_numeric(series, errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"bucketize: values must be numeric ({exc}).", fix="Bucket numbers only.") from exc
    text = [str(int(e)) if float(e).is_integer() and abs(e) < 1e15 else repr(float(e)) for e in arr]
    labels = [f"<{text[0]}"] + [f"[{a}, {b})" for a, b in zip(text, text[1:])] + [f">={text[-1]}"]
    index = np.searchsorted(arr, numbers.to_numpy(), side="right")
    named = np.array(labels, dtype=object)[index]
    named[np.isnan(numbers.to_numpy())] = None
    out = pd.Series(named, index=series.index, dtype=object)
    return out.iloc[0] if scalar else out


def suppress_rare(values: Any, *, k: int, other: str = "__other__") -> pd.Series:
    """Replace categories that occur fewer than ``k`` times by ``other``; nulls stay null."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValidationError(f"suppress_rare: k must be an integer >= 2, got {k!r}.",
                              fix="Use e.g. k=10 (no shown category holds fewer than 10 rows).")
    if not isinstance(other, str) or not other:
        raise ValidationError(f"suppress_rare: other must be a non-empty string, got {other!r}.",
                              fix="Use other='__other__'.")
    series, _ = _series(values, "suppress_rare")
    counts = series.value_counts(dropna=True)
    rare = set(counts[counts < k].index)
    out = series.astype(object).mask(series.isin(rare), other)
    return out.mask(series.isna(), None).astype(object)


@dataclass(frozen=True)
class RetentionResult:
    """Partitions deleted (or, in a dry run, that would be) and kept."""

    now: datetime
    max_age: timedelta
    dry_run: bool
    deleted: tuple[dict[str, str], ...]
    kept: tuple[dict[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "max_age_seconds": self.max_age.total_seconds(),
                "dry_run": self.dry_run, "deleted": list(self.deleted), "kept": list(self.kept)}


def _partitions(target: Any) -> list[tuple[Path, date]]:
    if isinstance(target, (str, os.PathLike)):
        root = Path(target)
        if not root.is_dir():
            raise ValidationError(f"apply_retention: {str(root)!r} is not a folder.",
                                  fix="Pass the offline folder (or a view's folder) or a list of date= folders.")
        dirs = [root] if root.name.startswith("date=") else sorted(p for p in root.rglob("date=*") if p.is_dir())
    elif isinstance(target, (list, tuple)):
        dirs = [Path(p) for p in target]
    else:
        raise ValidationError(f"apply_retention: target must be a folder or a list of partition folders, got "
                              f"{type(target).__name__}.", fix="Pass e.g. workspace.offline_dir.")
    out = []
    for path in dirs:
        match = _PARTITION.match(path.name)
        if not path.is_dir() or match is None:
            raise ValidationError(f"apply_retention: {str(path)!r} is not a partition folder named date=YYYY-MM-DD.",
                                  fix="Pass only existing date=YYYY-MM-DD folders; nothing was deleted.")
        try:
            out.append((path, date.fromisoformat(match.group(1))))
        except ValueError as exc:
            raise ValidationError(f"apply_retention: {path.name!r} holds an invalid date.",
                                  fix="Rename or remove the folder; nothing was deleted.") from exc
    return out


def apply_retention(target: Any, *, max_age: timedelta, now: datetime, dry_run: bool = False,
                    before_delete: Callable[[list[Path]], None] | None = None) -> RetentionResult:
    """Delete partition folders whose whole day ended more than ``max_age`` before ``now``.

    Partition ``date=D`` holds the rows of UTC day D; it is expired when ``D + 1 day <= now -
    max_age`` (every row in it is older than the policy allows). ``target`` is a folder
    (searched recursively for ``date=`` folders) or a list of partition folders; every name
    is validated before anything is deleted. Each folder is first renamed to a hidden name
    (readers never see half a partition), then removed; each deletion is logged on the
    ``mlops_kit.governance.retention`` logger. ``dry_run=True`` deletes nothing.

    ``before_delete(paths)`` is called once with the expired partition folders before any is
    deleted (not in a dry run), e.g. to drop them from a file manifest first so that readers
    never list a file that is gone; if it raises, nothing is deleted.
    """
    if not isinstance(max_age, timedelta) or max_age <= timedelta(0):
        raise ValidationError(f"apply_retention: max_age must be a positive timedelta, got {max_age!r}.",
                              fix="Use e.g. max_age=timedelta(days=365).")
    now = ensure_utc(now, name="apply_retention(now)")
    if not isinstance(dry_run, bool):
        raise ValidationError(f"apply_retention: dry_run must be True or False, got {dry_run!r}.",
                              fix="Pass dry_run=True to list what would be deleted.")
    partitions = _partitions(target)
    cutoff = now - max_age
    deleted, kept = [], []
    for path, day in partitions:
        day_end = datetime(day.year, day.month, day.day, tzinfo=now.tzinfo) + timedelta(days=1)
        record = {"path": str(path), "partition_date": day.isoformat()}
        (deleted if day_end <= cutoff else kept).append(record)
    if before_delete is not None and not callable(before_delete):
        raise ValidationError("apply_retention: before_delete must be callable or None.",
                              fix="Pass a function taking the list of partition folders.")
    if deleted and not dry_run and before_delete is not None:
        before_delete([Path(record["path"]) for record in deleted])
    for record in deleted:
        path = Path(record["path"])
        if dry_run:
            log.info("retention dry run: would delete %s (older than %s at %s)", path, max_age, now.isoformat())
            continue
        hidden = path.with_name(f".deleting-{path.name}")
        os.replace(path, hidden)
        shutil.rmtree(hidden)
        log.info("retention: deleted %s (older than %s at %s)", path, max_age, now.isoformat())
    return RetentionResult(now=now, max_age=max_age, dry_run=bool(dry_run), deleted=tuple(deleted), kept=tuple(kept))
