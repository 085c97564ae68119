"""Chapter 6 criteria: the capstone's gates, rebuild, drills, dashboard and checklist, re-checked.

Nothing here imports the lab or the platform modules: verdicts are recomputed from the saved
numbers, snapshot hashes from the saved snapshot bytes, PSI from saved samples (with the
grader's own ``psi_from_samples``), and drill timelines are re-read as plain tables.
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from typing import Any

import pandas as pd

from .base import Grade, GradingContext, MissingEvidence, criterion
from .recompute import psi_from_samples

__all__ = ["grade_gates", "grade_reproducibility", "grade_drills", "grade_dashboard", "grade_checklist",
           "grade_lifecycle"]

_GATE_ORDER = ("data", "feature", "model")
_PNG = b"\x89PNG\r\n\x1a\n"


def _verdict(observed: Any, op: str, threshold: Any) -> bool:
    o, t = float(observed), float(threshold)
    if not (math.isfinite(o) and math.isfinite(t)):
        return False
    if op == "<=":
        return o <= t + 1e-12
    if op == ">=":
        return o >= t - 1e-12
    if op == "==":
        return abs(o - t) <= 1e-12
    raise MissingEvidence(f"unknown comparison {op!r} in gate_results.csv")


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0")


@criterion("C6.1")
def grade_gates(ctx: GradingContext) -> Grade:
    """Every gate row's pass/fail follows from its numbers; each release's decision follows from its rows.

    ``gate_results.csv``: ``release, gate, check, observed, op, threshold, passed``;
    ``release_decisions.csv``: ``release, decision``. The decision is the first gate (data,
    feature, model) with a failing row, else ``release``. At least one release must be
    released and at least one blocked at each of the three gates.
    """
    rows = ctx.read_table("ch06/gate_results.csv")
    dec = ctx.read_table("ch06/release_decisions.csv")
    need = {"release", "gate", "check", "observed", "op", "threshold", "passed"}
    if not need <= set(rows.columns) or not {"release", "decision"} <= set(dec.columns):
        raise MissingEvidence("gate_results.csv or release_decisions.csv lacks columns")
    lies = [f"{r.release}/{r.check}" for r in rows.itertuples()
            if _verdict(r.observed, r.op, r.threshold) != _truthy(r.passed)]
    wrong, seen = [], set()
    stated = dict(zip(dec["release"].astype(str), dec["decision"].astype(str)))
    for release, g in rows.groupby("release", sort=False):
        want = "release"
        for gate in _GATE_ORDER:
            if any(not _verdict(r.observed, r.op, r.threshold) for r in g[g["gate"] == gate].itertuples()):
                want = f"blocked by {gate} gate"
                break
        seen.add(want)
        if stated.get(str(release)) != want:
            wrong.append(f"{release}: stated {stated.get(str(release))!r}, recomputed {want!r}")
    if lies or wrong:
        return Grade(0, f"rows contradicting their numbers: {lies or 'none'}; decisions wrong: {wrong or 'none'}")
    expected = {"release", *(f"blocked by {g} gate" for g in _GATE_ORDER)}
    if not expected <= seen:
        return Grade(2, f"verdicts consistent, but the releases only show {sorted(seen)} (need a release "
                     "and a block at each gate)")
    return Grade(4, f"{len(rows)} gate rows and {len(stated)} decisions recomputed from their numbers; "
                 "one release passed, one blocked at each gate")


def _sha(ctx: GradingContext, rel: str) -> str:
    return hashlib.sha256(ctx.path(rel).read_bytes()).hexdigest()


@criterion("C6.2")
def grade_reproducibility(ctx: GradingContext) -> Grade:
    """The saved snapshots hash to the lineage's sha256; the rebuild matches fingerprints and metrics.

    ``lineage.json`` (the serving version's registry lineage), ``repro_audit.json`` (original vs
    rebuilt: ``snapshots``, ``view_fingerprints``, ``code_revision``, ``artifact_sha256``, ``auc``,
    ``tolerance``) and the snapshot files ``<name>.parquet`` named in the lineage.
    """
    lineage = ctx.read_json("ch06/lineage.json")
    audit = ctx.read_json("ch06/repro_audit.json")
    try:
        snaps = {s["name"]: s["sha256"] for s in lineage["lineage"]["snapshots"]}
        views = {f["view"]: f["fingerprint"] for f in lineage["lineage"]["features"]}
        orig, rebuilt, tol = audit["original"], audit["rebuilt"], float(audit["tolerance"])
    except (KeyError, TypeError) as exc:
        raise MissingEvidence(f"lineage.json or repro_audit.json lacks {exc}") from exc
    problems = []
    for name, digest in snaps.items():
        got = _sha(ctx, f"ch06/{name}.parquet")
        if got != digest:
            problems.append(f"{name}.parquet hashes to {got[:12]}, lineage says {str(digest)[:12]}")
        if rebuilt.get("snapshots", {}).get(name) != digest:
            problems.append(f"rebuilt snapshot {name} differs from the lineage")
    for view, fp in views.items():
        if rebuilt.get("view_fingerprints", {}).get(view) != fp:
            problems.append(f"rebuilt view {view} fingerprint differs")
    if rebuilt.get("code_revision") != lineage.get("code", {}).get("revision"):
        problems.append("code revision differs")
    if rebuilt.get("artifact_sha256") != lineage.get("model", {}).get("artifact_sha256"):
        problems.append("rebuilt artifact sha256 differs from the registered one")
    try:
        diff = abs(float(orig["auc"]) - float(rebuilt["auc"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingEvidence(f"repro_audit.json lacks an auc ({exc})") from exc
    if not diff <= tol:
        problems.append(f"AUC differs by {diff:g} > tolerance {tol:g}")
    if problems:
        return Grade(0, "; ".join(problems))
    return Grade(4, f"{len(snaps)} snapshot files re-hashed to the lineage's sha256; {len(views)} view fingerprints, "
                 f"code revision and artifact sha256 equal; AUC within {tol:g}")


_DRILLS = {"drift": ("rollback",), "outage": ("fallback_on",)}


@criterion("C6.3")
def grade_drills(ctx: GradingContext) -> Grade:
    """Each drill's containment (drift: registry rollback; outage: fallback) came at or after its first alert.

    From ``drill_<name>_events.csv``: the first ``alert`` at or after the fault start in
    ``drill_<name>.json`` and the first containment event at or after that alert; the
    postmortem ``postmortem_<name>.md`` lists every corrective action of
    ``drill_<name>.json`` as PASS.
    """
    notes, problems = [], []
    for name, kinds in _DRILLS.items():
        info = ctx.read_json(f"ch06/drill_{name}.json")
        ev = ctx.read_table(f"ch06/drill_{name}_events.csv")
        try:
            ev["time"] = pd.to_datetime(ev["time"], utc=True, format="mixed")
            start = pd.Timestamp(info["fault_start"])
            actions = list(info["corrective_actions"])
        except (KeyError, ValueError, TypeError) as exc:
            raise MissingEvidence(f"drill {name}: {exc}") from exc
        alerts = ev[(ev["kind"] == "alert") & (ev["time"] >= start)]
        if alerts.empty:
            problems.append(f"{name}: no alert after the fault start")
            continue
        t_alert = alerts["time"].iloc[0]
        cont = ev[ev["kind"].isin(kinds) & (ev["time"] >= t_alert)]
        if cont.empty:
            problems.append(f"{name}: no {'/'.join(kinds)} at or after the first alert")
            continue
        text = ctx.path(f"ch06/postmortem_{name}.md").read_text(encoding="utf-8")
        bad = [a["id"] for a in actions if f"| {a['id']} |" not in text or not a.get("passed")]
        bad += [a["id"] for a in actions if any(line.startswith(f"| {a['id']} |") and not line.rstrip().endswith("| PASS |")
                                                 for line in text.splitlines())]
        if not actions or bad:
            problems.append(f"{name}: corrective actions missing or failing in the postmortem: {sorted(set(bad))}")
        notes.append(f"{name}: alert {(t_alert - start).total_seconds() / 60:g} min after the fault, "
                     f"{cont['kind'].iloc[0]} {(cont['time'].iloc[0] - t_alert).total_seconds() / 60:g} min later")
    if problems:
        return Grade(2 if notes else 0, "; ".join(problems + notes))
    return Grade(4, "; ".join(notes))


@criterion("C6.4")
def grade_dashboard(ctx: GradingContext) -> Grade:
    """Every panel listed in ``dashboard.json`` is a saved PNG; the stated prediction PSI recomputes.

    ``dashboard.json``: ``panels`` (name -> figure file) and ``psi`` (stated value, ``bins``);
    ``psi_samples.csv`` (``sample`` = reference/current, ``score``) gives the PSI back.
    """
    dash = ctx.read_json("ch06/dashboard.json")
    required = {"traffic_split", "latency", "missing_features", "prediction_psi", "kpi_proxy", "feature_freshness",
                "training_serving_skew"}
    panels = dash.get("panels", {}) if isinstance(dash, dict) else {}
    absent = sorted(required - set(panels))
    broken = [p for p, f in panels.items() if not ctx.exists(f"ch06/{f}") or
              not ctx.path(f"ch06/{f}").read_bytes().startswith(_PNG)]
    s = ctx.read_table("ch06/psi_samples.csv")
    if not {"sample", "score"} <= set(s.columns):
        raise MissingEvidence("psi_samples.csv lacks sample/score")
    psi, _ = psi_from_samples(s.loc[s["sample"] == "reference", "score"], s.loc[s["sample"] == "current", "score"],
                              bins=int(dash["psi"]["bins"]))
    psi_ok = abs(psi - float(dash["psi"]["value"])) <= 1e-6
    if absent or broken or not psi_ok:
        return Grade(2 if panels else 0, f"panels missing {absent}, not PNG {broken}; PSI stated {dash['psi']['value']}, "
                     f"recomputed {psi:.6f}")
    return Grade(4, f"{len(panels)} panel figures present; prediction PSI {psi:.4f} recomputed from the samples")


@criterion("C6.5")
def grade_checklist(ctx: GradingContext) -> Grade:
    """Every item of the kit's final review checklist is located in the pack by existing artifacts."""
    ref = json.loads(resources.files("mlops_kit.evidence").joinpath("quizzes/final_checklist.json")
                     .read_text(encoding="utf-8"))
    want = [it["id"] for it in ref["items"]]
    got = {it.get("id"): it for it in ctx.read_json("ch06/final_checklist.json").get("items", [])}
    problems = []
    for item in want:
        arts = got.get(item, {}).get("artifacts") or []
        missing = [a for a in arts if not ctx.exists(a)]
        if not arts or missing:
            problems.append(f"{item}: {'no artifact' if not arts else 'missing ' + ', '.join(missing)}")
    if problems:
        return Grade(2 if len(problems) < len(want) else 0, "; ".join(problems[:8]))
    n = sum(len(got[i]["artifacts"]) for i in want)
    return Grade(4, f"all {len(want)} checklist items located by {n} artifact references, every one present")


@criterion("C6.6")
def grade_lifecycle(ctx: GradingContext) -> Grade:
    """The lifecycle ran end to end and the released version passed every gate and was deployed.

    ``lifecycle.json``: ``stages`` (each with ``status``), ``released_version`` and
    ``deployed_after_canary``; the released version's gate rows (``release`` named in
    ``released_release``) all pass; the audit export's chain re-verifies.
    """
    from .recompute import verify_audit_export

    life = ctx.read_json("ch06/lifecycle.json")
    rows = ctx.read_table("ch06/gate_results.csv")
    try:
        stages, rel = life["stages"], str(life["released_release"])
        deployed, released = int(life["deployed_after_canary"]), int(life["released_version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingEvidence(f"lifecycle.json lacks {exc}") from exc
    failed = [s.get("stage") for s in stages if s.get("status") != "ok"]
    mine = rows[rows["release"].astype(str) == rel]
    gate_fail = mine.empty or any(not _verdict(r.observed, r.op, r.threshold) for r in mine.itertuples())
    chain = verify_audit_export(ctx.path("ch06/audit_export.jsonl"))
    if failed or gate_fail or deployed != released or not chain.ok:
        return Grade(0 if gate_fail else 2, f"stages not ok: {failed}; released release gates pass: {not gate_fail}; "
                     f"deployed v{deployed} vs released v{released}; audit chain ok: {chain.ok} {chain.reason}")
    return Grade(4, f"{len(stages)} stages ok; v{released} passed its {len(mine)} gate checks and was deployed by the "
                 f"canary; audit chain of {chain.entries} entries verifies")
