"""Validation of names used across the registry (models, aliases, actors, roles, views)."""

from __future__ import annotations

import re
from typing import Any

from ..errors import ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(kind: str, value: Any, *, where: str) -> str:
    """Validate a model name, alias, actor or role (letters, digits, ``_.-``)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationError(f"{where}: {kind} must be 1-128 characters of letters, digits, '_', '.', '-' "
                              f"starting with a letter or digit; got {value!r}.",
                              fix=f"Pass a {kind} such as 'fraud-detector'.", **{kind: value})
    return value
