"""Feature governance: catalog, lifecycle, sensitivity classes, access control, privacy helpers.

``Governance(workspace, clock=...)`` keeps the catalog (owner, description, tags, consumers,
usage counts), the lifecycle (``active -> deprecated -> retired`` through ``TRANSITIONS``),
principals, roles and grants, and the read log, in the workspace's ``features.sqlite``.
The feature store calls ``Governance.check_read`` before every read. The privacy helpers
(``salted_hash``, ``bucketize``, ``suppress_rare``, ``apply_retention``) are plain functions.
"""

from ._common import SENSITIVITIES
from .catalog import CONSUMER_KINDS, CatalogEntry
from .hook import CHANNELS, Governance
from .lifecycle import STATES, TRANSITIONS
from .privacy import RetentionResult, apply_retention, bucketize, salted_hash, suppress_rare

__all__ = [
    "Governance", "CatalogEntry", "TRANSITIONS", "STATES", "SENSITIVITIES", "CHANNELS", "CONSUMER_KINDS",
    "salted_hash", "bucketize", "suppress_rare", "apply_retention", "RetentionResult",
]
