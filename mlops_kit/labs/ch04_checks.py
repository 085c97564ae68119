"""Chapter 4 lab, verdicts: what the governance and serving checks compare, as plain functions.

Each function returns the keyword arguments of ``rec.check`` (``passed``, ``observed``,
``threshold``, ``detail``, ``look_at``) computed from the registry's state and the records
the run produced, so the notebook's check cells stay short and a test can run the same
verdict on a run whose control was removed (a skipped gate, an author's approval, a
verification that sees nothing, a service that does not resolve the alias).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .ch04_ops import holder_at

__all__ = ["policy_blocks_check", "separation_check", "tamper_check", "versioned_log_check"]


def policy_blocks_check(registry: Any, name: str, *, blocked: list[dict[str, Any]], blocked_version: int,
                        passed_version: int) -> dict[str, Any]:
    """``blocked_version``'s promotion was refused with a reason per failing policy (it stays in
    staging) and ``passed_version`` reached ``approved``."""
    states = {v: registry.get_model_version(name, v).state for v in (blocked_version, passed_version)}
    reasons_ok = bool(blocked) and all(b.get("verdict") == "fail" and str(b.get("reason", "")).strip()
                                       for b in blocked)
    passed = reasons_ok and states[blocked_version] == "staging" and states[passed_version] == "approved"
    return {"passed": bool(passed), "observed": {"blocked_by": [b.get("policy_id") for b in blocked],
                                                  "states": {f"v{k}": v for k, v in states.items()}},
            "threshold": f"v{blocked_version} blocked with reasons and still in staging, v{passed_version} approved",
            "detail": f"v{blocked_version} was approved by people but blocked by the gate with its reasons; "
                      f"v{passed_version} passed every gate",
            "look_at": "the policies set on 'approved-prod' and the attestations stored on each version"}


def separation_check(approvals: list[dict[str, Any]], *, author: str, attempts: list[dict[str, str]],
                     required_roles: tuple[str, ...]) -> dict[str, Any]:
    """The recorded approvals cover ``required_roles`` with distinct non-authors; every attempt
    by the author and every early promotion was refused."""
    actors = [a["actor"] for a in approvals]
    by_author = [a for a in attempts if a["actor"] == author and a["role"] != "promote"]
    early = [a for a in attempts if a["role"] == "promote"]
    passed = ({a["role"] for a in approvals} == set(required_roles) and len(set(actors)) == len(actors) >= 2
              and author not in actors and by_author and all(a["result"].startswith("refused") for a in by_author)
              and early and all(a["result"].startswith("refused") for a in early))
    return {"passed": bool(passed),
            "observed": {"approvers": sorted(actors), "author": author,
                         "author_attempts": [a["result"].split(":")[0] for a in by_author],
                         "early_promotions": [a["result"].split(":")[0] for a in early]},
            "threshold": f"distinct non-author approvers covering {list(required_roles)}; author and early "
                         "promotion refused",
            "detail": "the version is approved by distinct non-author principals in every required role; the "
                      "author's approval and the early promotion were refused",
            "look_at": "ApprovalRule.check_approver and registry.promote's approval check"}


def tamper_check(honest: Any, tamper: dict[str, Any], *, seq: int) -> dict[str, Any]:
    """The honest chain verifies; the hand-edited copy fails first at the edited entry ``seq``,
    and the schema's guard refused the plain edit."""
    verification = tamper["verification"]
    passed = (honest.ok and not verification["ok"] and verification["first_broken_seq"] == seq
              and tamper["guard"] != "none")
    return {"passed": bool(passed),
            "observed": {"honest_ok": honest.ok, "first_broken_seq": verification["first_broken_seq"],
                         "guard_refused_plain_update": tamper["guard"] != "none"},
            "threshold": {"first_broken_seq": seq},
            "detail": "verify() on the hand-edited copy names exactly the edited entry as the first broken one",
            "look_at": "AuditLog.verify and the hash chain (prev_hash, hash)"}


def versioned_log_check(registry: Any, name: str, log: pd.DataFrame, *, alias: str = "deployed-prod",
                        versions: set[int]) -> dict[str, Any]:
    """Each logged prediction names the version ``alias`` held at its instant; the log spans ``versions``."""
    mismatch = sum(holder_at(registry, name, alias, row.at) != row.model_version for row in log.itertuples())
    seen = sorted(int(v) for v in set(log["model_version"]))
    return {"passed": bool(mismatch == 0 and set(seen) == set(versions)),
            "observed": {"mismatches": int(mismatch), "versions": seen},
            "threshold": {"mismatches": 0, "versions": sorted(versions)},
            "detail": f"each logged version equals the version {alias} held at that instant",
            "look_at": "ops.serve resolves the alias per request"}
