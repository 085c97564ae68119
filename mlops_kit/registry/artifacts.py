"""Content-addressed artifact storage: ``artifacts/sha256/ab/<hash>``, verified on every load.

Artifacts are written to a temporary file and renamed into place, so a reader sees a whole
file or none. Loading re-hashes the bytes *before* unpickling and refuses any mismatch
with :class:`~mlops_kit.errors.IntegrityError`.

Security note: unpickling runs code. Only load artifacts that this registry wrote itself;
the hash check guarantees the bytes are the ones registered, not that they are safe.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, sha256_bytes
from ..errors import IntegrityError, NotFoundError, ValidationError

__all__ = ["ArtifactStore"]


class ArtifactStore:
    """Pickled model artifacts stored by the sha256 of their bytes under ``root/sha256``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "sha256"

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    @staticmethod
    def serialize(model: Any) -> bytes:
        try:
            return pickle.dumps(model, protocol=5)
        except Exception as exc:  # pickling errors come in many types
            raise ValidationError(f"the model ({type(model).__name__}) cannot be pickled: {exc}.",
                                  fix="Register a picklable fitted estimator (e.g. a scikit-learn model).") from exc

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` (if not already present and intact) and return its sha256."""
        digest = sha256_bytes(data)
        target = self.path_for(digest)
        if not (target.is_file() and sha256_bytes(target.read_bytes()) == digest):
            atomic_write_bytes(target, data)
        return digest

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def read_verified(self, digest: str) -> bytes:
        """The artifact's bytes, after checking they hash to ``digest``."""
        target = self.path_for(digest)
        if not target.is_file():
            raise NotFoundError(f"artifact {digest[:12]}... is missing from {str(self.root)!r}.",
                                fix="Restore the artifacts folder from a backup; the registry cannot rebuild it.",
                                artifact_sha256=digest)
        data = target.read_bytes()
        actual = sha256_bytes(data)
        if actual != digest:
            raise IntegrityError(f"artifact {digest[:12]}... was modified on disk (its bytes hash to "
                                 f"{actual[:12]}...); refusing to load it.",
                                 fix="Restore the original file or register the model again.",
                                 expected=digest, actual=actual, path=str(target))
        return data

    def load(self, digest: str) -> Any:
        """Verify, then unpickle (only for artifacts this registry wrote)."""
        return pickle.loads(self.read_verified(digest))

    def all_digests(self) -> dict[str, Path]:
        """Every stored artifact file, by name."""
        if not self.root.is_dir():
            return {}
        return {p.name: p for p in self.root.glob("??/*") if p.is_file() and not p.name.startswith(".")}
