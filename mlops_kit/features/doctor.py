"""``store.verify()`` and ``mlops-kit doctor``: is a workspace's feature data whole?

What is checked, in plain terms:

* **Manifest vs files.** Every committed manifest row has its Parquet file, and the file has
  the size and sha256 recorded when it was committed (``missing file``, ``edited file``).
  Files committed before digests were recorded are counted as unverified, not as problems.
* **Files vs manifest.** Every Parquet file under ``offline/`` is referenced by a committed
  row, or belongs to an ingest still in flight (its writer process is alive). Anything else
  is an **orphan**: left by a killed writer, or copied in by hand. Staging leftovers under
  ``tmp/`` count too. Reservations whose writer is gone are reported as abandoned writes.
* **Online vs watermarks.** For every view version in the online store, each stored row's
  event time is before the view's watermark and is the event time of a committed offline
  row of that entity; an online store that holds rows of a view never materialized, or
  entities the offline data does not know, is reported.
* **Databases.** ``PRAGMA integrity_check`` on every SQLite file of the workspace.

``repair()`` only quarantines: orphan files move under ``quarantine/repair-NNNN/`` (same
relative path), abandoned reservations are cleared, and manifest rows whose files are gone
are reported with what to do. It never deletes a file and never invents data.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from .._io import sha256_file
from .pit import files_sql, q

if TYPE_CHECKING:
    from .store import FeatureStore

__all__ = ["Problem", "VerifyReport", "verify_store", "repair_store"]

_KEY_BATCH = 5000


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``kind`` (stable id), ``where`` (a path or view), ``detail``, ``fix``."""

    kind: str
    where: str
    detail: str
    fix: str


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found; ``ok`` when there is no problem."""

    root: str
    problems: tuple[Problem, ...] = ()
    files_checked: int = 0
    files_unverified: int = 0
    online_views_checked: int = 0
    in_flight: tuple[str, ...] = ()
    repaired: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def of_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "ok": self.ok, "files_checked": self.files_checked,
                "files_unverified": self.files_unverified, "online_views_checked": self.online_views_checked,
                "in_flight": list(self.in_flight), "repaired": list(self.repaired),
                "problems": [asdict(p) for p in self.problems]}

    def text(self) -> str:
        lines = [f"workspace {self.root}: {self.files_checked} committed file(s) checked"
                 + (f" ({self.files_unverified} without a recorded digest)" if self.files_unverified else "")
                 + f", {self.online_views_checked} online view(s) checked."]
        lines += [f"in flight, skipped: {w}" for w in self.in_flight]
        lines += [f"repaired: {r}" for r in self.repaired]
        if self.ok:
            lines.append("No problems found.")
        else:
            lines.append(f"{len(self.problems)} problem(s):")
            for p in self.problems:
                lines.append(f"- {p.kind}: {p.where}: {p.detail} Fix: {p.fix}")
        return "\n".join(lines)


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell from here: treat as in flight
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def verify_store(store: "FeatureStore") -> VerifyReport:
    """Check manifest, files, online store and databases; see the module docstring."""
    ws = store.workspace
    root = ws.offline_dir
    problems: list[Problem] = []
    rows = store.meta.all_manifest_rows()
    digests = store.meta.digests()
    committed = {path for _, _, path, _ in rows}
    checked = unverified = 0
    for path in sorted(committed):
        file = root / path
        users = sorted({f"{v}@v{n}" for v, n, p, _ in rows if p == path})
        if not file.is_file():
            problems.append(Problem("missing_file", path, f"committed for {', '.join(users)} but the file is gone.",
                                    "Restore the file from a backup, or drop it deliberately with "
                                    f"store.forget_offline_files([{path!r}]) (its rows are then lost)."))
            continue
        checked += 1
        recorded = digests.get(path)
        if recorded is None:
            unverified += 1
            continue
        size, digest = recorded
        if file.stat().st_size != size or sha256_file(file) != digest:
            problems.append(Problem("edited_file", path, f"its size or sha256 differs from the committed "
                                    f"digest ({digest[:12]}…); readers of {', '.join(users)} see other data.",
                                    "Restore the committed file from a backup, or re-ingest the rows "
                                    "and forget this file."))
    live, abandoned = [], []
    for res in store.meta.reservations():
        (live if _alive(res["pid"], res["host"]) else abandoned).append(res)
    live_ids = {r["ingest_id"] for r in live}
    live_tokens = {r["token"] for r in live}
    for res in abandoned:
        problems.append(Problem("abandoned_write", f"{res['view']}@v{res['version']}",
                                f"ingest {res['ingest_id']} (token {res['token']}, pid {res['pid']}) stopped "
                                "before its commit; none of its rows are visible.",
                                "Run `mlops-kit doctor --repair` to quarantine its files, then ingest again."))
    for orphan in _orphans(ws, committed, live_ids, live_tokens):
        problems.append(Problem("orphan_file", orphan, "no committed manifest row references it.",
                                "Run `mlops-kit doctor --repair` to move it to quarantine/ (nothing is deleted)."))
    bad = {p.where for p in problems}
    online_checked, online_problems = _check_online(store, {root / p for p in bad})
    problems += online_problems
    for db in (ws.features_db, ws.online_db, ws.registry_db):
        problems += _integrity(db)
    return VerifyReport(root=str(ws.root), problems=tuple(problems), files_checked=checked,
                        files_unverified=unverified, online_views_checked=online_checked,
                        in_flight=tuple(f"ingest {r['ingest_id']} into {r['view']}@v{r['version']} (pid {r['pid']})"
                                        for r in live))


def _orphans(ws: Any, committed: set[str], live_ids: set[int], live_tokens: set[str]) -> list[str]:
    """Workspace-relative paths of files no manifest row or live writer owns."""
    out = []
    root = ws.offline_dir
    for file in sorted(root.rglob("*.parquet")):
        rel = str(file.relative_to(root))
        if rel in committed or any(file.name.startswith(f"part-{i:08d}-") for i in live_ids):
            continue
        out.append(str(file.relative_to(ws.root)))
    tmp = ws.tmp_dir
    for entry in sorted(tmp.glob("ingest-*")) + sorted(tmp.glob("backfill-*.parquet")):
        if not any(entry.name.startswith(f"ingest-{t}-") for t in live_tokens):
            out.append(str(entry.relative_to(ws.root)))
    return out


def _check_online(store: "FeatureStore", bad: set[Path]) -> tuple[int, list[Problem]]:
    problems: list[Problem] = []
    marks = store.meta.watermarks()
    checked = 0
    for view in store.list_feature_views():
        stored = store.online.count(view)
        label = f"{view.name}@v{view.version}"
        if not stored:
            continue
        checked += 1
        mark = marks.get((view.name, view.version))
        if mark is None:
            problems.append(Problem("online_without_watermark", label, f"the online store holds {stored} "
                                    "entities but the view was never materialized here.",
                                    "Materialize the view (store.materialize_incremental(end)) or clear its "
                                    "online table."))
            continue
        files = [f for f in store.offline_files(view) if f not in bad]  # reported above
        keys = list(view.join_keys)
        if not files:
            problems.append(Problem("online_row_not_offline", label, f"{stored} online entities but no "
                                    "committed offline rows.", "Re-ingest the offline data, or clear the "
                                    "view's online table and materialize again."))
            continue
        con = store.duckdb.cursor()
        try:
            sql = (f"SELECT {', '.join(map(q, keys))}, list(DISTINCT epoch_us({q(view.timestamp_field)})) AS ts "
                   f"FROM read_parquet({files_sql(files)}) GROUP BY ALL")
            table = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            problems.append(Problem("unreadable_file", label, f"the offline files cannot be read ({exc}).",
                                    "Restore the damaged file from a backup (its path is in the message)."))
            continue
        finally:
            con.close()
        key_cols = [table.column(k).to_pylist() for k in keys]
        times = table.column("ts").to_pylist()
        entities = list(zip(*key_cols))
        found = ahead = unknown = 0
        for start in range(0, len(entities), _KEY_BATCH):
            chunk = entities[start:start + _KEY_BATCH]
            ts, _ = store.online.read_rows(view, [], chunk)
            for got, offline_ts in zip(ts, times[start:start + _KEY_BATCH]):
                if got is None:
                    continue
                found += 1
                ahead += got >= mark
                unknown += got not in offline_ts
        if ahead:
            problems.append(Problem("online_ahead_of_watermark", label, f"{ahead} online row(s) have an event "
                                    "time at or after the watermark.", "Materialize again up to a later end, or "
                                    "clear the online table and materialize from scratch."))
        if unknown:
            problems.append(Problem("online_row_not_offline", label, f"{unknown} online row(s) carry an event "
                                    "time no committed offline row of that entity has (lost offline data?).",
                                    "Run doctor's file checks first; then clear the online table and materialize "
                                    "again from the offline store."))
        if stored > found:
            problems.append(Problem("online_row_not_offline", label, f"{stored - found} online entities are "
                                    "unknown to the offline store.", "Clear the view's online table and "
                                    "materialize again from the offline store."))
    return checked, problems


def _integrity(path: Path) -> list[Problem]:
    if not path.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            result = [r[0] for r in con.execute("PRAGMA integrity_check")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        result = [str(exc)]
    if result == ["ok"]:
        return []
    return [Problem("database_corrupt", path.name, "; ".join(result[:5]),
                    "Restore the database from a backup; do not write to this workspace until then.")]


def repair_store(store: "FeatureStore") -> VerifyReport:
    """Quarantine orphans and clear abandoned reservations; return the report after repair."""
    before = verify_store(store)
    ws = store.workspace
    moved: list[str] = []
    orphans = [p.where for p in before.of_kind("orphan_file")]
    if orphans:
        base = ws.root / "quarantine"
        n = 1
        while (base / f"repair-{n:04d}").exists():
            n += 1
        target_root = base / f"repair-{n:04d}"
        for rel in orphans:
            src = ws.root / rel
            dst = target_root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
            moved.append(f"quarantined {rel} -> {dst.relative_to(ws.root)}")
            _prune_empty(src.parent, ws.offline_dir)
    tokens = {r["token"] for r in store.meta.reservations() if not _alive(r["pid"], r["host"])}
    for token in sorted(tokens):
        store.meta.release_reservation(token)
        moved.append(f"cleared abandoned reservation {token}")
    after = verify_store(store)
    return VerifyReport(**{**after.__dict__, "repaired": tuple(moved)})


def _prune_empty(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent

