"""Per-learner worlds: the seed a learner's chapters run on, derived from the learner id.

Every learner builds the same six chapters, but each on a world of their own, so two packs
built for two learners never hold the same data and a pack handed in under another name
shows it. The derivation is stable and documented, so an instructor (or the grader) can
re-derive any learner's seed::

    seed = int.from_bytes(sha256(f"{salt}:{learner}".encode("utf-8")).digest()[:4], "big") >> 1

that is, the first 31 bits of the SHA-256 of ``salt:learner`` (an integer in ``[0, 2**31)``).
The salt is ``COURSE_SALT`` unless a course passes its own.

How a run's seed is chosen (``resolve_seed``):

=================  ==============  ==================================================
``seed`` given     ``learner``     seed used / recorded ``seed_source``
=================  ==============  ==================================================
no                 no              ``DEFAULT_SEED`` (7) / ``"default"``
no                 yes             ``derive_seed(learner)`` / ``"learner"``
yes                no              the given seed / ``"explicit"``
yes                yes             the given seed / ``"override"`` (not the learner's)
=================  ==============  ==================================================

>>> derive_seed("ada") == derive_seed("ada") != derive_seed("grace")
True
>>> resolve_seed(None, "ada") == (derive_seed("ada"), "learner")
True
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..errors import ValidationError

__all__ = ["COURSE_SALT", "DEFAULT_SEED", "LEARNER_ID_RE", "SEED_SOURCES", "derive_seed", "resolve_seed",
           "validate_learner_id"]

COURSE_SALT = "mlops-kit-practicum"
DEFAULT_SEED = 7
SEED_SOURCES = ("default", "learner", "explicit", "override")

LEARNER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")


def validate_learner_id(learner: Any, *, what: str = "learner") -> str:
    """Return ``learner`` if it is a usable id: 1-128 letters, digits, ``_ . @ + -``.

    The same rule names submissions in ``grade-class`` (a pack folder or archive is named by
    the learner id), so an id that builds also grades.
    """
    if not isinstance(learner, str) or not LEARNER_ID_RE.match(learner) or ".." in learner:
        raise ValidationError(
            f"{what} id {learner!r} is not usable: it must be 1-128 letters, digits, "
            "'_', '.', '@', '+' or '-', starting with a letter or digit.",
            fix="Use the id from the course roster, e.g. 'ada-lovelace' or 's1234567'.")
    return learner


def derive_seed(learner: str, *, salt: str = COURSE_SALT) -> int:
    """The learner's seed: the first 31 bits of ``sha256(f"{salt}:{learner}")``."""
    validate_learner_id(learner)
    if not isinstance(salt, str) or not salt:
        raise ValidationError(f"course salt must be a non-empty string, got {salt!r}.",
                              fix=f"Leave it at the default {COURSE_SALT!r} or pass the course's own salt.")
    digest = hashlib.sha256(f"{salt}:{learner}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def resolve_seed(seed: Any, learner: Any, *, salt: str = COURSE_SALT) -> tuple[int, str]:
    """``(seed, seed_source)`` for a run given its ``seed`` and ``learner`` parameters (see the table)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValidationError(f"seed must be an integer >= 0 or None, got {seed!r}.",
                              fix="Leave seed = None (the learner's or the course default) or pass e.g. 7.")
    if learner is not None:
        validate_learner_id(learner)
    if seed is None:
        return (derive_seed(learner, salt=salt), "learner") if learner is not None else (DEFAULT_SEED, "default")
    return seed, ("override" if learner is not None else "explicit")
