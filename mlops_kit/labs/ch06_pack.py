"""Chapter 6 lab: the evidence pack's documents (runbooks, review plan) and the checklist map.

``CHECKLIST_EVIDENCE`` maps each item of the kit's final review checklist
(``mlops_kit/evidence/quizzes/final_checklist.json``) to the capstone artifacts that evidence
it, as pack-relative paths (``ch06/<file>``).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Mapping

from ..errors import ValidationError
from ..evidence import load_bank, score_answers

__all__ = ["RUNBOOKS", "CHECKLIST_EVIDENCE", "checklist_items", "review_plan"]

_DASH = [f"ch06/dash_{p}.png" for p in ("traffic_split", "latency", "missing_features", "prediction_psi", "kpi_proxy",
                                         "feature_freshness", "training_serving_skew")]
CHECKLIST_EVIDENCE: dict[str, tuple[str, ...]] = {
    "F1": ("ch06/lifecycle.json", "ch06/daily_jobs.csv"),
    "F2": ("ch06/gate_results.csv", "ch06/train.parquet"),
    "F3": ("ch06/gate_results.csv", "ch06/release_decisions.csv"),
    "F4": ("ch06/gate_results.csv", "ch06/attestations.csv"),
    "F5": ("ch06/daily_jobs.csv", "ch06/lineage.json"),
    "F6": ("ch06/repro_audit.json", "ch06/lineage.json", "ch06/train.parquet", "ch06/eval.parquet"),
    "F7": ("ch06/lineage.json", "ch06/attestations.csv"),
    "F8": ("ch06/attestations.csv", "ch06/approvals.csv", "ch06/changelog.md"),
    "F9": ("ch06/audit_export.jsonl",),
    "F10": ("ch06/alias_history.csv", "ch06/lifecycle.json"),
    "F11": ("ch06/drill_drift.json", "ch06/drill_drift_events.csv", "ch06/postmortem_drift.md"),
    "F12": ("ch06/drill_drift.json", "ch06/alias_history.csv"),
    "F13": ("ch06/drill_outage.json", "ch06/drill_outage_events.csv", "ch06/postmortem_outage.md"),
    "F14": ("ch06/dashboard.json", *_DASH),
    "F15": ("ch06/postmortem_outage.md", "ch06/postmortem_drift.md"),
    "F16": ("ch06/runbooks.md",),
    "F17": ("ch06/review_plan.md", "ch06/answers.json"),
}

RUNBOOKS = """# Capstone runbooks and SOPs

Every step is a call on the kit; the lab module is `mlops_kit.labs.ch06`. Environment: Python 3.11,
`pip install -e ".[dev]"`; set `MLOPS_KIT_WORK_DIR` to move scratch workspaces.

## SOP: change a feature or backfill
1. Define the change as a new `FeatureView` version (`version=2`); re-applying a changed definition
   under the same version is refused.
2. `store.apply([...])`, `store.ingest(view, df, version=2)`; run the data gate:
   `ch06_gates.data_gate(release, df, now=as_of)`; a failed `block` check stops the batch.
3. `parity_report(store, refs, sample_size=400, seed=7, at=job_time)` must match 100 %.

## SOP: train reproducibly
1. `frames = ch06.training_frames(store, world)` (point-in-time, `get_historical_features`).
2. `ch06.write_snapshot(ws, "train", frames["train"])`; the sha256 goes into the lineage.
3. `ch06.train(frames, C=...)`; register with `ch06.register(...)` (signature, metadata, lineage).

## SOP: promote and deploy
1. `registry.promote(name, v, "candidate")` runs the policies (metric, segments, contract, lineage).
2. Approvals by two roles: `registry.approve(name, v, actor=..., role="ml-owner" | "risk", note=...)`.
3. `registry.promote(name, v, "approved-prod")`; release with a canary:
   `ch06_ops.canary(RegistryModelProvider(registry, name), traffic, source, guards=ch06_ops.guardrails())`.

## Runbook: data freshness failure
- Signal: `feature_freshness` panel above 26 h, or `missing_feature_rate` rising.
- Action: check `source.jobs` (last `run_at`); re-run `store.materialize_incremental(now)`; confirm with
  `parity_report` and the freshness panel.

## Runbook: training-serving skew
- Signal: `training_serving_skew` panel PSI > 0.1 on any input.
- Action: compare the view fingerprint in `registry.lineage(name, v)` with `store.get_feature_view(view).fingerprint`;
  rebuild with `ch06.rebuild_from_lineage(doc, clean_ws)` and compare with `ch06.audit_compare`.

## Runbook: drift alert
- Signal: `input-drift` guardrail (stable-arm score PSI vs the warm-up > 0.25 over 6 h).
- Action: a release in flight aborts automatically and `deployed-prod` rolls back
  (`registry.rollback(name, actor=..., reason=...)`); do not retrain before the shift is explained.

## Runbook: online-store outage
- Signal: the `feature-retrieval` guardrail fires (its settings, as drilled, are in CA-O1 of
  `postmortem_outage.md`).
- Action: the fallback model serves automatically; never roll back the model for a store failure;
  after recovery the fallback ends by itself after three healthy measurements.
- Restore: restart the store (same port and settings). A server without persistence comes back
  empty: re-materialize every view up to its watermark
  (`store.materialize(start, store.watermark(view), views=[view])`) and compare probe reads with the
  reads before the outage (CA-O4 of a drill run with `online_store` set to a Redis URL).

## Runbook: rollback and post-incident review
- `registry.rollback(name, actor=..., reason=...)` returns `deployed-prod` to the last known-good version.
- Write the postmortem with `incident_report` + `postmortem_markdown`; every corrective action is a
  `CorrectiveAction` check that must pass before the incident is closed.
"""


def checklist_items() -> list[dict[str, Any]]:
    """The items of the kit's final review checklist."""
    text = resources.files("mlops_kit.evidence").joinpath("quizzes/final_checklist.json").read_text(encoding="utf-8")
    return list(json.loads(text)["items"])


def review_plan(answers: Mapping[str, Any], drills: Mapping[str, float]) -> str:
    """The next-step certification plan from the recorded quiz and mock-exam answers and drill times."""
    if not isinstance(answers, Mapping) or "banks" not in answers:
        raise ValidationError("review_plan: answers must be the recorder's answers.json content.",
                              fix="Pass json.loads((rec.dir / 'answers.json').read_text()).")
    lines = ["# Final review: strengths, gaps and the next-step plan", "", "| assessment | right | total |",
             "|---|---|---|"]
    scores = {}
    for bank in ("ch06", "mock_exam"):
        entry = answers["banks"].get(bank) or {}
        s = score_answers(load_bank(bank), entry.get("answers") or {})
        scores[bank] = s
        lines.append(f"| {bank} | {s.right} | {s.total} |")
    lines += ["", "## Drill results", ""] + [f"- {k}: {v:g}" for k, v in drills.items()]
    weak = [b for b, s in scores.items() if s.total and s.right / s.total < 0.8]
    lines += ["", "## Plan", "",
              "- Strongest: feature-store correctness (parity and leakage gates pass), registry governance "
              "(refused promotions, two approvals), reproducibility (rebuild matches).",
              "- More practice: " + (", ".join(weak) + " questions; " if weak else "") +
              "alert tuning (guardrail windows vs detection time), incident response timing.",
              "- Next rep: rerun the drill widget with other magnitudes and record the detection times."]
    return "\n".join(lines) + "\n"
