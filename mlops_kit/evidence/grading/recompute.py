"""Independent re-computations the grader uses instead of trusting a chapter's stated results.

These deliberately share no code with the kit's own implementations (``mlops_kit.quality``,
``mlops_kit.registry``): a bug or an edit there must not be able to make the grader agree.

Audit-chain export format (the contract ``registry.audit.export(path)`` writes)
-------------------------------------------------------------------------------
UTF-8 JSON lines, one entry per line, in chain order. Each entry is an object with the
fields ``seq`` (1, 2, 3, ...), ``at``, ``actor``, ``action``, ``payload``, ``prev_hash`` and
``hash``, where ``prev_hash`` is the previous entry's ``hash`` (64 zeros for the first) and
``hash = sha256(canonical JSON of the entry without its "hash" field)``; canonical JSON is
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ValidationError

__all__ = ["GENESIS", "ChainReport", "psi_from_samples", "verify_audit_export"]

GENESIS = "0" * 64


def psi_from_samples(reference: Any, current: Any, *, bins: int = 10,
                     floor: float = 1e-4) -> tuple[float, int]:
    """Population stability index, as the kit defines it; returns ``(psi, n_bins)``.

    Interior edges are the reference quantiles at 1/bins ... (bins-1)/bins (numpy's linear
    method), duplicates removed; bins are (-inf, e1), [e1, e2), ..., [e_last, +inf); a bin
    share of 0 becomes ``floor``; PSI = sum((cur - ref) * ln(cur / ref)).
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref.size == 0 or cur.size == 0:
        raise ValidationError("psi_from_samples: a sample is empty after dropping NaN.",
                              fix="Save non-empty reference and current samples.")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValidationError(f"psi_from_samples: bins must be an integer >= 2, got {bins!r}.",
                              fix="Use bins=10.")
    edges = sorted(set(float(np.quantile(ref, k / bins)) for k in range(1, bins)))

    def shares(values: np.ndarray) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for value in values.tolist():  # a plain loop: the independent reference
            position = 0
            while position < len(edges) and value >= edges[position]:
                position += 1
            counts[position] += 1
        return [c / values.size if c else floor for c in counts]

    ref_s, cur_s = shares(ref), shares(cur)
    total = sum((c - r) * math.log(c / r) for r, c in zip(ref_s, cur_s))
    return total, len(edges) + 1


@dataclass(frozen=True, kw_only=True)
class ChainReport:
    """Result of verifying an audit export: ``ok``, entry count, head hash, first problem."""

    ok: bool
    entries: int
    head: str | None
    broken_at: int | None = None
    reason: str = ""


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def verify_audit_export(path: str | os.PathLike[str]) -> ChainReport:
    """Re-verify a JSON-lines audit export from its bytes alone (see the module docstring).

    ``broken_at`` is the 1-based line of the first entry that fails.
    """
    file = Path(path)
    if not file.is_file():
        return ChainReport(ok=False, entries=0, head=None, broken_at=None,
                           reason=f"{file.name} is missing")
    prev, count = GENESIS, 0
    lines = file.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        def broken(reason: str, number: int = number) -> ChainReport:
            return ChainReport(ok=False, entries=len(lines), head=None, broken_at=number,
                               reason=f"line {number}: {reason}")
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return broken("not valid JSON")
        if not isinstance(entry, dict) or not {"seq", "prev_hash", "hash"} <= set(entry):
            return broken("not an audit entry (needs seq, prev_hash and hash)")
        if entry["seq"] != number:
            return broken(f"seq is {entry['seq']!r}, expected {number} (entry deleted, inserted "
                          "or reordered)")
        if entry["prev_hash"] != prev:
            return broken("prev_hash does not link to the previous entry (entry deleted, "
                          "inserted or reordered)")
        body = {k: v for k, v in entry.items() if k != "hash"}
        if hashlib.sha256(_canonical(body)).hexdigest() != entry["hash"]:
            return broken("content does not match its hash (entry edited)")
        prev, count = entry["hash"], count + 1
    if count == 0:
        return ChainReport(ok=False, entries=0, head=None, reason=f"{file.name} has no entries")
    return ChainReport(ok=True, entries=count, head=prev)
