"""Chapter 3 criteria that recompute results from the saved samples."""

from __future__ import annotations

import math

from .base import Grade, GradingContext, MissingEvidence, criterion
from .recompute import psi_from_samples

__all__ = ["grade_psi_recomputed"]


@criterion("C3.1")
def grade_psi_recomputed(ctx: GradingContext) -> Grade:
    """Recompute every PSI stated in ``ch03/drift_psi.json`` from the saved samples.

    ``drift_psi.json`` holds ``{"reference": "<file>", "current": "<file>", "features":
    [{"column": str, "psi": float, "bins": int}, ...]}``; the two files are tables in
    ``ch03/`` with those columns. Level 4: every stated PSI is within 0.0005 of the
    recomputed one (rounding allowed); 2: within 10 %; 0: otherwise or missing.
    """
    claim = ctx.read_json("ch03/drift_psi.json")
    try:
        ref = ctx.read_table(f"ch03/{claim['reference']}")
        cur = ctx.read_table(f"ch03/{claim['current']}")
        features = list(claim["features"])
    except (KeyError, TypeError) as exc:
        raise MissingEvidence(f"drift_psi.json lacks {exc}") from exc
    if not features:
        return Grade(0, "drift_psi.json states no PSI")
    worst, notes = 4, []
    for item in features:
        column, stated = item.get("column"), item.get("psi")
        if column not in ref.columns or column not in cur.columns:
            return Grade(0, f"column {column!r} is not in both saved samples")
        if not isinstance(stated, (int, float)) or isinstance(stated, bool) or not math.isfinite(stated):
            return Grade(0, f"stated PSI for {column!r} is not a number: {stated!r}")
        value, _ = psi_from_samples(ref[column], cur[column], bins=int(item.get("bins", 10)))
        gap = abs(value - stated)
        level = 4 if gap <= 5e-4 else 2 if gap <= 0.1 * max(abs(value), 1e-9) else 0
        worst = min(worst, level)
        notes.append(f"{column}: stated {stated:.4f}, recomputed {value:.4f}")
    return Grade(worst, "; ".join(notes))
