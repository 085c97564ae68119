"""Records the registry returns: versions, alias events, state events, approvals, attestations.

A :class:`ModelVersion` separates what the author declared (:class:`ModelVersionSpec`:
name, signature, metadata, lineage, author) from what the registry assigned (version,
created_at, artifact_sha256, artifact_format, trusted_types, state, aliases), which are
read-only properties. Every record round-trips through ``to_dict``/``from_dict`` (JSON with sorted keys).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._io import canonical_json
from ..errors import DefinitionError
from .lineage import Lineage
from .metadata import ModelMetadata
from .signature import ModelSignature

__all__ = ["ModelVersionSpec", "ModelVersion", "AliasEvent", "StateEvent", "Approval", "Attestation", "ArtifactEvent",
           "alias_spans"]


def _dt(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


@dataclass(frozen=True, kw_only=True)
class ModelVersionSpec:
    """What the author declares when registering a version."""

    name: str
    signature: ModelSignature
    metadata: ModelMetadata
    lineage: Lineage
    author: str

    def __post_init__(self) -> None:
        checks = (("signature", ModelSignature), ("metadata", ModelMetadata), ("lineage", Lineage))
        for attr, kind in checks:
            if not isinstance(getattr(self, attr), kind):
                raise DefinitionError(
                    f"model {self.name!r}: {attr} must be a {kind.__name__}, got {type(getattr(self, attr)).__name__}.",
                    fix=f"Build it with {kind.__name__}(...)" + (" or infer_signature(X_train)." if attr == "signature" else "."))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "author": self.author, "signature": self.signature.to_dict(),
                "metadata": self.metadata.to_dict(), "lineage": self.lineage.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelVersionSpec":
        return cls(name=data["name"], author=data["author"],
                   signature=ModelSignature.from_dict(data["signature"]),
                   metadata=ModelMetadata.from_dict(data["metadata"]),
                   lineage=Lineage.from_dict(data["lineage"]))

    def fingerprint(self) -> str:
        """sha256 of the spec's canonical JSON."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class ModelVersion:
    """An immutable model version as read from the registry (a snapshot of its state)."""

    spec: ModelVersionSpec
    _version: int = field(repr=False)
    _created_at: datetime = field(repr=False)
    _artifact_sha256: str = field(repr=False)
    _state: str = field(repr=False)
    _aliases: tuple[str, ...] = field(default=(), repr=False)
    _artifact_format: str = field(default="skops", repr=False)
    _trusted_types: tuple[str, ...] = field(default=(), repr=False)

    # system fields (read-only)
    @property
    def version(self) -> int:
        return self._version

    @property
    def created_at(self) -> datetime:
        return self._created_at

    @property
    def artifact_sha256(self) -> str:
        return self._artifact_sha256

    @property
    def artifact_format(self) -> str:
        """``"skops"`` (safe to load) or ``"pickle"`` (loads only with ``trusted=True``)."""
        return self._artifact_format

    @property
    def trusted_types(self) -> tuple[str, ...]:
        """The types a skops artifact may construct beyond skops' defaults, recorded at registration."""
        return self._trusted_types

    @property
    def state(self) -> str:
        return self._state

    @property
    def aliases(self) -> tuple[str, ...]:
        return self._aliases

    # spec fields
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def signature(self) -> ModelSignature:
        return self.spec.signature

    @property
    def metadata(self) -> ModelMetadata:
        return self.spec.metadata

    @property
    def lineage(self) -> Lineage:
        return self.spec.lineage

    @property
    def author(self) -> str:
        return self.spec.author

    def __repr__(self) -> str:
        return (f"ModelVersion(name={self.name!r}, version={self.version}, state={self.state!r}, "
                f"aliases={list(self.aliases)}, artifact_sha256={self.artifact_sha256[:12]!r}...)")

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "version": self.version,
                "created_at": self.created_at.isoformat(), "artifact_sha256": self.artifact_sha256,
                "artifact_format": self.artifact_format, "trusted_types": list(self.trusted_types),
                "state": self.state, "aliases": list(self.aliases)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelVersion":
        return cls(spec=ModelVersionSpec.from_dict(data["spec"]), _version=int(data["version"]),
                   _created_at=_dt(data["created_at"]), _artifact_sha256=str(data["artifact_sha256"]),
                   _state=str(data["state"]), _aliases=tuple(data.get("aliases", ())),
                   _artifact_format=str(data.get("artifact_format", "skops")),
                   _trusted_types=tuple(data.get("trusted_types", ())))


@dataclass(frozen=True, kw_only=True)
class AliasEvent:
    """One move of an alias: from which version to which, by whom, when and why."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str  # promote | deploy | rollback | remove
    actor: str
    reason: str
    at: datetime
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "alias": self.alias, "from_version": self.from_version,
                "to_version": self.to_version, "action": self.action, "actor": self.actor,
                "reason": self.reason, "at": self.at.isoformat(), "audit_seq": self.audit_seq}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AliasEvent":
        return cls(**{**dict(data), "at": _dt(data["at"])})


def alias_spans(events: list[AliasEvent]) -> list[dict[str, Any]]:
    """Turn an alias history into spans: which version held the alias, from when to when.

    Each span has ``version``, ``since``, ``until`` (``None`` while it still holds),
    ``moved_in_by``/``moved_in_reason``/``moved_in_action`` and the same for the move out.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> t = [datetime(2024, 1, d, tzinfo=timezone.utc) for d in (1, 2)]
    >>> ev = [AliasEvent(name="m", alias="prod", from_version=None, to_version=1, action="deploy",
    ...                  actor="a", reason="r", at=t[0], audit_seq=1),
    ...       AliasEvent(name="m", alias="prod", from_version=1, to_version=2, action="deploy",
    ...                  actor="b", reason="s", at=t[1], audit_seq=2)]
    >>> [(s["version"], s["until"] is None) for s in alias_spans(ev)]
    [(1, False), (2, True)]
    """
    spans: list[dict[str, Any]] = []
    for event in events:
        if spans and spans[-1]["until"] is None:
            spans[-1].update(until=event.at, moved_out_by=event.actor, moved_out_reason=event.reason,
                             moved_out_action=event.action)
        if event.to_version is not None:
            spans.append({"alias": event.alias, "version": event.to_version, "since": event.at, "until": None,
                          "moved_in_by": event.actor, "moved_in_reason": event.reason,
                          "moved_in_action": event.action, "moved_out_by": None, "moved_out_reason": None,
                          "moved_out_action": None})
    return spans


@dataclass(frozen=True, kw_only=True)
class StateEvent:
    """One lifecycle transition of a version."""

    name: str
    version: int
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    at: datetime
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "from_state": self.from_state,
                "to_state": self.to_state, "actor": self.actor, "reason": self.reason,
                "at": self.at.isoformat(), "audit_seq": self.audit_seq}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StateEvent":
        return cls(**{**dict(data), "at": _dt(data["at"])})


@dataclass(frozen=True, kw_only=True)
class Approval:
    """A principal's sign-off on a version, in a role, with a note."""

    name: str
    version: int
    actor: str
    role: str
    note: str
    at: datetime
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "actor": self.actor, "role": self.role,
                "note": self.note, "at": self.at.isoformat(), "audit_seq": self.audit_seq}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Approval":
        return cls(**{**dict(data), "at": _dt(data["at"])})


@dataclass(frozen=True, kw_only=True)
class Attestation:
    """The stored result of one policy evaluation on a version."""

    policy_id: str
    stage: str
    inputs: Mapping[str, Any]
    observed: Any
    threshold: Any
    verdict: str  # pass | fail
    reason: str
    at: datetime
    name: str = ""
    version: int = 0
    audit_seq: int = 0

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def body(self) -> dict[str, Any]:
        return {"policy_id": self.policy_id, "stage": self.stage, "inputs": dict(self.inputs),
                "observed": self.observed, "threshold": self.threshold, "verdict": self.verdict,
                "reason": self.reason}

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "at": self.at.isoformat(), "name": self.name, "version": self.version,
                "audit_seq": self.audit_seq}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Attestation":
        return cls(**{**dict(data), "at": _dt(data["at"])})


@dataclass(frozen=True, kw_only=True)
class ArtifactEvent:
    """A version's artifact replaced by an equivalent one (e.g. pickle rewritten as skops)."""

    name: str
    version: int
    from_sha256: str
    artifact_sha256: str
    artifact_format: str
    trusted_types: tuple[str, ...]
    action: str  # migrate_artifact
    actor: str
    at: datetime
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "from_sha256": self.from_sha256,
                "artifact_sha256": self.artifact_sha256, "artifact_format": self.artifact_format,
                "trusted_types": list(self.trusted_types), "action": self.action, "actor": self.actor,
                "at": self.at.isoformat(), "audit_seq": self.audit_seq}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArtifactEvent":
        return cls(**{**dict(data), "trusted_types": tuple(data["trusted_types"]), "at": _dt(data["at"])})
