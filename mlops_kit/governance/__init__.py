"""Feature governance: catalog, lifecycle, sensitivity classes, access control, privacy helpers."""

from .hook import Governance

__all__ = ["Governance"]
