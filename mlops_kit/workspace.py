"""The workspace layout: one folder, and the paths of everything in it.

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

Layering (``tests/test_import_graph.py`` keeps the import graph free of cycles)::

    evidence, labs, cli                       on top: may import anything below
    mlops_kit.Workspace (_front)              adds the .features / .registry accessors
    features, governance, registry, quality,  the platform: import the layout, never the top
    datasets, aggregates, rollout
    workspace, _io, _time, _sqlite, errors    the bottom: import nothing above them

This module is the bottom layer: ``Workspace`` here knows the layout and paths only, so the
feature store, governance and the registry can take one without an import cycle. The front
door for users and notebooks is ``mlops_kit.Workspace`` (a subclass defined in
``mlops_kit._front``), which adds ``Workspace(root).features`` (a ``FeatureStore``) and
``Workspace(root).registry`` (a ``ModelRegistry``); ``Recorder.workspace()`` returns one.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ValidationError

__all__ = ["Workspace"]


class Workspace:
    """A self-contained folder for one learner's (or one test's) platform state: its layout.

    ``mlops_kit.Workspace`` is this class plus the ``features`` and ``registry`` accessors.

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

    def __getattr__(self, name: str) -> object:
        if name in _FRONT_ONLY:
            raise AttributeError(
                f"{type(self).__module__}.Workspace holds the layout only and has no {name!r}. "
                f"Fix: use mlops_kit.Workspace(root).{name} (or {_FRONT_ONLY[name]}(workspace))."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_FRONT_ONLY = {"features": "FeatureStore", "registry": "ModelRegistry"}
