"""``mlops_kit.Workspace``: the workspace layout plus its feature store and model registry.

The layout class (``mlops_kit.workspace.Workspace``) is the bottom layer of the import graph:
the feature store, governance and the registry all take one. The accessors that build those
components from a workspace therefore live here, one layer above them, so that the layout
never imports what is built on it (see the ``mlops_kit.workspace`` docstring).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from . import workspace as _layout

if TYPE_CHECKING:  # pragma: no cover
    from .features import FeatureStore
    from .registry import ModelRegistry

__all__ = ["Workspace"]


class Workspace(_layout.Workspace):
    """A self-contained folder for one learner's (or one test's) platform state.

    The layout and paths of ``mlops_kit.workspace.Workspace``, plus its components, created
    on first use (importing the kit has no side effects and loads neither component).

    Parameters
    ----------
    root:
        The folder; created on first use. Must not be an existing regular file.

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace(tempfile.mkdtemp())
    >>> type(ws.registry).__name__, ws.registry is ws.registry
    ('ModelRegistry', True)
    """

    @cached_property
    def features(self) -> FeatureStore:
        """The workspace's feature store (``FeatureStore(self)``), one per workspace object."""
        from .features import FeatureStore

        return FeatureStore(self)

    @cached_property
    def registry(self) -> ModelRegistry:
        """The workspace's model registry (``ModelRegistry(self)``), one per workspace object."""
        from .registry import ModelRegistry

        return ModelRegistry(self)
