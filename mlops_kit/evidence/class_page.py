"""The gradebook's files: ``gradebook.csv``, ``canvas.csv``, ``flags.json`` and an offline ``index.html``.

``index.html`` is one self-contained page (inline CSS and SVG, no script, no external
reference): the class summary, a histogram of totals, the pass rate per criterion with the
criteria most of the class missed first, the flagged packs, and a link per learner to
``<id>/SCORE.md``.
"""

from __future__ import annotations

import csv
import html
import io
import statistics
from typing import Any

from .._io import atomic_write_json, atomic_write_text

__all__ = ["CANVAS_COLUMNS", "canvas_csv", "gradebook_csv", "render_index", "write_class_files"]

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def gradebook_csv(result: Any) -> str:
    """One row per learner: id, name, section, status, total, max, percent, each criterion, flags, reason."""
    ids = [c["id"] for c in result.criteria]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "name", "section", "status", "total", "max_points", "percent", *ids, "flags", "reason"])
    for row in result.rows:
        awarded = row.get("criteria", {})
        writer.writerow([row["id"], row.get("name", ""), row.get("section", ""), row["status"],
                         _num(row.get("points")), _num(row.get("max_points")), _num(row.get("percent")),
                         *(_num(awarded.get(i)) for i in ids), ";".join(row.get("flags", [])), row.get("reason", "")])
    return buf.getvalue()


def canvas_csv(result: Any, assignment: str) -> str:
    """Canvas's gradebook import: identity columns, a 'Points Possible' row, one score column.

    Learners are matched on ``SIS Login ID`` (the learner id); an ungraded learner's cell is
    left empty so an import never overwrites a grade with a zero.
    """
    max_points = sum(c["points"] for c in result.criteria)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CANVAS_COLUMNS, assignment])
    writer.writerow(["Points Possible", "", "", "", "", _num(max_points)])
    for row in result.rows:
        if row["id"] and row["status"] in ("graded", "missing", "unreadable"):
            score = _num(row.get("points")) if row["status"] == "graded" else ""
            writer.writerow([row.get("name") or row["id"], "", row["id"], row["id"], row.get("section", ""), score])
    return buf.getvalue()


def _num(value: Any) -> str:
    if value is None or value == "":
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _histogram(percents: list[float]) -> str:
    bins = [0] * 10
    for p in percents:
        bins[min(int(p // 10), 9)] += 1
    top = max(bins) or 1
    bars = []
    for i, count in enumerate(bins):
        h = 120 * count / top
        bars.append(f'<rect x="{10 + i * 44}" y="{130 - h:.1f}" width="38" height="{h:.1f}" fill="#4a78b5">'
                    f"<title>{i * 10}-{i * 10 + 10} %: {count}</title></rect>"
                    f'<text x="{29 + i * 44}" y="146" font-size="10" text-anchor="middle">{i * 10}</text>'
                    f'<text x="{29 + i * 44}" y="{126 - h:.1f}" font-size="10" text-anchor="middle">{count or ""}</text>')
    return (f'<svg width="460" height="156" role="img" '
            f'aria-label="histogram of totals in percent">{"".join(bars)}</svg>')


def _pass_rates(result: Any) -> list[tuple[str, float, int]]:
    graded = [r for r in result.rows if r["status"] == "graded"]
    rates = []
    for c in result.criteria:
        full = sum(1 for r in graded if r.get("criteria", {}).get(c["id"]) == c["points"])
        rates.append((c["id"], 100.0 * full / len(graded) if graded else 0.0, c["points"]))
    return sorted(rates, key=lambda t: (t[1], t[0]))


def render_index(result: Any, rubric_name: str) -> str:
    """The class page (see the module docstring)."""
    esc = html.escape
    graded = [r for r in result.rows if r["status"] == "graded"]
    percents = [float(r["percent"]) for r in graded]
    flagged = [r for r in result.rows if r.get("flags")]
    summary = (f"{len(result.rows)} learners: {len(graded)} graded, {result.ungraded} unreadable, "
               f"{sum(1 for r in result.rows if r['status'] == 'missing')} missing, {len(flagged)} flagged.")
    if percents:
        summary += f" Median {statistics.median(percents):g} %, mean {statistics.fmean(percents):.1f} %."
    rates = "".join(f"<tr><td>{esc(cid)}</td><td>{rate:.0f} %</td><td>{points}</td></tr>"
                    for cid, rate, points in _pass_rates(result))
    flag_rows = "".join(
        f"<tr><td>{esc(kind.replace('_', ' '))}</td><td>{esc(', '.join(item.get('learners', [item.get('learner', '')])))}"
        f"</td><td>{esc(str(item.get('detail', '')))}</td></tr>"
        for kind, items in result.flags.items() for item in items)
    learners = "".join(
        f"<tr><td>{_link(r)}</td><td>{esc(r.get('name', ''))}</td><td>{esc(r.get('section', ''))}</td>"
        f"<td>{esc(r['status'])}</td><td>{_num(r.get('points'))}</td><td>{_num(r.get('percent'))}</td>"
        f"<td>{esc(', '.join(f.replace('_', ' ') for f in r.get('flags', [])))}</td>"
        f"<td>{esc(r.get('reason', ''))}</td></tr>" for r in result.rows)
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "text-align:left;vertical-align:top}th{background:#f1f3f6}h2{margin-top:1.6em}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Gradebook</title><style>{style}</style></head>
<body><h1>Gradebook</h1><p>Rubric <code>{esc(rubric_name)}</code>. {esc(summary)}</p>
<h2>Totals</h2>{_histogram(percents)}
<h2>Pass rate per criterion (full points), lowest first</h2>
<table><tr><th>criterion</th><th>learners at full points</th><th>points</th></tr>{rates}</table>
<h2>Flags</h2><p>Leads to look at, not verdicts.</p>
<table><tr><th>flag</th><th>learners</th><th>detail</th></tr>{flag_rows or '<tr><td colspan="3">none</td></tr>'}</table>
<h2>Learners</h2>
<table><tr><th>id</th><th>name</th><th>section</th><th>status</th><th>total</th><th>%</th><th>flags</th>
<th>reason</th></tr>{learners}</table>
</body></html>
"""


def _link(row: dict[str, Any]) -> str:
    learner = html.escape(row["id"])
    return f'<a href="{learner}/SCORE.md">{learner}</a>' if row["status"] == "graded" else learner


def write_class_files(result: Any, *, fmt: str, assignment: str, rubric_name: str) -> None:
    """Write the gradebook's class-wide files into ``result.out``."""
    atomic_write_text(result.out / "gradebook.csv", gradebook_csv(result))
    if fmt == "canvas":
        atomic_write_text(result.out / "canvas.csv", canvas_csv(result, assignment))
    atomic_write_json(result.out / "flags.json", result.flags)
    atomic_write_text(result.out / "index.html", render_index(result, rubric_name))
