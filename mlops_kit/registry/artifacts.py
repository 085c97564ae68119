"""Content-addressed artifact storage: ``artifacts/sha256/ab/<hash>``, verified on every load.

Artifacts are written to a temporary file and renamed into place, so a reader sees a whole
file or none. Loading re-hashes the bytes *before* deserialising and refuses any mismatch
with :class:`~mlops_kit.errors.IntegrityError`.

Artifacts are skops files by default (:mod:`mlops_kit.registry._formats`): a load trusts
only the types recorded at registration and refuses a file that asks for any other. The
hash check guarantees the bytes are the ones registered; the trusted-type check is what
makes them safe to load. Pickle artifacts (an explicit opt-in, or written by older
versions of the kit) load only with ``trusted=True`` and a warning, because unpickling
runs whatever code the file names.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, sha256_bytes
from ..errors import IntegrityError, NotFoundError, RegistryError
from ._formats import DEFAULT_FORMAT, UnsafeArtifactWarning, dump, load_pickle, load_skops, sniff_format

__all__ = ["ArtifactStore"]


class ArtifactStore:
    """Model artifacts (skops, or pickle on opt-in) stored by the sha256 of their bytes under ``root/sha256``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "sha256"

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    @staticmethod
    def serialize(model: Any, fmt: str = DEFAULT_FORMAT) -> bytes:
        """The bytes stored for ``model`` in ``fmt`` (canonical skops bytes by default)."""
        return dump(model, fmt)

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

    def load(self, digest: str, *, fmt: str, trusted_types: Sequence[str] = (), trusted: bool = False,
             where: str = "load") -> Any:
        """Verify the hash, then deserialise.

        ``fmt="skops"``: only ``trusted_types`` may be constructed (``trusted=True`` also
        accepts any other type the file names). ``fmt="pickle"``: refused unless
        ``trusted=True``, and then loaded with an :class:`UnsafeArtifactWarning`.
        """
        data = self.read_verified(digest)
        if fmt == "skops":
            return load_skops(data, None if trusted else list(trusted_types), where=where)
        if fmt != "pickle":
            raise RegistryError(f"{where}: artifact {digest[:12]}... has an unknown recorded format {fmt!r}.",
                                fix="Open the workspace with the kit version that wrote it.", artifact_sha256=digest)
        if not trusted:
            raise RegistryError(f"{where}: artifact {digest[:12]}... is a pickle; unpickling runs any code the file "
                                "names, so it is not loaded by default (nothing was deserialised).",
                                fix="If this registry wrote it and nobody else could, pass trusted=True once and run "
                                    "registry.migrate_artifacts() to rewrite it as skops.",
                                artifact_sha256=digest, artifact_format="pickle")
        if sniff_format(data) != "pickle":
            raise IntegrityError(f"{where}: artifact {digest[:12]}... is recorded as a pickle but its bytes are not "
                                 "a pickle stream; refusing to load it.",
                                 fix="Restore the original artifact or register the model again.")
        warnings.warn(f"{where}: unpickling artifact {digest[:12]}... because trusted=True was passed; a pickle runs "
                      "any code it names while it loads. Migrate it with registry.migrate_artifacts().",
                      UnsafeArtifactWarning, stacklevel=3)
        return load_pickle(data)

    def all_digests(self) -> dict[str, Path]:
        """Every stored artifact file, by name."""
        if not self.root.is_dir():
            return {}
        return {p.name: p for p in self.root.glob("??/*") if p.is_file() and not p.name.startswith(".")}
