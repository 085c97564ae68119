"""The on-disk layout of an evidence pack, shared by the recorder, build, manifest and grader.

::

    <pack>/
      manifest.json, manifest.sha256   written by the build (file hashes, versions, statuses)
      score.json, SCORE.md             written by the grader (not covered by the manifest)
      quiz_answers.json                the learner's saved quiz answers (input to the build)
      ch01/ ... ch06/                  one folder of artifacts per chapter (the recorder's)
        run.json                       chapter, seed, scale, kit version (written at start)
        checks.json                    every recorded check, rewritten after each check
        answers.json                   recorded quiz answers (no answer key)
        complete.json                  the completion marker (written by the last cell only)
        <artifacts>                    JSON, CSV/Parquet samples, PNG figures, Markdown, JSONL
      notebooks/NN_name.ipynb          executed notebooks
      html/NN_name.html                offline HTML renderings
      work/                            scratch: chapter workspaces, kernel state, logs
                                       (never hashed, never graded; safe to delete)
"""

from __future__ import annotations

import re

from ..errors import ValidationError

__all__ = [
    "AUDIT_EXPORT", "CHAPTER_RE", "IGNORED_DIRS", "IGNORED_TOP", "RESERVED", "WORK_DIR",
    "WORK_ENV", "chapter_dirname", "kit_version", "validate_chapter",
]

#: File name under which a chapter saves its registry audit-log export (JSON lines).
AUDIT_EXPORT = "audit_export.jsonl"
#: Files the recorder owns inside a chapter folder; artifacts may not use these names.
RESERVED = frozenset({"run.json", "checks.json", "answers.json", "complete.json"})
#: Scratch folder inside the pack (workspaces, kernel state); ignored by manifest and grader.
WORK_DIR = "work"
#: Environment variable that moves the scratch folder elsewhere (set by ``--workspace``).
WORK_ENV = "MLOPS_KIT_WORK_DIR"
#: Top-level files that are not part of the hashed pack.
IGNORED_TOP = frozenset({"manifest.json", "manifest.sha256", "score.json", "SCORE.md",
                         "README.md", ".gitignore"})
IGNORED_DIRS = frozenset({WORK_DIR})
#: Chapter notebooks are named ``NN_title.ipynb``.
CHAPTER_RE = re.compile(r"^(\d{2})_[A-Za-z0-9_-]+\.ipynb$")


def kit_version() -> str:
    """The kit's version (``mlops_kit.__version__``; the installed metadata as a fallback)."""
    try:
        from .. import __version__

        return str(__version__)
    except ImportError:  # the package was imported as a namespace (a stale editable install)
        import importlib.metadata

        return importlib.metadata.version("mlops-kit")


def validate_chapter(chapter: object, *, where: str = "chapter") -> int:
    """Return ``chapter`` as an int in 1..99 or raise ``ValidationError``."""
    if isinstance(chapter, bool) or not isinstance(chapter, int) or not 1 <= chapter <= 99:
        raise ValidationError(
            f"{where} must be an integer from 1 to 99, got {chapter!r}.",
            fix="Pass the chapter number, e.g. 3.",
        )
    return chapter


def chapter_dirname(chapter: int) -> str:
    """``3`` -> ``'ch03'``."""
    return f"ch{validate_chapter(chapter):02d}"
