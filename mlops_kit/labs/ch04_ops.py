"""Chapter 4 lab: operations on the registry — contract, blast radius, gates, serving log, tamper.

Plain functions the notebook (and its widget) call; each returns data or a small DataFrame.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from .._time import FixedClock
from ..datasets import generate_world
from ..errors import ApprovalError, ExerciseNotDoneError, NotFoundError, ValidationError
from ..registry import (Approval, ApprovalRule, ModelRegistry, PolicyContext, PolicyResult, alias_spans)
from ..registry.artifacts import ArtifactStore
from ..workspace import Workspace
from .ch04 import LabData, world_scenario

__all__ = [
    "upstream_payload", "score_impact", "VerdictGate", "gate_cases", "check_gate_function",
    "approval_cases", "check_approval_rule", "gate_outcomes", "lineage_documents", "blast_radius", "serve",
    "alias_history_frame", "holder_at", "tamper_audit_copy", "tamper_artifact",
]

_LIVE_ALIASES = ("candidate", "staging", "approved-prod", "deployed-prod")


def upstream_payload(data: LabData, *, seed: int, scale: float = 1.0, change: str = "retype",
                     field: str = "merchant_category") -> pd.DataFrame:
    """The serving rows as the upstream producer sends them after a schema change.

    The same world (``world_scenario(scale)``) is generated with ``schema_change=change, schema_change_field=field``
    and its transactions replace ``field`` in ``data.serving`` (joined on ``transaction_id``).
    """
    scenario = replace(world_scenario(scale), schema_change=change, schema_change_field=field)
    txns = generate_world(scenario, seed=seed).transactions
    new_field = f"{field}_v2" if change == "rename" else field
    if new_field not in txns.columns:
        raise ValidationError(f"upstream_payload: the changed world has no column {new_field!r}.",
                              fix="Use change='retype' or 'rename' and a field from SCHEMA_CHANGE_FIELDS.")
    changed = txns[["transaction_id", new_field]].drop_duplicates("transaction_id")
    out = data.serving.drop(columns=[field]).merge(changed, on="transaction_id", how="left")
    if len(out) != len(data.serving):
        raise ValidationError("upstream_payload: the join changed the row count.",
                              fix="Generate both worlds with the same seed and scale.")
    return out


def score_impact(model: Any, honest: pd.DataFrame, changed: pd.DataFrame, *,
                 moved_by: float = 0.10) -> dict[str, Any]:
    """What the schema change does to ``model`` when nothing checks the contract.

    ``relative`` is ``|after - before| / before`` per row: how far the score a request receives is
    from the score the reviewed model gives it. ``share_moved`` is the share of requests moved by
    more than ``moved_by``; ``median_relative_change`` is the median of ``relative``. The median
    is not a stable alarm across worlds: when the most common categories carry little weight it
    stays under 5 % while a fifth of the requests move by more than 10 %. The AUC
    before and after is reported too; it can move either way by a noise-level amount when other
    inputs carry what the broken column said, so it is no alarm on its own.
    """
    if isinstance(moved_by, bool) or not isinstance(moved_by, (int, float)) or not 0 < moved_by < 10:
        raise ValidationError(f"score_impact: moved_by must be a relative change in (0, 10), got {moved_by!r}.",
                              fix="Pass e.g. moved_by=0.10 (10 %).")
    labels = honest["is_fraud"].astype(int).to_numpy()
    before = model.predict(honest)
    try:
        after = model.predict(changed)
    except Exception as exc:  # a loud failure is also an outcome worth recording
        return {"error": f"{type(exc).__name__}: {exc}", "silent": False}
    relative = np.abs(after - before) / np.maximum(before, 1e-12)
    return {"auc_before": float(roc_auc_score(labels, before)), "auc_after": float(roc_auc_score(labels, after)),
            "rows": len(labels), "rows_changed": int((np.abs(after - before) > 1e-9).sum()),
            "mean_abs_score_change": float(np.abs(after - before).mean()),
            "median_relative_change": float(np.median(relative)), "moved_by": float(moved_by),
            "share_moved": float((relative > moved_by).mean()), "silent": True}


# -- policy as code ---------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class VerdictGate:
    """A promotion gate around ``verdict(candidate, production, same_eval_set, minimum, min_gain)``.

    ``verdict`` returns ``(passed, reason)``; ``production`` is ``None`` when nothing is deployed.
    """

    verdict: Callable[..., tuple[bool, str]]
    minimum: float
    min_gain: float
    metric: str = "auc"

    def __post_init__(self) -> None:
        if not callable(self.verdict):
            raise ValidationError("VerdictGate: verdict must be a function.", fix="Pass the exercise's gate function.")
        for name in ("minimum", "min_gain"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValidationError(f"VerdictGate: {name} must be a finite number, got {value!r}.",
                                      fix=f"Pass e.g. {name}=0.01.")

    @property
    def policy_id(self) -> str:
        return f"gate:{self.metric}"

    def evaluate(self, context: PolicyContext) -> PolicyResult:
        cand, prod = context.candidate, context.production
        value = cand.metadata.metrics.get(self.metric)
        base = None if prod is None or prod.version == cand.version else prod.metadata.metrics.get(self.metric)
        same = prod is None or cand.metadata.eval_set_id == prod.metadata.eval_set_id
        passed, reason = self.verdict(value, base, same, minimum=self.minimum, min_gain=self.min_gain)
        return PolicyResult(policy_id=self.policy_id,
                            inputs={"metric": self.metric, "candidate_version": cand.version,
                                    "production_version": None if prod is None else prod.version,
                                    "same_eval_set": same},
                            observed={"candidate": value, "production": base,
                                      "gain": None if value is None or base is None else round(value - base, 6)},
                            threshold={"minimum": self.minimum, "min_gain": self.min_gain},
                            passed=bool(passed), reason=str(reason))


#: (candidate, production, same_eval_set, minimum, min_gain) -> expected verdict, the rule that decides
#: and why, worked out by hand
_GATE_CASES = (
    ((0.80, None, True, 0.75, 0.005), True, "minimum", "no production: the minimum alone decides"),
    ((0.75, None, True, 0.75, 0.005), True, "minimum", "exactly the minimum is enough"),
    ((0.70, None, True, 0.75, 0.005), False, "minimum", "below the minimum"),
    ((0.80, 0.79, True, 0.75, 0.005), True, "gain", "gain 0.01 >= 0.005"),
    ((0.80, 0.798, True, 0.75, 0.005), False, "gain", "gain 0.002 < 0.005"),
    ((0.78, 0.80, True, 0.75, 0.005), False, "gain", "worse than production"),
    ((0.90, 0.80, False, 0.75, 0.005), False, "eval-set", "different evaluation sets are not comparable"),
    ((None, 0.80, True, 0.75, 0.005), False, "recorded", "metric not recorded"),
    ((None, None, True, 0.75, 0.005), False, "recorded", "metric not recorded, nothing in production"),
    ((0.74, 0.60, True, 0.75, 0.005), False, "minimum", "a large gain does not excuse missing the minimum"),
)


def gate_cases() -> pd.DataFrame:
    """The hand-worked cases the gate exercise is checked against."""
    rows = [dict(zip(("candidate", "production", "same_eval_set", "minimum", "min_gain"), args),
                 expected=exp, rule=rule, why=why) for args, exp, rule, why in _GATE_CASES]
    return pd.DataFrame(rows)


def check_gate_function(fn: Callable[..., Any]) -> list[str]:
    """Run ``fn`` on :func:`gate_cases`; return one message per wrong or malformed answer.

    Besides the verdict, the reason must say which rule decided (recorded, minimum, same
    evaluation set, gain): two cases decided by different rules may not get the same reason.
    """
    problems, reasons = [], {}
    for (cand, prod, same, minimum, gain), expected, rule, why in _GATE_CASES:
        try:
            out = fn(cand, prod, same, minimum=minimum, min_gain=gain)
        except ExerciseNotDoneError:
            raise  # the stub itself: say "not done yet", not "10 cases wrong"
        except Exception as exc:
            problems.append(f"candidate={cand}, production={prod}, same_eval_set={same}: raised "
                            f"{type(exc).__name__}: {exc}")
            continue
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], str) and out[1].strip()):
            problems.append(f"candidate={cand}, production={prod}: return (passed, reason), got {out!r}")
        elif bool(out[0]) != expected:
            problems.append(f"candidate={cand}, production={prod}, same_eval_set={same}: got passed={bool(out[0])}, "
                            f"expected {expected} ({why})")
        else:
            reasons.setdefault(out[1].strip(), set()).add(rule)
    problems += [f"the reason {reason!r} is given for cases decided by different rules ({sorted(rules)}): "
                 "say which rule decided" for reason, rules in reasons.items() if len(rules) > 1]
    return problems


#: (actor, role, author of the version, allowed?, why): the approval cases of exercise 4.2
_APPROVAL_CASES = (
    ("raj", "ml-owner", "ana", True, "raj owns the model's quality"),
    ("lee", "risk", "ana", True, "lee is in the team that owns fraud losses"),
    ("ana", "ml-owner", "ana", False, "nobody approves their own version"),
    ("ana", "ml-owner", "omar", False, "ana is an ML engineer: she does not own model quality"),
    ("ana", "risk", "omar", False, "ana is not in the risk team"),
    ("raj", "risk", "ana", False, "raj owns quality, not fraud losses"),
    ("lee", "ml-owner", "ana", False, "lee is in the risk team, not the model's owner"),
    ("deployer", "ml-owner", "ana", False, "the deployer holds no approval role"),
)


def approval_cases() -> pd.DataFrame:
    """The hand-worked approval attempts the approval-rule exercise is checked against."""
    return pd.DataFrame([dict(zip(("actor", "role", "author", "allowed", "why"), c)) for c in _APPROVAL_CASES])


def check_approval_rule(rule: Any, *, author: str = "ana") -> list[str]:
    """Problems with ``rule`` for a production fraud model written by ``author``.

    Each case of :func:`approval_cases` is tried with ``rule.check_approver`` (accepted or
    refused as expected); then the two reviewers' approvals must cover every required role,
    and neither alone may be enough (production needs both sign-offs).
    """
    if not isinstance(rule, ApprovalRule):
        return [f"rule must be an ApprovalRule, got {type(rule).__name__}"]
    problems = []
    at = pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()
    for actor, role, owner, allowed, why in _APPROVAL_CASES:
        try:
            rule.check_approver(actor=actor, role=role, author=owner, existing=[])
            got = True
        except ApprovalError:
            got = False
        if got != allowed:
            problems.append(f"{actor} approving as {role!r} a version by {owner}: "
                            f"{'accepted' if got else 'refused'}, expected {'accepted' if allowed else 'refused'} ({why})")
    made = [Approval(name="m", version=1, actor=a, role=r, note="ok", at=at, audit_seq=0)
            for a, r, owner, allowed, _ in _APPROVAL_CASES if allowed and owner == author]
    if rule.missing_roles(made, author=author):
        problems.append(f"the approvals of {[m.actor for m in made]} leave {rule.missing_roles(made, author=author)} "
                        "uncovered: a required role nobody may hold blocks every release")
    for alone in made:
        if not rule.missing_roles([alone], author=author):
            problems.append(f"{alone.actor}'s approval alone covers every required role: production needs the "
                            "sign-off of both owners")
    return problems


def gate_outcomes(registry: ModelRegistry, name: str, *, verdict: Callable[..., Any], minimum: float,
                  min_gain: float) -> pd.DataFrame:
    """Every version of ``name`` judged by the gate against the version holding ``deployed-prod``."""
    gate = VerdictGate(verdict=verdict, minimum=minimum, min_gain=min_gain)
    try:
        prod = registry.get_model_version_by_alias(name, "deployed-prod")
    except NotFoundError:
        prod = None
    rows = []
    for mv in registry.search_model_versions(name):
        res = gate.evaluate(PolicyContext(candidate=mv, production=prod, stage="approved-prod"))
        rows.append({"version": mv.version, "auc": round(mv.metadata.metrics.get("auc", float("nan")), 4),
                     "gain": res.observed["gain"], "passes": res.passed, "reason": res.reason})
    return pd.DataFrame(rows)


# -- lineage and blast radius -------------------------------------------------------------------
def lineage_documents(registry: ModelRegistry) -> list[dict[str, Any]]:
    """The lineage document of every version of every model, plus its state and aliases."""
    docs = []
    for name in registry.list_models():
        for mv in registry.search_model_versions(name):
            doc = registry.lineage(name, mv.version)
            doc["model"]["aliases"] = list(mv.aliases)
            docs.append(doc)
    return docs


def blast_radius(registry: ModelRegistry, view: str, version: int) -> dict[str, Any]:
    """Who a change to feature view ``view`` v``version`` touches, what to retrain, what to fall back to.

    ``affected``: versions reading that view version. ``retrain``: affected versions holding a
    live alias (they must be rebuilt on the new view). ``fallback_candidates``: active versions
    of the affected models that do not read the view at all.
    """
    affected = registry.dependents(view, version)
    keys = {(mv.name, mv.version) for mv in affected}
    rows = [{"model": mv.name, "version": mv.version, "state": mv.state, "aliases": ",".join(mv.aliases)}
            for mv in affected]
    retrain = [r for r in rows if set(r["aliases"].split(",")) & set(_LIVE_ALIASES)]
    fallback = []
    for name in sorted({mv.name for mv in affected}):
        for mv in registry.search_model_versions(name):
            reads = {ref.view for ref in mv.lineage.features}
            if (name, mv.version) not in keys and view not in reads and mv.state not in ("rejected", "archived"):
                fallback.append({"model": name, "version": mv.version, "state": mv.state})
    total = sum(len(registry.search_model_versions(n)) for n in registry.list_models())
    return {"view": view, "view_version": version, "affected": rows, "retrain": retrain,
            "fallback_candidates": fallback, "versions_total": total}


# -- serving ------------------------------------------------------------------------------------
def serve(registry: ModelRegistry, name: str, requests: pd.DataFrame, *, clock: FixedClock,
          alias: str = "deployed-prod", step: timedelta = timedelta(seconds=1)) -> pd.DataFrame:
    """Serve ``requests`` in order: resolve ``alias`` for each one, score it, log it with its version.

    Each request gets its own instant (``clock`` advances by ``step``) and its own alias
    resolution; rows that resolved to the same version are then scored in one batch by the
    hash-verified artifact of that version. Returns the prediction log in request order.
    """
    if not isinstance(requests, pd.DataFrame) or requests.empty or "transaction_id" not in requests.columns:
        raise ValidationError("serve: requests must be a non-empty DataFrame with transaction_id.",
                              fix="Pass rows of the serving period.")
    if not isinstance(clock, FixedClock) or not isinstance(step, timedelta) or step <= timedelta(0):
        raise ValidationError("serve: clock must be a FixedClock and step a positive timedelta.",
                              fix="Pass the lab clock and e.g. step=timedelta(seconds=1).")
    resolved = []
    for _ in range(len(requests)):
        at = clock.advance(step)
        resolved.append((at.isoformat(), registry.get_model_version_by_alias(name, alias)))
    log = pd.DataFrame({"request_id": requests["transaction_id"].astype("int64").to_numpy(),
                        "at": [at for at, _ in resolved], "model": name,
                        "model_version": [mv.version for _, mv in resolved], "fraud_probability": np.nan})
    for version in sorted(set(log["model_version"])):
        mv = next(m for _, m in resolved if m.version == version)
        rows = (log["model_version"] == version).to_numpy()
        model = registry.load_model(name, version=version)
        log.loc[rows, "fraud_probability"] = model.predict(requests.loc[rows, mv.signature.input_names])
    log["fraud_probability"] = log["fraud_probability"].round(6)
    return log


def alias_history_frame(registry: ModelRegistry, name: str, alias: str) -> pd.DataFrame:
    """Every move of ``alias`` as a table (from, to, action, actor, reason, at)."""
    rows = [e.to_dict() for e in registry.alias_history(name, alias)]
    frame = pd.DataFrame(rows, columns=["alias", "from_version", "to_version", "action", "actor", "reason", "at",
                                        "audit_seq"])
    return frame.astype({"from_version": "Int64", "to_version": "Int64"})


def holder_at(registry: ModelRegistry, name: str, alias: str, at: Any) -> int | None:
    """The version ``alias`` pointed at, at instant ``at`` (from the alias history)."""
    moment = pd.Timestamp(at)
    for span in alias_spans(registry.alias_history(name, alias)):
        if span["since"] <= moment and (span["until"] is None or moment < span["until"]):
            return int(span["version"])
    return None


# -- tampering ----------------------------------------------------------------------------------
def tamper_audit_copy(registry: ModelRegistry, target: Workspace, *, seq: int,
                      edit: Callable[[dict[str, Any]], dict[str, Any]], export_to: Any = None) -> dict[str, Any]:
    """Copy the registry database into ``target``, hand-edit audit entry ``seq``, verify the copy.

    The edit is a raw ``sqlite3`` ``UPDATE`` of the entry's payload (``edit(payload) -> payload``),
    as someone with file access would do: the schema's append-only trigger refuses it (recorded
    as ``guard``), so the trigger is dropped first. The original registry is not touched. With
    ``export_to`` the edited chain is exported there too. Returns the before/after payloads
    and the copy's ``audit.verify()`` result.
    """
    if not isinstance(target, Workspace) or target.registry_db.exists():
        raise ValidationError("tamper_audit_copy: target must be a fresh Workspace with no registry.",
                              fix="Use a new scratch workspace, e.g. rec.workspace('tampered').")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= len(registry.audit):
        raise ValidationError(f"tamper_audit_copy: seq must be an entry number in 1..{len(registry.audit)}, "
                              f"got {seq!r}.", fix="Pick an entry from registry.audit.entries().")
    target.registry_db.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(registry.workspace.registry_db)) as src, \
            closing(sqlite3.connect(target.registry_db)) as dst:
        src.backup(dst)
    conn = sqlite3.connect(target.registry_db)
    try:
        row = conn.execute("SELECT action, payload FROM audit_log WHERE seq = ?", (seq,)).fetchone()
        before = json.loads(row[1])
        after = edit(dict(before))
        update = ("UPDATE audit_log SET payload = ? WHERE seq = ?", (json.dumps(after), seq))
        try:  # the schema's guard refuses a plain UPDATE ...
            with conn:
                conn.execute(*update)
            guard = "none"
        except sqlite3.DatabaseError as exc:
            guard = str(exc)
        with conn:  # ... so the attacker drops the guard first
            conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
            conn.execute(*update)
    finally:
        conn.close()
    copy = ModelRegistry(target)
    try:
        result = copy.audit.verify()
        if export_to is not None:
            copy.audit.export(export_to)
    finally:
        copy.close()
    return {"edited_seq": seq, "action": row[0], "before": before, "after": after, "guard": guard,
            "verification": result.to_dict()}


def tamper_artifact(registry: ModelRegistry, name: str, version: int) -> str:
    """Flip one byte of a version's stored artifact, try to load it, restore it; return the refusal."""
    mv = registry.get_model_version(name, version)
    path = ArtifactStore(registry.workspace.artifacts_dir).path_for(mv.artifact_sha256)
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        try:
            registry.load_model(name, version=version)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "loaded without complaint"
    finally:
        path.write_bytes(original)
