"""The criterion registry, the ``Grade`` a criterion returns and the context it reads from."""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DefinitionError
from ..layout import chapter_dirname
from ..manifest import IntegrityProblem
from ..rubric import LEVELS

__all__ = ["Grade", "GradingContext", "MissingEvidence", "criterion", "registered_criteria"]

_REGISTRY: dict[str, Callable[["GradingContext"], "Grade"]] = {}


class MissingEvidence(Exception):
    """Raised by context readers when an artifact a criterion needs is absent or unreadable."""


@dataclass(frozen=True)
class Grade:
    """A criterion's verdict: ``level`` 0 (missing), 2 (partial) or 4 (complete), and why."""

    level: int
    why: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise DefinitionError(f"Grade: level must be one of {LEVELS}, got {self.level!r}.",
                                  fix="Return Grade(0|2|4, why).")
        if not self.why:
            raise DefinitionError("Grade: why must say what was found.", fix="Explain the level.")


def criterion(criterion_id: str) -> Callable[[Callable[["GradingContext"], Grade]],
                                             Callable[["GradingContext"], Grade]]:
    """Register a grading function for the rubric row ``criterion_id``.

    The function takes a ``GradingContext`` and returns a ``Grade``. Put chapter criteria in
    ``mlops_kit/evidence/grading/chNN.py``; every such module is discovered automatically.
    """

    def register(func: Callable[["GradingContext"], Grade]) -> Callable[["GradingContext"], Grade]:
        if criterion_id in _REGISTRY and _REGISTRY[criterion_id] is not func:
            raise DefinitionError(f"Criterion {criterion_id!r} is registered twice.",
                                  fix="Give each rubric row exactly one grading function.")
        _REGISTRY[criterion_id] = func
        return func

    return register


def registered_criteria() -> dict[str, Callable[["GradingContext"], Grade]]:
    """Import the generic and every ``chNN`` grading module; return id -> function."""
    package = __name__.rsplit(".", 1)[0]
    importlib.import_module(f"{package}.generic")
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("ch") and info.name[2:].isdigit():
            importlib.import_module(f"{package}.{info.name}")
    return dict(sorted(_REGISTRY.items()))


class GradingContext:
    """Read access to a pack for criteria: files, JSON, tables, manifest and integrity."""

    def __init__(self, pack: Path, manifest: dict[str, Any] | None,
                 problems: list[IntegrityProblem]) -> None:
        self.pack = pack
        self.manifest = manifest or {}
        self.problems = problems

    # -- pack facts -------------------------------------------------------------------
    @property
    def chapters(self) -> dict[str, Any]:
        chapters = self.manifest.get("chapters")
        return chapters if isinstance(chapters, dict) else {}

    def chapter_status(self, chapter: int) -> dict[str, Any] | None:
        status = self.chapters.get(str(chapter))
        return status if isinstance(status, dict) else None

    def chapter_dir(self, chapter: int) -> str:
        return chapter_dirname(chapter)

    def tampered(self, rel: str) -> bool:
        """True when the integrity check named ``rel`` (edited, missing or extra)."""
        return any(p.path == rel for p in self.problems)

    # -- readers (raise MissingEvidence, which grades the criterion 0) ----------------
    def path(self, rel: str) -> Path:
        path = self.pack / rel
        if not path.is_file():
            raise MissingEvidence(f"{rel} is missing")
        return path

    def exists(self, rel: str) -> bool:
        return (self.pack / rel).is_file()

    def read_json(self, rel: str) -> Any:
        try:
            return json.loads(self.path(rel).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MissingEvidence(f"{rel} is not valid JSON ({exc})") from exc

    def read_table(self, rel: str) -> Any:
        import pandas as pd

        path = self.path(rel)
        try:
            return pd.read_parquet(path) if rel.endswith(".parquet") else pd.read_csv(path)
        except Exception as exc:  # any parse failure means the evidence is unusable
            raise MissingEvidence(f"{rel} could not be read as a table ({exc})") from exc
