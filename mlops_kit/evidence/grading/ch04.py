"""Chapter 4 criteria: the registry's audit chain, re-verified without the registry's code."""

from __future__ import annotations

from ..layout import AUDIT_EXPORT
from .base import Grade, GradingContext, criterion
from .recompute import verify_audit_export

__all__ = ["grade_audit_chain"]


@criterion("C4.1")
def grade_audit_chain(ctx: GradingContext) -> Grade:
    """``ch04/audit_export.jsonl`` is an unbroken hash chain whose head the manifest recorded.

    Level 4: the chain verifies from the genesis hash and its head equals the manifest's
    ``audit_exports`` entry for this file; 0: missing, broken or head mismatch.
    """
    rel = f"ch04/{AUDIT_EXPORT}"
    ctx.path(rel)
    report = verify_audit_export(ctx.pack / rel)
    if not report.ok:
        return Grade(0, f"audit chain broken at {report.reason}")
    recorded = (ctx.manifest.get("audit_exports") or {}).get(rel) or {}
    if recorded and recorded.get("hash") != report.head:
        return Grade(0, f"the chain verifies but its head {str(report.head)[:12]}... differs from "
                     f"the manifest's {str(recorded.get('hash'))[:12]}...")
    return Grade(4, f"{report.entries} audit entries re-verified; head {str(report.head)[:12]}...")
