"""Artifact formats: ``skops`` (the safe default) and ``pickle`` (explicit opt-in only).

A skops file is a zip archive holding a JSON schema of the object plus ``.npy`` members for
numeric arrays. Loading it constructs only the types it is told to trust, so a file that
asks for anything else is refused before a single object is built. Pickle files run code
while they load; the registry reads them only when the caller passes ``trusted=True``.

``skops.io.dumps`` is not byte-stable: member names and ``__id__`` fields come from
``id(obj)`` and every member carries the current time. :func:`dump_skops` rewrites the
archive canonically (ids renumbered in document order, members named by that order, fixed
timestamps and permissions, stored uncompressed) so equal models give equal bytes, and
therefore equal content addresses, in any process.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import skops.io as sio

from ..errors import IntegrityError, RegistryError, ValidationError

__all__ = ["FORMATS", "DEFAULT_FORMAT", "UnsafeArtifactWarning", "dump", "dump_skops", "untrusted_types",
           "sniff_format", "load_skops", "load_pickle", "check_format"]

FORMATS = ("skops", "pickle")
DEFAULT_FORMAT = "skops"
_SCHEMA = "schema.json"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_REVIEW = ("Review them with skops.io.get_untrusted_types(data=open(path, 'rb').read()) and register the model "
           "again if they are expected; never load a file whose types you did not record.")


class UnsafeArtifactWarning(UserWarning):
    """A pickle artifact was written or loaded: unpickling runs whatever code the file names."""


def _renumber(state: Any) -> dict[str, str]:
    """Rewrite ``__id__`` and ``file`` fields in document order; return ``{old member: new member}``."""
    ids: dict[Any, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "__id__" in node:
                node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
            member = node.get("file")
            if "__loader__" in node and isinstance(member, str):
                node["file"] = files.setdefault(member, f"{len(files) + 1:06d}{PurePosixPath(member).suffix}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(state)
    return files


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def dump_skops(model: Any) -> bytes:
    """The canonical skops bytes of ``model`` (equal models give equal bytes)."""
    raw = sio.dumps(model)
    with zipfile.ZipFile(io.BytesIO(raw)) as src:
        state = json.loads(src.read(_SCHEMA))
        renamed = _renumber(state)
        unreferenced = sorted(set(src.namelist()) - set(renamed) - {_SCHEMA})
        if unreferenced:  # a skops change this canonical form does not know about
            raise RegistryError(f"the skops archive holds members its schema does not reference: {unreferenced}.",
                                fix="Pin the skops version the kit was tested with (see pyproject.toml).")
        members = {new: src.read(old) for old, new in renamed.items()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in sorted(members):
            dst.writestr(_member(name), members[name])
        dst.writestr(_member(_SCHEMA), json.dumps(state, indent=2).encode("utf-8"))
    return out.getvalue()


def dump(model: Any, fmt: str) -> bytes:
    """Serialise ``model`` in ``fmt`` (``"skops"`` or ``"pickle"``)."""
    if fmt == "pickle":
        try:
            return pickle.dumps(model, protocol=5)
        except Exception as exc:  # pickling errors come in many types
            raise ValidationError(f"the model ({type(model).__name__}) cannot be pickled: {exc}.",
                                  fix="Register a picklable fitted estimator (e.g. a scikit-learn model).") from exc
    try:
        return dump_skops(model)
    except RegistryError:
        raise
    except Exception as exc:  # skops refuses unsupported types with several exception types
        raise ValidationError(f"the model ({type(model).__name__}) cannot be stored with skops: {exc}.",
                              fix="Keep models to estimators, arrays, frames and plain attributes; or, only for "
                                  "a model you will load yourself, register it with format='pickle'.") from exc


def sniff_format(data: bytes) -> str:
    """``"skops"`` for a zip archive with a skops schema, ``"pickle"`` for a pickle stream, else ``"unknown"``."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return "skops" if _SCHEMA in archive.namelist() else "unknown"
        except zipfile.BadZipFile:
            return "unknown"
    return "pickle" if data[:1] == b"\x80" else "unknown"


def untrusted_types(data: bytes) -> list[str]:
    """The types (and functions) in a skops file that skops does not trust by default, sorted."""
    try:
        return sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:  # a damaged schema: never try to load it
        raise IntegrityError(f"the skops artifact cannot be audited ({type(exc).__name__}: {exc}); refusing to "
                             "load it.", fix="Restore the original artifact or register the model again.") from exc


def load_skops(data: bytes, trusted_types: Sequence[str] | None, *, where: str) -> Any:
    """Load skops ``data`` trusting exactly ``trusted_types`` (``None``: every type the file names).

    Refuses, before constructing anything, a file that is not a skops archive and a file
    that names a type outside ``trusted_types``.
    """
    found = sniff_format(data)
    if found != "skops":
        raise IntegrityError(f"{where}: the artifact is recorded as skops but its bytes are "
                             f"{'a pickle stream' if found == 'pickle' else 'not a skops archive'}; refusing to "
                             "load it (nothing was deserialised).",
                             fix="Treat the file as hostile: restore the artifact written at registration or "
                                 "register the model again.", found_format=found)
    present = untrusted_types(data)
    allowed = present if trusted_types is None else sorted(trusted_types)
    extra = sorted(set(present) - set(allowed))
    if extra:
        raise RegistryError(f"{where}: the artifact asks for types that were not trusted at registration: "
                            f"{', '.join(extra)}; refusing to load it (nothing was constructed).",
                            fix=_REVIEW, untrusted_types=extra, recorded_types=list(allowed))
    try:
        return sio.loads(data, trusted=[t for t in present if t in set(allowed)])
    except Exception as exc:  # a schema that audits clean but cannot be built
        raise IntegrityError(f"{where}: the skops artifact could not be loaded ({type(exc).__name__}: {exc}).",
                             fix="Restore the original artifact or register the model again.") from exc


def load_pickle(data: bytes) -> Any:
    """Unpickle ``data`` (the caller has checked its hash and that the caller trusts it)."""
    return pickle.loads(data)


def check_format(fmt: Any, *, where: str) -> str:
    if fmt not in FORMATS:
        raise ValidationError(f"{where}: format must be one of {FORMATS}, got {fmt!r}.",
                              fix="Leave format at its default 'skops'; use 'pickle' only for a model skops "
                                  "cannot store and that only you will load.")
    return str(fmt)
