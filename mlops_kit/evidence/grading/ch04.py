"""Chapter 4 criteria: the registry's audit chain re-verified, and claims recomputed from it.

Every criterion past C4.1 reads the exported audit chain only after re-verifying it with
the grader's own implementation (``recompute.verify_audit_export``), so an edited export
cannot support any claim.
"""

from __future__ import annotations

import json
from typing import Any

from ..layout import AUDIT_EXPORT
from .base import Grade, GradingContext, MissingEvidence, criterion
from .recompute import verify_audit_export

__all__ = ["grade_audit_chain", "grade_prediction_versions", "grade_separation_of_duties",
           "grade_blocked_then_passed", "grade_tamper_detected", "grade_blast_radius"]

_EXPORT = f"ch04/{AUDIT_EXPORT}"


@criterion("C4.1")
def grade_audit_chain(ctx: GradingContext) -> Grade:
    """``ch04/audit_export.jsonl`` is an unbroken hash chain whose head the manifest recorded.

    Level 4: the chain verifies from the genesis hash and its head equals the manifest's
    ``audit_exports`` entry for this file; 0: missing, broken or head mismatch.
    """
    rel = _EXPORT
    ctx.path(rel)
    report = verify_audit_export(ctx.pack / rel)
    if not report.ok:
        return Grade(0, f"audit chain broken at {report.reason}")
    recorded = (ctx.manifest.get("audit_exports") or {}).get(rel) or {}
    if recorded and recorded.get("hash") != report.head:
        return Grade(0, f"the chain verifies but its head {str(report.head)[:12]}... differs from "
                     f"the manifest's {str(recorded.get('hash'))[:12]}...")
    return Grade(4, f"{report.entries} audit entries re-verified; head {str(report.head)[:12]}...")


def _chain(ctx: GradingContext) -> list[dict[str, Any]]:
    """The verified audit entries (MissingEvidence when absent or broken)."""
    path = ctx.path(_EXPORT)
    report = verify_audit_export(path)
    if not report.ok:
        raise MissingEvidence(f"{_EXPORT} does not verify ({report.reason}); no claim can rest on it")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _deployed_timeline(entries: list[dict[str, Any]], model: str) -> list[tuple[str, int]]:
    """``[(at, version)]``: every move of ``deployed-prod`` for ``model``, from the audit chain."""
    moves = []
    for e in entries:
        p = e["payload"]
        if p.get("name") != model:
            continue
        if e["action"] == "deploy":
            moves.append((e["at"], int(p["version"])))
        elif e["action"] == "rollback":
            moves.append((e["at"], int(p["to_version"])))
    return moves


@criterion("C4.2")
def grade_prediction_versions(ctx: GradingContext) -> Grade:
    """Every row of ``prediction_log.csv`` names the version ``deployed-prod`` held at its time.

    The holder at each instant is rebuilt from the deploy/rollback entries of the verified
    audit chain (and ``alias_history.csv`` must agree with them). Level 4: every row matches
    and the log spans a deployment (two or more versions); 2: every row matches but one
    version only; 0: a mismatch, a disagreement or missing evidence.
    """
    entries = _chain(ctx)
    log = ctx.read_table("ch04/prediction_log.csv")
    history = ctx.read_table("ch04/alias_history.csv")
    if log.empty or not {"at", "model", "model_version"} <= set(log.columns):
        return Grade(0, "prediction_log.csv lacks at/model/model_version rows")
    model = str(log["model"].iloc[0])
    timeline = _deployed_timeline(entries, model)
    stated = [(str(r.at), int(r.to_version)) for r in history.itertuples() if r.alias == "deployed-prod"]
    if stated != timeline:
        return Grade(0, f"alias_history.csv {stated} disagrees with the audit chain's deployments {timeline}")
    from datetime import datetime

    moves = [(datetime.fromisoformat(at), v) for at, v in timeline]
    bad = 0
    for row in log.itertuples():
        at = datetime.fromisoformat(str(row.at))
        held = [v for t, v in moves if t <= at]
        if not held or held[-1] != int(row.model_version):
            bad += 1
    if bad:
        return Grade(0, f"{bad} of {len(log)} logged predictions name a version that was not deployed then")
    versions = sorted(set(int(v) for v in log["model_version"]))
    if len(versions) < 2:
        return Grade(2, f"all {len(log)} predictions match, but the log covers only version {versions}")
    return Grade(4, f"all {len(log)} predictions match the deployed version at their time (versions {versions})")


@criterion("C4.3")
def grade_separation_of_duties(ctx: GradingContext) -> Grade:
    """The version promoted to ``approved-prod`` last was approved by distinct non-authors in two roles.

    From the verified chain: the author is the actor of the version's ``register_model``
    entry; the approvals are its ``approve`` entries before the promotion. Level 4: two or
    more distinct non-author approvers covering two or more roles and no approval by the
    author; 0 otherwise.
    """
    entries = _chain(ctx)
    promotions = [e for e in entries if e["action"] == "promote" and e["payload"].get("alias") == "approved-prod"]
    if not promotions:
        return Grade(0, "the audit chain records no promotion to approved-prod")
    last = promotions[-1]
    key = (last["payload"]["name"], last["payload"]["version"])
    author = next((e["actor"] for e in entries if e["action"] == "register_model"
                   and (e["payload"]["name"], e["payload"]["version"]) == key), None)
    approvals = [e for e in entries if e["action"] == "approve" and e["seq"] < last["seq"]
                 and (e["payload"]["name"], e["payload"]["version"]) == key]
    actors = {e["actor"] for e in approvals}
    roles = {e["payload"]["role"] for e in approvals if e["actor"] != author}
    if author is None or author in actors:
        return Grade(0, f"{key[0]} v{key[1]}: author {author!r} is unknown or approved their own version")
    if len(actors) < 2 or len(roles) < 2:
        return Grade(0, f"{key[0]} v{key[1]}: approvals by {sorted(actors)} in roles {sorted(roles)}")
    return Grade(4, f"{key[0]} v{key[1]} (author {author}) approved by {sorted(actors)} in roles {sorted(roles)}")


@criterion("C4.4")
def grade_blocked_then_passed(ctx: GradingContext) -> Grade:
    """A promotion to ``approved-prod`` was blocked by policy with its reasons, then another passed.

    The chain must hold a ``promotion_blocked`` entry for ``approved-prod`` with failing
    attestations, ``governance.json`` must give a non-empty reason for exactly those
    policies, and a later ``promote`` to ``approved-prod`` of the same model must exist.
    Level 4: all three; 2: blocked with reasons but nothing passed later; 0 otherwise.
    """
    entries = _chain(ctx)
    claim = ctx.read_json("ch04/governance.json")
    blocked = [e for e in entries if e["action"] == "promotion_blocked"
               and e["payload"].get("alias") == "approved-prod"
               and e["payload"].get("version") == claim.get("blocked_version")]
    if not blocked:
        return Grade(0, f"no blocked approved-prod promotion of v{claim.get('blocked_version')} in the audit chain")
    entry = blocked[-1]
    failing = sorted(a["policy_id"] for a in entry["payload"]["attestations"] if a["verdict"] == "fail")
    reasons = {r.get("policy_id"): r.get("reason") for r in claim.get("blocked_reasons") or []}
    if not failing or sorted(reasons) != failing or not all(isinstance(v, str) and v.strip() for v in reasons.values()):
        return Grade(0, f"failing policies {failing} vs reasons given for {sorted(reasons)}")
    later = [e for e in entries if e["action"] == "promote" and e["seq"] > entry["seq"]
             and e["payload"].get("alias") == "approved-prod" and e["payload"]["name"] == entry["payload"]["name"]]
    if not later:
        return Grade(2, f"v{entry['payload']['version']} blocked by {failing}, but no version passed afterwards")
    return Grade(4, f"v{entry['payload']['version']} blocked by {failing} with reasons; "
                 f"v{later[0]['payload']['version']} passed afterwards")


@criterion("C4.5")
def grade_tamper_detected(ctx: GradingContext) -> Grade:
    """The hand-edited copy of the audit chain breaks exactly at the entry the chapter edited.

    ``audit_tampered.jsonl`` is re-verified independently: it must fail first at
    ``audit_tamper.json``'s ``edited_seq``, the chapter's own ``verify()`` must have named the
    same entry, and every line before it must equal the honest export. Level 4 or 0.
    """
    honest = _chain(ctx)
    claim = ctx.read_json("ch04/audit_tamper.json")
    tampered_path = ctx.path("ch04/audit_tampered.jsonl")
    report = verify_audit_export(tampered_path)
    seq = claim.get("edited_seq")
    stated = (claim.get("verification") or {}).get("first_broken_seq")
    if report.ok or report.broken_at != seq or stated != seq:
        return Grade(0, f"re-verification breaks at {report.broken_at}, the chapter stated {stated}, "
                     f"the edit was at {seq}")
    lines = [json.loads(x) for x in tampered_path.read_text(encoding="utf-8").splitlines() if x.strip()]
    if lines[:seq - 1] != honest[:seq - 1] or lines[seq - 1]["payload"] == honest[seq - 1]["payload"]:
        return Grade(0, "the tampered copy differs from the honest chain elsewhere than the edited entry")
    return Grade(4, f"the edited entry {seq} is the first one that fails re-verification ({report.reason})")


@criterion("C4.6")
def grade_blast_radius(ctx: GradingContext) -> Grade:
    """The stated blast radius equals the readers of the view recomputed from the lineage documents.

    Level 4: ``blast_radius.json``'s ``affected`` equals the versions whose lineage reads
    ``view`` at ``view_version`` in ``lineage_documents.json``, and ``retrain`` is a subset of
    them; 0 otherwise.
    """
    radius = ctx.read_json("ch04/blast_radius.json")
    docs = ctx.read_json("ch04/lineage_documents.json")
    try:
        view, version = radius["view"], radius["view_version"]
        readers = sorted((d["model"]["name"], d["model"]["version"]) for d in docs
                         if any(f["view"] == view and f["version"] == version for f in d["lineage"]["features"]))
        stated = sorted((r["model"], r["version"]) for r in radius["affected"])
        retrain = {(r["model"], r["version"]) for r in radius["retrain"]}
    except (KeyError, TypeError) as exc:
        raise MissingEvidence(f"blast_radius.json or lineage_documents.json lacks {exc}") from exc
    if stated != readers:
        return Grade(0, f"stated {stated}, recomputed {readers}")
    if not retrain <= set(readers):
        return Grade(0, f"retrain list {sorted(retrain)} names versions outside the blast radius")
    return Grade(4, f"{len(readers)} of {len(docs)} versions read {view} v{version}; {len(retrain)} to retrain")
