"""What the simulator talks to: a feature source and a model provider (protocols + in-memory).

``FeatureSource.fetch(keys, at)`` returns the online features of a batch of keys as a
DataFrame aligned with ``keys`` plus a boolean missing mask of the same shape.
``ModelProvider`` resolves models by alias and moves the serving alias (``deploy``,
``rollback``); the registry adapter in :mod:`.adapters` implements it over the model
registry, :class:`InMemoryModelProvider` implements it in memory with the same rules
(rollback returns to the last known-good version, never to one rolled back from).
A *model* is anything with ``predict_proba(X)`` (column 1 is the positive class) or a
callable ``model(X) -> scores``; :func:`score_model` calls either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..errors import NotFoundError, RolloutError, ValidationError

__all__ = [
    "FeatureSource", "ModelProvider", "InMemoryFeatureSource", "InMemoryModelProvider",
    "score_model",
]


@runtime_checkable
class FeatureSource(Protocol):
    """Online feature lookup for a batch of keys at one instant."""

    columns: Sequence[str]

    def fetch(self, keys: np.ndarray, at: datetime) -> tuple[pd.DataFrame, np.ndarray]:
        """Return (features aligned with ``keys``, boolean missing mask of the same shape)."""
        ...


@runtime_checkable
class ModelProvider(Protocol):
    """Resolves models by alias and moves the serving alias."""

    serving_alias: str
    candidate_alias: str

    def resolve(self, alias: str) -> tuple[str, Any]:
        """Return (version label, model) currently held by ``alias``."""
        ...

    def load(self, version: str) -> Any:
        """Return the model of ``version``."""
        ...

    def deploy(self, *, actor: str, reason: str) -> str:
        """Point the serving alias at the candidate's version; return that version."""
        ...

    def rollback(self, *, actor: str, reason: str, to: str | None = None) -> str:
        """Return the serving alias to the last known-good version (or ``to``); return it."""
        ...


def score_model(model: Any, X: pd.DataFrame) -> np.ndarray:
    """Score ``X`` with ``model`` (``predict_proba`` or callable); return float scores in [0, 1]."""
    if hasattr(model, "predict_proba"):
        out = np.asarray(model.predict_proba(X), dtype=float)
        if out.ndim == 2:
            out = out[:, -1]
    elif callable(model):
        out = np.asarray(model(X), dtype=float)
    else:
        raise RolloutError(
            f"model of type {type(model).__name__} has neither predict_proba nor __call__.",
            fix="Pass a fitted classifier or a function X -> scores.",
        )
    if out.shape != (len(X),):
        raise RolloutError(
            f"model returned scores of shape {out.shape} for {len(X)} rows.",
            fix="Return one score per row (predict_proba(X)[:, 1] for classifiers).",
        )
    if len(out) and not np.isfinite(out).all():
        raise RolloutError("model returned non-finite scores.",
                           fix="Check the model's handling of filled missing values.")
    return np.clip(out, 0.0, 1.0)


class InMemoryFeatureSource:
    """Latest feature values per key held in memory (the test and benchmark double).

    Parameters
    ----------
    table:
        DataFrame with the key column and numeric feature columns; one row per key.
    key_column:
        Name of the key column.

    Examples
    --------
    >>> src = InMemoryFeatureSource(pd.DataFrame({"k": [1, 2], "f": [0.5, None]}), key_column="k")
    >>> X, missing = src.fetch(np.array([2, 3, 1]), at=None)
    >>> missing[:, 0].tolist()
    [True, True, False]
    """

    def __init__(self, table: pd.DataFrame, *, key_column: str) -> None:
        if not isinstance(table, pd.DataFrame):
            raise ValidationError(
                f"InMemoryFeatureSource: table must be a DataFrame, got {type(table).__name__}.",
                fix="Pass a DataFrame with one row per key.",
            )
        if key_column not in table.columns:
            raise ValidationError(
                f"InMemoryFeatureSource: key column {key_column!r} not in {list(table.columns)}.",
                fix="Name the key column with key_column=.",
            )
        if table[key_column].isna().any() or table[key_column].duplicated().any():
            raise ValidationError(
                f"InMemoryFeatureSource: key column {key_column!r} has nulls or duplicates.",
                fix="Keep one row per key (e.g. the latest value per key).",
            )
        cols = [c for c in table.columns if c != key_column]
        if not cols:
            raise ValidationError("InMemoryFeatureSource: no feature columns.",
                                  fix="Add at least one numeric feature column.")
        for c in cols:
            if not (pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c])):
                raise ValidationError(
                    f"InMemoryFeatureSource: feature {c!r} has dtype {table[c].dtype}; "
                    "the simulator scores numeric features.",
                    fix="Encode the column as numbers before building the source.",
                )
        self.key_column = key_column
        self.columns = tuple(cols)
        self._index = pd.Index(table[key_column].to_numpy())
        self._values = table[cols].to_numpy(dtype=float, na_value=np.nan)

    def fetch(self, keys: np.ndarray, at: datetime | None) -> tuple[pd.DataFrame, np.ndarray]:
        """Look up ``keys``; unknown keys and null values are reported in the missing mask."""
        pos = self._index.get_indexer(np.asarray(keys))
        vals = self._values[np.where(pos < 0, 0, pos)]
        if len(self._values) == 0:
            vals = np.full((len(pos), len(self.columns)), np.nan)
        vals[pos < 0] = np.nan
        return pd.DataFrame(vals, columns=list(self.columns)), np.isnan(vals)


class InMemoryModelProvider:
    """Versions and aliases in memory, with the registry's deploy/rollback rules.

    Parameters
    ----------
    models:
        ``{version label: model}``.
    aliases:
        ``{alias: version label}``; must hold ``serving_alias`` and ``candidate_alias``.
    serving_alias, candidate_alias:
        The alias production resolves, and the alias holding the version to release.
    """

    def __init__(self, models: Mapping[str, Any], aliases: Mapping[str, str], *,
                 serving_alias: str = "deployed-prod", candidate_alias: str = "approved-prod") -> None:
        if not isinstance(models, Mapping) or not models:
            raise ValidationError("InMemoryModelProvider: models must be a non-empty mapping.",
                                  fix="Pass e.g. {'1': model_v1, '2': model_v2}.")
        for alias in (serving_alias, candidate_alias):
            if alias not in aliases:
                raise ValidationError(
                    f"InMemoryModelProvider: alias {alias!r} is not set in {dict(aliases)}.",
                    fix=f"Add {alias!r}: <version> to aliases.",
                )
        for alias, version in aliases.items():
            if version not in models:
                raise ValidationError(
                    f"InMemoryModelProvider: alias {alias!r} points at unknown version {version!r}.",
                    fix=f"Use one of {sorted(models)}.",
                )
        self._models = dict(models)
        self._aliases = dict(aliases)
        self.serving_alias = serving_alias
        self.candidate_alias = candidate_alias
        self.history: list[dict[str, Any]] = [
            {"alias": serving_alias, "version": aliases[serving_alias], "actor": "init", "reason": "initial"}]
        self._rolled_back_from: set[str] = set()

    def aliases(self) -> dict[str, str]:
        """Snapshot of every alias."""
        return dict(self._aliases)

    def resolve(self, alias: str) -> tuple[str, Any]:
        """(version, model) held by ``alias``."""
        if alias not in self._aliases:
            raise NotFoundError(f"alias {alias!r} is not set.", fix=f"Use one of {sorted(self._aliases)}.")
        version = self._aliases[alias]
        return version, self._models[version]

    def load(self, version: str) -> Any:
        """The model of ``version``."""
        if version not in self._models:
            raise NotFoundError(f"model version {version!r} is unknown.", fix=f"Use one of {sorted(self._models)}.")
        return self._models[version]

    def _move(self, version: str, actor: str, reason: str) -> str:
        self._aliases[self.serving_alias] = version
        self.history.append({"alias": self.serving_alias, "version": version, "actor": actor, "reason": reason})
        return version

    def deploy(self, *, actor: str, reason: str) -> str:
        """Move the serving alias to the candidate alias's version."""
        return self._move(self._aliases[self.candidate_alias], actor, reason)

    def rollback(self, *, actor: str, reason: str, to: str | None = None) -> str:
        """Back to the last known-good version (never one rolled back from), or ``to``."""
        current = self._aliases[self.serving_alias]
        if to is not None:
            if to not in self._models:
                raise NotFoundError(f"rollback target {to!r} is unknown.", fix=f"Use one of {sorted(self._models)}.")
            if to != current:
                self._rolled_back_from.add(current)
            return self._move(to, actor, reason)
        bad = self._rolled_back_from | {current}
        for entry in reversed(self.history[:-1]):
            if entry["version"] not in bad:
                self._rolled_back_from.add(current)
                return self._move(entry["version"], actor, reason)
        raise RolloutError(
            f"rollback of {self.serving_alias!r}: no known-good version before {current!r}.",
            fix="Deploy a known-good version explicitly with rollback(to=...).",
        )
