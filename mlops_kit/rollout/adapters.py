"""Thin adapters from the simulator's protocols to the kit's feature store and model registry.

``OnlineStoreFeatureSource`` reads online features with
``FeatureStore.get_online_features(features=..., entity_rows=..., at=...)`` (TTL enforced
at ``at``; unknown keys and expired values come back null and count as missing). A read
the store cannot serve (``OnlineStoreUnavailableError``: the server is down) comes back as
all-missing for that batch, so the serving path degrades (fallback guardrail, fill values)
instead of crashing; every such batch is kept in ``unavailable``.
``RegistryModelProvider`` resolves versions by alias and moves ``deployed-prod`` only
through ``ModelRegistry.deploy`` and ``ModelRegistry.rollback``, so every release and
rollback the simulator performs is audited in the registry's hash chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ..errors import OnlineStoreUnavailableError, RolloutError, ValidationError

__all__ = ["OnlineStoreFeatureSource", "RegistryModelProvider"]


class OnlineStoreFeatureSource:
    """A :class:`~mlops_kit.rollout.FeatureSource` over ``FeatureStore`` online reads.

    Parameters
    ----------
    store:
        A :class:`mlops_kit.features.FeatureStore` (or anything with ``get_online_features``).
    features:
        Feature references ``"view:feature"``; the columns are the bare feature names.
    key_column:
        The entity join key the request keys are (e.g. ``"user_id"``).
    principal, purpose:
        Passed to the store for access control and read logging.
    """

    def __init__(self, store: Any, features: Sequence[str], key_column: str, *,
                 principal: str | None = None, purpose: str | None = "rollout-serving") -> None:
        if not callable(getattr(store, "get_online_features", None)):
            raise ValidationError(f"OnlineStoreFeatureSource: {type(store).__name__} has no get_online_features().",
                                  fix="Pass a FeatureStore, e.g. Workspace(root).features.")
        if isinstance(features, str) or not isinstance(features, Sequence) or not features \
                or not all(isinstance(f, str) and ":" in f for f in features):
            raise ValidationError(f"OnlineStoreFeatureSource: features must be a list of 'view:feature' refs, "
                                  f"got {features!r}.", fix="Use e.g. ['user_stats:user_risk'].")
        if not isinstance(key_column, str) or not key_column:
            raise ValidationError(f"OnlineStoreFeatureSource: key_column must be a join key name, got {key_column!r}.",
                                  fix="Use the entity's join key, e.g. key_column='user_id'.")
        self.store, self.features, self.key_column = store, list(features), key_column
        self.columns = tuple(f.split(":", 1)[1] for f in self.features)
        if len(set(self.columns)) != len(self.columns):
            raise ValidationError(f"OnlineStoreFeatureSource: feature names clash: {list(self.columns)}.",
                                  fix="Read each feature name from one view only.")
        self.principal, self.purpose = principal, purpose
        #: one entry per batch the store could not serve: ``{"at", "keys", "error"}``
        self.unavailable: list[dict[str, Any]] = []

    def fetch(self, keys: np.ndarray, at: datetime | None) -> tuple[pd.DataFrame, np.ndarray]:
        """Read ``keys`` as of ``at``; returns (features aligned with keys, missing mask).

        An unavailable store gives an all-missing batch (recorded in ``unavailable``), never an error.
        """
        uniq, inverse = np.unique(np.asarray(keys), return_inverse=True)
        rows = [{self.key_column: k} for k in uniq.tolist()]
        try:
            out = self.store.get_online_features(features=self.features, entity_rows=rows, at=at,
                                                 principal=self.principal, purpose=self.purpose)
        except OnlineStoreUnavailableError as exc:
            self.unavailable.append({"at": at, "keys": int(len(keys)), "error": exc.message})
            values = np.full((len(keys), len(self.columns)), np.nan)
            return pd.DataFrame(values, columns=list(self.columns)), np.ones(values.shape, dtype=bool)
        frame = pd.DataFrame({c: pd.to_numeric(pd.Series(out[c], dtype=object), errors="coerce")
                              for c in self.columns})
        values = frame.to_numpy(dtype=float, na_value=np.nan)[inverse.reshape(-1)]
        return pd.DataFrame(values, columns=list(self.columns)), np.isnan(values)


class RegistryModelProvider:
    """A :class:`~mlops_kit.rollout.ModelProvider` over :class:`mlops_kit.registry.ModelRegistry`.

    Parameters
    ----------
    registry:
        The model registry (e.g. ``Workspace(root).registry``).
    name:
        Registered model name.
    candidate_alias:
        The alias holding the version to release (``deploy`` moves ``deployed-prod`` to the
        holder of ``approved-prod``, so that is the default).
    """

    serving_alias = "deployed-prod"

    def __init__(self, registry: Any, name: str, *, candidate_alias: str = "approved-prod") -> None:
        for method in ("get_model_version_by_alias", "load_model", "deploy", "rollback"):
            if not callable(getattr(registry, method, None)):
                raise ValidationError(f"RegistryModelProvider: {type(registry).__name__} has no {method}().",
                                      fix="Pass a ModelRegistry, e.g. Workspace(root).registry.")
        if not isinstance(name, str) or not name:
            raise ValidationError(f"RegistryModelProvider: name must be a model name, got {name!r}.",
                                  fix="Pass the registered model's name, e.g. 'fraud'.")
        if not isinstance(candidate_alias, str) or not candidate_alias or candidate_alias == self.serving_alias:
            raise ValidationError(f"RegistryModelProvider: candidate_alias must differ from {self.serving_alias!r}, "
                                  f"got {candidate_alias!r}.", fix="Use candidate_alias='approved-prod'.")
        self.registry, self.name, self.candidate_alias = registry, name, candidate_alias
        self._cache: dict[str, Any] = {}

    def resolve(self, alias: str) -> tuple[str, Any]:
        """(version, model) currently held by ``alias`` (hash-verified load)."""
        mv = self.registry.get_model_version_by_alias(self.name, alias)
        return str(mv.version), self.load(str(mv.version))

    def load(self, version: str) -> Any:
        """The model of ``version`` (loaded once, hash-verified by the registry)."""
        v = str(version)
        if v not in self._cache:
            self._cache[v] = self.registry.load_model(self.name, version=int(v))
        return self._cache[v]

    def deploy(self, *, actor: str, reason: str) -> str:
        """``ModelRegistry.deploy``: ``deployed-prod`` -> the holder of ``approved-prod``."""
        want = self.registry.get_model_version_by_alias(self.name, self.candidate_alias).version
        approved = self.registry.get_model_version_by_alias(self.name, "approved-prod").version
        if want != approved:
            raise RolloutError(f"deploy: the candidate v{want} ({self.candidate_alias!r}) does not hold "
                               f"'approved-prod' (v{approved}); the registry deploys only the approved version.",
                               fix="Approve and promote the candidate to 'approved-prod' before a canary or "
                                   "blue/green release; a shadow run needs no deploy.")
        self.registry.deploy(self.name, actor=actor, reason=reason)
        return str(self.registry.get_model_version_by_alias(self.name, self.serving_alias).version)

    def rollback(self, *, actor: str, reason: str, to: str | None = None) -> str:
        """``ModelRegistry.rollback``: back to the last known-good version (or ``to``)."""
        mv = self.registry.rollback(self.name, actor=actor, to=None if to is None else int(to), reason=reason)
        return str(mv.version)
