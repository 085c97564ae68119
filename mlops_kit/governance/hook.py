"""Read-time governance hook for the feature store (catalog, lifecycle, access control).

The feature store calls ``Governance.check_read`` before every offline or online read.
This module is the single place that decides whether a read may happen (lifecycle state,
sensitivity and grants), warns on deprecated features, counts usage and logs reads of
sensitive or restricted features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from ..workspace import Workspace

__all__ = ["Governance"]

_CHANNELS = ("offline", "online")


class Governance:
    """Decides whether a read of feature views may proceed (interface; filled in by the catalog)."""

    def __init__(self, workspace: "Workspace", *, clock: Any = None) -> None:
        self.workspace = workspace
        self.clock = clock

    def check_read(
        self,
        views: Sequence[Any],
        *,
        principal: str | None,
        purpose: str | None,
        channel: str,
    ) -> None:
        """Raise if the read is not allowed; warn, count and log otherwise."""
        if channel not in _CHANNELS:
            raise ValidationError(f"check_read: channel must be one of {_CHANNELS}, got {channel!r}.")
