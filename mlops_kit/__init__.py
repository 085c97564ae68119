"""mlops_kit: a small, real MLOps platform for the practicum workbooks.

Sub-packages: ``datasets`` (seeded data world), ``features`` (feature store), ``quality``
(checks, drift, SLOs), ``registry`` (governed model registry), ``rollout`` (progressive
delivery simulator), ``evidence`` (recorder, build, grader). Import what you need from each;
importing the kit has no side effects. ``Workspace(root)`` is the front door: the on-disk
layout (``mlops_kit.workspace``) plus ``.features`` and ``.registry``.
"""

from ._front import Workspace
from ._time import FixedClock, SimulatedClock
from .errors import MlopsKitError

__version__ = "0.1.0"

__all__ = ["FixedClock", "MlopsKitError", "SimulatedClock", "Workspace", "__version__"]
