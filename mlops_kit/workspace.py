"""``Workspace(root)``: the front door, and the owner of the on-disk layout.

A workspace is one folder holding everything a run produces. Two workspaces never share
state. The layout (sub-packages ask the workspace for their paths, never build them)::

    root/
      offline/<view>/v<version>/date=YYYY-MM-DD/*.parquet   offline feature rows
      features.sqlite        feature definitions, watermarks, catalog, lifecycle, access log
      online.sqlite          the default online store
      registry.sqlite        model registry and its audit log (hash chain)
      artifacts/sha256/ab/abcdef...                        content-addressed artifacts
      snapshots/             dataset snapshots (content-addressed Parquet)
      tmp/                   scratch space for atomic writes (same filesystem)
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from .features import FeatureStore
    from .registry import ModelRegistry

__all__ = ["Workspace"]


class Workspace:
    """A self-contained folder for one learner's (or one test's) platform state.

    Parameters
    ----------
    root:
        The folder; created on first use. Must not be an existing regular file.

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace(tempfile.mkdtemp())
    >>> ws.offline_dir.name
    'offline'
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        if root is None or str(root) == "":
            raise ValidationError(
                "Workspace(root): root is empty.",
                fix="Pass a folder path, e.g. Workspace('workspace/ch2').",
            )
        path = Path(root).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ValidationError(
                f"Workspace(root): {str(path)!r} exists and is not a folder.",
                fix="Pass a folder path (it is created if missing).",
            )
        path.mkdir(parents=True, exist_ok=True)
        self.root = path

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # -- layout -----------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def offline_dir(self) -> Path:
        return self._dir("offline")

    @property
    def artifacts_dir(self) -> Path:
        return self._dir("artifacts")

    @property
    def snapshots_dir(self) -> Path:
        return self._dir("snapshots")

    @property
    def tmp_dir(self) -> Path:
        return self._dir("tmp")

    @property
    def features_db(self) -> Path:
        return self.root / "features.sqlite"

    @property
    def online_db(self) -> Path:
        return self.root / "online.sqlite"

    @property
    def registry_db(self) -> Path:
        return self.root / "registry.sqlite"

    # -- components (created lazily; importing this module has no side effects) ------
    @cached_property
    def features(self) -> "FeatureStore":
        from .features import FeatureStore

        return FeatureStore(self)

    @cached_property
    def registry(self) -> "ModelRegistry":
        from .registry import ModelRegistry

        return ModelRegistry(self)
