"""``check_world``: does a pack come from the world of the learner it is handed in for?

Every learner's chapters run on a world of their own, generated from the seed
``learners.derive_seed(learner)``. The check has two parts:

1. **The records.** Each chapter's ``run.json`` (and the manifest's ``parameters``) must name
   the learner, the learner's seed and ``seed_source: "learner"``. A pack built without
   ``--learner``, with ``--seed`` (an override) or for another learner fails here, each with
   its own detail.
2. **The raw artifacts.** Records are easy to rewrite, so the grader regenerates the
   learner's worlds (``mlops_kit.datasets``, built the way the chapters build them) and
   checks that the rows a chapter saved are rows of those worlds (``PROBES``: one or two
   saved tables per chapter, compared on identifying columns such as transaction ids and
   microsecond event times). A pack built for bob and edited to say alice (learner fields
   and seeds rewritten, manifest re-hashed) still holds bob's rows and fails here.

Chapter 4 saves no table that is a direct function of its world (its saved rows are model
scores and registry records), so only its records are checked. A pack with no probe
artifact at all (e.g. one recorded without the notebooks) is reported as
``"unchecked"`` ("no world artifact to check"), never as a mismatch.

What a match does not prove: who ran the notebooks. Anyone holding a learner's id can build
that learner's world. Regenerated worlds are cached per (world, seed, scale) in-process, so
grading a class regenerates each learner's worlds once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EvidenceError, MlopsKitError
from .layout import chapter_dirname
from .learners import COURSE_SALT, derive_seed, validate_learner_id

__all__ = ["PROBES", "WORLDS", "Probe", "WorldCheck", "check_world"]

_EPOCH = pd.Timestamp(0, tz="UTC")
_MAX_ROWS = 5_000          # rows of a saved table compared (a prefix: saved tables are samples already)


@dataclass(frozen=True)
class Probe:
    """A saved table of chapter ``chapter`` whose rows are rows of ``table`` of world ``world``."""

    chapter: int
    artifact: str
    world: str
    table: str
    columns: tuple[str, ...]


PROBES: tuple[Probe, ...] = (
    Probe(1, "asof_join_sample.csv", "default", "transactions", ("event_timestamp",)),
    Probe(1, "scoring_requests.csv", "default", "transactions", ("user_id", "amount")),
    Probe(2, "profile_history.csv", "ch02", "profiles", ("user_id", "valid_from", "credit_limit")),
    Probe(2, "training_sample_pit.csv", "ch02", "transactions", ("transaction_id", "user_id", "event_timestamp")),
    Probe(3, "quality_fixed.parquet", "ch03_messy", "transactions", ("transaction_id", "user_id", "event_timestamp")),
    Probe(5, "canary_good_routing.csv", "ch05", "traffic", ("key", "event_timestamp")),
    Probe(6, "train.parquet", "ch06", "transactions", ("transaction_id", "user_id", "event_timestamp")),
)


def _default_world(seed: int, scale: float) -> Any:
    from ..datasets import Scenario, generate_world

    return generate_world(Scenario.default().with_scale(scale), seed=seed)


def _ch02_world(seed: int, scale: float) -> Any:
    from ..labs import ch02

    return ch02.make_world(seed=seed, scale=scale)


def _ch03_messy(seed: int, scale: float) -> Any:
    """The messy world of ``labs.ch03.make_data`` alone (the other three are not needed)."""
    from ..datasets import Scenario, generate_world

    return generate_world(Scenario.messy().with_scale(scale), seed=seed)


def _ch05_world(seed: int, scale: float) -> Any:
    from ..labs import ch05

    return ch05.make_world(seed=seed, scale=scale)


def _ch06_world(seed: int, scale: float) -> Any:
    from ..labs import ch06

    return ch06.make_world(seed=seed, scale=scale)


WORLDS: dict[str, Callable[[int, float], Any]] = {
    "default": _default_world, "ch02": _ch02_world, "ch03_messy": _ch03_messy,
    "ch05": _ch05_world, "ch06": _ch06_world}


@dataclass(kw_only=True)
class WorldCheck:
    """The verdict for one pack: ``status`` is ``"ok"``, ``"mismatch"`` or ``"unchecked"``."""

    learner: str
    seed: int
    status: str
    problems: list[str] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False only for a mismatch: an unchecked pack is not flagged."""
        return self.status != "mismatch"

    @property
    def detail(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        if self.status == "unchecked":
            return "no world artifact to check"
        return f"{len(self.artifacts)} saved table(s) are rows of the world of {self.learner!r} (seed {self.seed})"

    def to_dict(self) -> dict[str, Any]:
        return {"learner": self.learner, "seed": self.seed, "status": self.status, "detail": self.detail,
                "problems": list(self.problems), "artifacts": [dict(a) for a in self.artifacts]}


def _normalize(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The key columns in one comparable form: times as integer microseconds, amounts to 4 places."""
    out = {}
    for name in columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col) or name.endswith(("timestamp", "_from", "_at")):
            stamps = pd.to_datetime(col, utc=True, format="ISO8601")
            out[name] = ((stamps - _EPOCH) // pd.Timedelta(microseconds=1)).astype("int64")
        elif pd.api.types.is_float_dtype(col):
            out[name] = col.astype("float64").round(4)
        elif pd.api.types.is_integer_dtype(col):
            out[name] = col.astype("int64")
        else:
            out[name] = col.astype(str)
    return pd.DataFrame(out)


def _row_hashes(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    return pd.util.hash_pandas_object(_normalize(frame, columns), index=False).to_numpy()


@lru_cache(maxsize=2)
def _world(name: str, seed: int, scale: float) -> Any:
    return WORLDS[name](seed, scale)


@lru_cache(maxsize=32)
def _world_hashes(name: str, table: str, columns: tuple[str, ...], seed: int, scale: float) -> np.ndarray:
    world = _world(name, seed, scale)
    frame = world[table] if isinstance(world, Mapping) else getattr(world, table)
    return np.sort(_row_hashes(frame, columns))


def _read_saved(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path, columns=list(columns)).head(_MAX_ROWS)
    return pd.read_csv(path, usecols=list(columns), nrows=_MAX_ROWS)


def _run_records(pack: Path) -> dict[int, dict[str, Any]]:
    records = {}
    for folder in sorted(pack.glob("ch[0-9][0-9]")):
        try:
            records[int(folder.name[2:])] = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            records[int(folder.name[2:])] = {}
    return records


def _record_problem(record: Mapping[str, Any], learner: str, seed: int) -> str | None:
    """What is wrong with one chapter's ``run.json`` for ``learner`` (None: nothing)."""
    if not isinstance(record, Mapping) or not record:
        return "no readable run record"
    got, source, ran = record.get("learner"), record.get("seed_source"), record.get("seed")
    if got is None:
        return f"built without --learner (seed {ran!r}), not on the world of {learner!r}"
    if got != learner:
        return f"built for {got!r}, not {learner!r}"
    if source == "override":
        return f"ran on an overridden seed {ran!r} (--seed), not the seed of {learner!r} ({seed})"
    if ran != seed or source != "learner":
        return f"ran on seed {ran!r} (seed_source {source!r}); the seed of {learner!r} is {seed}"
    return None


def _grouped(found: Mapping[int, str | None]) -> list[str]:
    """One line per distinct problem, naming its chapters: ``chapters 1, 2: built for 'bob', ...``."""
    by_problem: dict[str, list[int]] = {}
    for chapter, problem in sorted(found.items()):
        if problem is not None:
            by_problem.setdefault(problem, []).append(chapter)
    return [f"chapter{'s' if len(ns) > 1 else ''} {', '.join(map(str, ns))}: {problem}"
            for problem, ns in by_problem.items()]


def _scale(record: Mapping[str, Any]) -> float | None:
    scale = record.get("scale", 1) if isinstance(record, Mapping) else 1
    scale = 1 if scale is None else scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 16:
        return None
    return float(scale)


def _probe(pack: Path, probe: Probe, seed: int, scale: float) -> dict[str, Any] | None:
    path = pack / chapter_dirname(probe.chapter) / probe.artifact
    if not path.is_file():
        return None
    where = f"{chapter_dirname(probe.chapter)}/{probe.artifact}"
    try:
        saved = _row_hashes(_read_saved(path, probe.columns), probe.columns)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"artifact": where, "rows": 0, "unmatched": None, "ok": False,
                "error": f"not readable as a saved table ({type(exc).__name__}: {str(exc)[:120]})"}
    try:
        known = _world_hashes(probe.world, probe.table, probe.columns, seed, scale)
    except MlopsKitError as exc:  # a scale the chapter's world refuses
        return {"artifact": where, "rows": int(len(saved)), "unmatched": None, "ok": False,
                "error": f"not checkable: the world at scale {scale:g} cannot be regenerated ({str(exc)[:120]})"}
    found = known[np.minimum(np.searchsorted(known, saved), len(known) - 1)] == saved if len(known) else saved != saved
    unmatched = int((~found).sum())
    return {"artifact": where, "rows": int(len(saved)), "unmatched": unmatched,
            "ok": unmatched == 0 and len(saved) > 0}


def check_world(pack: str | os.PathLike[str], learner: str, *, salt: str = COURSE_SALT) -> WorldCheck:
    """Check that ``pack`` was built on ``learner``'s world: its records, then its raw rows.

    Raises ``ValidationError`` for an unusable learner id and ``EvidenceError`` when ``pack``
    is not a folder; everything wrong with the pack itself is a problem in the verdict.
    """
    validate_learner_id(learner)
    root = Path(pack)
    if not root.is_dir():
        raise EvidenceError(f"world check: {str(root)!r} is not an evidence pack folder.",
                            fix="Pass the pack folder (the one holding manifest.json).")
    seed = derive_seed(learner, salt=salt)
    problems: list[str] = []
    try:
        params = json.loads((root / "manifest.json").read_text(encoding="utf-8")).get("parameters") or {}
    except (OSError, ValueError, AttributeError):
        params = {}
    if isinstance(params, Mapping) and params.get("learner") not in (None, learner):
        problems.append(f"the pack was built for {params['learner']!r}")
    records = _run_records(root)
    problems += _grouped({chapter: _record_problem(record, learner, seed) for chapter, record in records.items()})
    scales = {chapter: _scale(record) for chapter, record in records.items()}
    problems += _grouped({chapter: f"no usable scale ({records[chapter].get('scale')!r})"
                          for chapter, scale in scales.items() if scale is None and records[chapter]})
    artifacts = []
    for probe in PROBES:
        if scales.get(probe.chapter) is None:
            continue
        result = _probe(root, probe, seed, scales[probe.chapter])
        if result is None:
            continue
        artifacts.append(result)
        if result.get("error"):
            problems.append(f"{result['artifact']} is {result['error']}")
        elif not result["ok"]:
            problems.append(f"{result['artifact']}: {result['unmatched']} of {result['rows']} saved rows are "
                            f"not rows of the world of {learner!r} (seed {seed})")
    status = "mismatch" if problems else ("ok" if artifacts else "unchecked")
    return WorldCheck(learner=learner, seed=seed, status=status, problems=problems, artifacts=artifacts)
