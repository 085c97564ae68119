"""Per-version changelog: what changed against the previous version, as data and as Markdown."""

from __future__ import annotations

from typing import Any

from .entities import ModelVersion

__all__ = ["diff_versions", "render_changelog"]


def _mapping_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {"added": {k: new[k] for k in sorted(set(new) - set(old))},
            "removed": {k: old[k] for k in sorted(set(old) - set(new))},
            "changed": {k: {"from": old[k], "to": new[k]} for k in sorted(set(old) & set(new)) if old[k] != new[k]}}


def diff_versions(previous: ModelVersion | None, current: ModelVersion) -> dict[str, Any]:
    """Features, parameters, metrics and data snapshots that differ between two versions."""
    def features(mv: ModelVersion | None) -> dict[str, Any]:
        if mv is None:
            return {}
        return {ref.view: {"version": ref.version, "fingerprint": ref.fingerprint, "features": list(ref.features)}
                for ref in mv.lineage.features}

    def snapshots(mv: ModelVersion | None) -> dict[str, Any]:
        return {} if mv is None else {s.name: s.sha256 for s in mv.lineage.snapshots}

    old_params = {} if previous is None else dict(previous.metadata.parameters)
    old_metrics = {} if previous is None else dict(previous.metadata.metrics)
    metrics = _mapping_diff(old_metrics, dict(current.metadata.metrics))
    for key, change in metrics["changed"].items():
        change["delta"] = change["to"] - change["from"]
    return {"name": current.name, "version": current.version,
            "previous_version": None if previous is None else previous.version,
            "features": _mapping_diff(features(previous), features(current)),
            "inputs": _mapping_diff({} if previous is None else {c.name: c.dtype for c in previous.signature.inputs},
                                    {c.name: c.dtype for c in current.signature.inputs}),
            "parameters": _mapping_diff(old_params, dict(current.metadata.parameters)),
            "metrics": metrics,
            "snapshots": _mapping_diff(snapshots(previous), snapshots(current)),
            "code_revision": {"from": None if previous is None else previous.metadata.code_revision,
                              "to": current.metadata.code_revision}}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and "version" in value:
        return f"v{value['version']} (fingerprint {str(value['fingerprint'])[:12]})"
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return str(value)


def render_changelog(previous: ModelVersion | None, current: ModelVersion) -> str:
    """Markdown section for ``current`` against ``previous`` (``None`` for the first version)."""
    diff = diff_versions(previous, current)
    base = "first version" if previous is None else f"changes since v{previous.version}"
    lines = [f"## {current.name} v{current.version} ({base})", "",
             f"- registered {current.created_at.isoformat()} by {current.author}; state `{current.state}`",
             f"- code revision: {_fmt(diff['code_revision']['to'])}"
             + ("" if previous is None or diff["code_revision"]["from"] == diff["code_revision"]["to"]
                else f" (was {_fmt(diff['code_revision']['from'])})")]
    sections = (("Features", "features"), ("Inputs", "inputs"), ("Parameters", "parameters"),
                ("Metrics", "metrics"), ("Data snapshots", "snapshots"))
    for title, key in sections:
        part = diff[key]
        rows = ([f"| added | {k} | | {_fmt(v)} |" for k, v in part["added"].items()]
                + [f"| removed | {k} | {_fmt(v)} | |" for k, v in part["removed"].items()]
                + [f"| changed | {k} | {_fmt(c['from'])} | {_fmt(c['to'])}"
                   + (f" ({c['delta']:+.4g})" if "delta" in c else "") + " |" for k, c in part["changed"].items()])
        lines += ["", f"### {title}", ""]
        lines += (["| change | name | before | after |", "|---|---|---|---|", *rows] if rows else ["No change."])
    return "\n".join(lines) + "\n"
