"""Store engines for a build: ``--online-store`` / ``--offline-engine`` go to the chapters that take them.

A chapter that exercises the store's engines declares ``online_store`` and/or
``offline_engine`` in its ``parameters`` cell (chapter 2 both, chapter 6 ``online_store``);
chapter 4 declares ``mlflow_uri`` (its optional MLflow part, off when None).
An engine given to a build is passed to every selected chapter that declares it and to no
other; an engine that no selected chapter declares is refused, naming the chapters that do.
Values are checked with the store configuration's own parsers before anything runs, so a
typo in a URL fails in a second, not after a chapter's worth of kernel time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import NotebookParameterError, ValidationError

__all__ = ["ENGINE_PARAMETERS", "declared_parameters", "engine_plans"]

ENGINE_PARAMETERS = ("online_store", "offline_engine", "mlflow_uri")


def declared_parameters(notebook: Path) -> set[str]:
    """The names a notebook's ``parameters`` cell declares (papermill's own reading)."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def _parse_mlflow_uri(value: str, *, where: str) -> str:
    from ..features.config import mask_url

    if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
        raise ValidationError(f"{where}: expected the http(s) URL of an MLflow tracking server, got "
                              f"{mask_url(value)!r}.", fix="Pass e.g. --mlflow-uri http://127.0.0.1:5000.")
    return value


def _check_values(engines: Mapping[str, Any]) -> dict[str, str]:
    from ..features.config import parse_offline_engine, parse_online_store

    parsers = {"online_store": parse_online_store, "offline_engine": parse_offline_engine,
               "mlflow_uri": _parse_mlflow_uri}
    unknown = sorted(set(engines) - set(ENGINE_PARAMETERS))
    if unknown:
        raise ValidationError(f"engines: unknown engine setting(s) {unknown}; supported: "
                              f"{list(ENGINE_PARAMETERS)}.",
                              fix="Use --online-store URL, --offline-engine ENGINE and/or --mlflow-uri URL.")
    checked: dict[str, str] = {}
    for name, value in engines.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValidationError(f"engines: {name} must be a string, got {type(value).__name__}.",
                                  fix=f"Pass e.g. {name}='sqlite'." if name == "online_store"
                                  else f"Pass e.g. {name}='spark'.")
        parsers[name](value, where=f"--{name.replace('_', '-')}")  # StoreConfigError names what is supported
        checked[name] = value
    return checked


def engine_plans(selected: Mapping[int, Path], engines: Mapping[str, Any] | None) -> dict[int, dict[str, str]]:
    """Per chapter, the engine parameters it gets (only those its parameters cell declares).

    Raises
    ------
    ValidationError, StoreConfigError
        An unknown engine setting or an unsupported value (nothing has run).
    NotebookParameterError
        An engine that no selected chapter declares.
    """
    if engines is None:
        return {number: {} for number in selected}
    if not isinstance(engines, Mapping):
        raise ValidationError(f"engines must map 'online_store'/'offline_engine' to values, got {engines!r}.",
                              fix="Pass e.g. engines={'online_store': 'redis://127.0.0.1:6379/0'}.")
    checked = _check_values(engines)
    declared = {number: declared_parameters(path) for number, path in selected.items()}
    for name in checked:
        if not any(name in names for names in declared.values()):
            raise NotebookParameterError(
                f"No selected chapter takes {name!r} (chapters {sorted(selected)} were selected).",
                fix=f"Build a chapter whose parameters cell declares {name}, e.g. --chapters 2.",
                notebook=", ".join(p.name for p in selected.values()), unknown=[name])
    return {number: {k: v for k, v in checked.items() if k in declared[number]} for number in selected}
