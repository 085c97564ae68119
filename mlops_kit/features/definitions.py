"""Feature definitions as code: ``Entity``, ``Field`` and ``FeatureView``.

Declarations are frozen, keyword-only dataclasses validated at construction. An error
names the object, the field, the value received and the fix. Each declaration has a
content ``fingerprint`` (sha256 over its canonical spec) and round-trips through
``to_dict``/``from_dict``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .._io import canonical_json, sha256_bytes
from ..errors import DefinitionError

__all__ = ["DTYPES", "SENSITIVITIES", "Entity", "Field", "FeatureView"]

DTYPES = ("int64", "float64", "string", "bool", "timestamp")
KEY_DTYPES = ("int64", "string")
SENSITIVITIES = ("public", "internal", "sensitive", "restricted")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_PREFIX = "__"


def _check_name(kind: str, obj: str, attr: str, value: Any) -> None:
    if not isinstance(value, str) or not _NAME.match(value) or value.startswith(_RESERVED_PREFIX):
        raise DefinitionError(
            f"{kind} {obj!r}: {attr} must be an identifier (letters, digits, underscore; "
            f"not starting with a digit or '__'), got {value!r}.",
            fix=f"Use e.g. {attr}='user_id'.",
            object=obj, field=attr, value=value,
        )


@dataclass(frozen=True, kw_only=True)
class Entity:
    """A business object features are keyed by (a user, a merchant ...).

    Parameters
    ----------
    name:
        Entity name, an identifier.
    join_keys:
        Column names identifying one instance; several make a composite key.
    description:
        Free text.

    Examples
    --------
    >>> Entity(name="user", join_keys=["user_id"]).join_keys
    ('user_id',)
    """

    name: str
    join_keys: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("Entity", str(self.name), "name", self.name)
        keys = self.join_keys
        if isinstance(keys, str) or not isinstance(keys, (list, tuple)) or len(keys) == 0:
            raise DefinitionError(
                f"Entity {self.name!r}: join_keys must be a non-empty list of column names, "
                f"got {keys!r}.",
                fix="Use e.g. join_keys=['user_id'].", object=self.name, field="join_keys", value=keys,
            )
        for key in keys:
            _check_name("Entity", self.name, "join_keys", key)
        if len(set(keys)) != len(keys):
            raise DefinitionError(
                f"Entity {self.name!r}: join_keys has duplicates: {list(keys)!r}.",
                fix="List each key column once.", object=self.name, field="join_keys", value=keys,
            )
        if not isinstance(self.description, str):
            raise DefinitionError(
                f"Entity {self.name!r}: description must be a string, got {self.description!r}.",
                fix="Pass description='...'.", object=self.name, field="description",
            )
        object.__setattr__(self, "join_keys", tuple(keys))

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-ready data (``from_dict`` reverses it)."""
        return {"name": self.name, "join_keys": list(self.join_keys), "description": self.description}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Entity":
        """Rebuild (and re-validate) an entity from ``to_dict`` output."""
        return cls(name=data["name"], join_keys=list(data["join_keys"]),
                   description=data.get("description", ""))

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical spec."""
        return sha256_bytes(canonical_json(self.to_dict()).encode())


@dataclass(frozen=True, kw_only=True)
class Field:
    """One typed column of a feature view (dtype one of ``DTYPES``).

    >>> Field(name="amount_7d", dtype="float64").dtype
    'float64'
    """

    name: str
    dtype: str

    def __post_init__(self) -> None:
        _check_name("Field", str(self.name), "name", self.name)
        if self.dtype not in DTYPES:
            raise DefinitionError(
                f"Field {self.name!r}: dtype must be one of {list(DTYPES)}, got {self.dtype!r}.",
                fix="Use e.g. dtype='float64'.", object=self.name, field="dtype", value=self.dtype,
            )

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-ready data."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Field":
        """Rebuild a field from ``to_dict`` output."""
        return cls(name=data["name"], dtype=data["dtype"])


@dataclass(frozen=True, kw_only=True)
class FeatureView:
    """A versioned group of features of one or more entities, with event-time semantics.

    Parameters
    ----------
    name:
        View name, an identifier.
    entities:
        ``Entity`` objects; their join keys key every row.
    schema:
        ``Field`` objects. A field named like a join key declares that key's dtype
        (``int64`` or ``string``); every other field is a feature.
    ttl:
        How old a value may be and still count (``feature_ts >= T - ttl``); ``None`` or
        ``timedelta(0)`` means no limit.
    timestamp_field:
        Event-time column of the offline rows.
    created_timestamp_column:
        Optional processing-time column; breaks ties on the event time and decides
        "known at T" for ``filter_by_created_timestamp``.
    version:
        Positive integer; a changed definition needs a new version.
    owner, description, sensitivity, tags:
        Catalog metadata; ``sensitivity`` is one of ``SENSITIVITIES``.

    Examples
    --------
    >>> user = Entity(name="user", join_keys=["user_id"])
    >>> fv = FeatureView(name="user_7d", entities=[user],
    ...                  schema=[Field(name="amount_7d", dtype="float64")], ttl=timedelta(days=7))
    >>> fv.feature_names
    ('amount_7d',)
    """

    name: str
    entities: tuple[Entity, ...]
    schema: tuple[Field, ...]
    ttl: timedelta | None = None
    timestamp_field: str = "event_timestamp"
    created_timestamp_column: str | None = None
    version: int = 1
    owner: str = ""
    description: str = ""
    sensitivity: str = "internal"
    tags: dict[str, str] = field(default_factory=dict)

    def _fail(self, attr: str, message: str, fix: str, value: Any) -> None:
        raise DefinitionError(f"FeatureView {self.name!r}: {attr} {message}", fix=fix,
                              object=self.name, field=attr, value=value)

    def __post_init__(self) -> None:
        _check_name("FeatureView", str(self.name), "name", self.name)
        ents = self.entities
        if isinstance(ents, Entity) or not isinstance(ents, (list, tuple)) or not ents \
                or not all(isinstance(e, Entity) for e in ents):
            self._fail("entities", f"must be a non-empty list of Entity objects, got {ents!r}.",
                       "Pass entities=[Entity(name='user', join_keys=['user_id'])].", ents)
        fields_ = self.schema
        if isinstance(fields_, Field) or not isinstance(fields_, (list, tuple)) \
                or not all(isinstance(f, Field) for f in fields_):
            self._fail("schema", f"must be a list of Field objects, got {fields_!r}.",
                       "Pass schema=[Field(name='amount_7d', dtype='float64')].", fields_)
        object.__setattr__(self, "entities", tuple(ents))
        object.__setattr__(self, "schema", tuple(fields_))
        keys = [k for e in self.entities for k in e.join_keys]
        if len(set(keys)) != len(keys):
            self._fail("entities", f"repeat a join key across entities: {keys!r}.",
                       "Give every entity distinct join key column names.", keys)
        names = [f.name for f in self.schema]
        if len(set(names)) != len(names):
            self._fail("schema", f"has duplicate field names: {names!r}.", "Name each field once.", names)
        for f in self.schema:
            if f.name in keys and f.dtype not in KEY_DTYPES:
                self._fail("schema", f"declares join key {f.name!r} as {f.dtype!r}.",
                           f"Join keys are one of {list(KEY_DTYPES)}.", f.dtype)
        if not self.feature_names:
            self._fail("schema", "declares no feature (only join keys or nothing).",
                       "Add at least one Field that is not a join key.", names)
        ttl = self.ttl
        if ttl is not None and (not isinstance(ttl, timedelta) or ttl < timedelta(0)):
            self._fail("ttl", f"must be a non-negative timedelta or None, got {ttl}.",
                       "Use e.g. ttl=timedelta(days=7).", ttl)
        _check_name("FeatureView", self.name, "timestamp_field", self.timestamp_field)
        special = [self.timestamp_field]
        if self.created_timestamp_column is not None:
            _check_name("FeatureView", self.name, "created_timestamp_column", self.created_timestamp_column)
            if self.created_timestamp_column == self.timestamp_field:
                self._fail("created_timestamp_column", "must differ from timestamp_field, got "
                           f"{self.created_timestamp_column!r}.",
                           "Use a separate processing-time column, e.g. 'created'.",
                           self.created_timestamp_column)
            special.append(self.created_timestamp_column)
        for col in special:
            if col in keys or col in names:
                self._fail("schema", f"reuses the timestamp column {col!r} as a key or field.",
                           "Timestamp columns are declared by timestamp_field / "
                           "created_timestamp_column only.", col)
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            self._fail("version", f"must be a positive integer, got {self.version!r}.",
                       "Use version=1 for the first definition and bump it for a breaking change.",
                       self.version)
        for attr in ("owner", "description"):
            if not isinstance(getattr(self, attr), str):
                self._fail(attr, f"must be a string, got {getattr(self, attr)!r}.",
                           f"Pass {attr}='...'.", getattr(self, attr))
        if self.sensitivity not in SENSITIVITIES:
            self._fail("sensitivity", f"must be one of {list(SENSITIVITIES)}, got {self.sensitivity!r}.",
                       "Use e.g. sensitivity='internal'.", self.sensitivity)
        tags = self.tags
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in tags.items()):
            self._fail("tags", f"must be a dict of str to str, got {tags!r}.",
                       "Use e.g. tags={'team': 'risk'}.", tags)
        object.__setattr__(self, "tags", dict(tags))

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    # -- derived ----------------------------------------------------------------------
    @property
    def join_keys(self) -> tuple[str, ...]:
        """All join key columns, in entity order."""
        return tuple(k for e in self.entities for k in e.join_keys)

    @property
    def features(self) -> tuple[Field, ...]:
        """Schema fields that are features (not join keys)."""
        keys = set(self.join_keys)
        return tuple(f for f in self.schema if f.name not in keys)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the features, in schema order."""
        return tuple(f.name for f in self.features)

    @property
    def declared_key_dtypes(self) -> dict[str, str]:
        """Join key dtypes declared in ``schema`` (keys not declared are inferred at ingest)."""
        keys = set(self.join_keys)
        return {f.name: f.dtype for f in self.schema if f.name in keys}

    @property
    def ttl_active(self) -> bool:
        """True when the TTL bounds reads (``None`` and zero mean no bound)."""
        return self.ttl is not None and self.ttl > timedelta(0)

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-ready data (TTL in integer microseconds)."""
        return {
            "name": self.name,
            "entities": [e.to_dict() for e in self.entities],
            "schema": [f.to_dict() for f in self.schema],
            "ttl_microseconds": None if self.ttl is None else self.ttl // timedelta(microseconds=1),
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "version": self.version,
            "owner": self.owner,
            "description": self.description,
            "sensitivity": self.sensitivity,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureView":
        """Rebuild (and re-validate) a view from ``to_dict`` output."""
        ttl = data.get("ttl_microseconds")
        return cls(
            name=data["name"],
            entities=[Entity.from_dict(e) for e in data["entities"]],
            schema=[Field.from_dict(f) for f in data["schema"]],
            ttl=None if ttl is None else timedelta(microseconds=ttl),
            timestamp_field=data.get("timestamp_field", "event_timestamp"),
            created_timestamp_column=data.get("created_timestamp_column"),
            version=data.get("version", 1),
            owner=data.get("owner", ""),
            description=data.get("description", ""),
            sensitivity=data.get("sensitivity", "internal"),
            tags=data.get("tags", {}),
        )

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical spec (every declared field, metadata included)."""
        return sha256_bytes(canonical_json(self.to_dict()).encode())
