"""Connecting to an MLflow tracking server: the lazy import, the health check, error translation.

``mlflow`` is an optional extra (``pip install "mlops-kit[mlflow]"``) and is imported only
inside these functions, never when ``mlops_kit.registry`` is imported. Every client is built
with an explicit tracking URI (never the process-wide default), so nothing is written to
an ``mlruns/`` folder or a default database in the current directory. Credentials come from
MLflow's own ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (or
``MLFLOW_TRACKING_TOKEN``) environment variables; URLs shown in errors have passwords masked.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from ..errors import MlflowUnavailableError, RegistryError, ValidationError

__all__ = ["INSTALL_HINT", "TAG", "RECORD_PATH", "KIT_TO_MLFLOW", "MLFLOW_TO_KIT", "require_mlflow", "connect",
           "calling", "finish_run", "mask", "check_uri", "check_alias"]

INSTALL_HINT = 'pip install "mlops-kit[mlflow]"'

#: Tag keys the bridge writes (on MLflow model versions, and on the registered model).
TAG = {
    "version_id": "mlops_kit.version_id", "model": "mlops_kit.model", "version": "mlops_kit.version",
    "artifact": "mlops_kit.artifact_sha256", "spec": "mlops_kit.spec_sha256", "state": "mlops_kit.state",
    "code": "mlops_kit.code_revision", "run": "mlops_kit.training_run_id", "views": "mlops_kit.feature_views",
    "snapshots": "mlops_kit.snapshots", "audit_head": "mlops_kit.audit_head", "aliases": "mlops_kit.aliases",
    "lineage": "mlops_kit.lineage", "complete": "mlops_kit.export_complete",
    "alias_prefix": "mlops_kit.alias.",
}
#: Where the full kit record of an export lives among the run's artifacts.
RECORD_PATH = "mlops_kit/record.json"

#: Kit column dtypes and the MLflow column types they map to (one to one).
KIT_TO_MLFLOW = {"int64": "long", "float64": "double", "bool": "boolean", "string": "string",
                 "timestamp": "datetime"}
MLFLOW_TO_KIT = {v: k for k, v in KIT_TO_MLFLOW.items()}


def mask(uri: str) -> str:
    """``uri`` with any password replaced by ``***``."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def require_mlflow(where: str) -> Any:
    """The ``mlflow`` module, or an :class:`MlflowUnavailableError` saying how to install it."""
    try:
        import mlflow
    except ImportError as exc:
        raise MlflowUnavailableError(f"{where}: the mlflow package is not installed.",
                                     fix=f"Install the extra: {INSTALL_HINT}.", reason="mlflow-missing",
                                     url=None) from exc
    return mlflow


def check_uri(tracking_uri: Any, where: str) -> str:
    if not isinstance(tracking_uri, str) or not tracking_uri.startswith(("http://", "https://")):
        raise ValidationError(f"{where}: tracking_uri must be the http(s) URL of an MLflow tracking server, got "
                              f"{mask(tracking_uri) if isinstance(tracking_uri, str) else tracking_uri!r}.",
                              fix="Pass e.g. tracking_uri='http://127.0.0.1:5000' (a team server's URL).")
    return tracking_uri.rstrip("/")


def check_alias(alias: str, where: str) -> str:
    """An MLflow alias name (letters, digits, ``_`` and ``-``; not ``latest`` nor ``vN``)."""
    import re

    if not re.fullmatch(r"[\w\-]{1,255}", alias) or alias.lower() == "latest" or re.fullmatch(r"v\d+", alias):
        raise ValidationError(f"{where}: the alias {alias!r} cannot be an MLflow alias (letters, digits, '_' and "
                              "'-' only; 'latest' and 'v<number>' are reserved).",
                              fix="Rename the kit alias (e.g. 'approved-prod') before exporting.", alias=alias)
    return alias


def _health(uri: str, where: str, timeout: float) -> None:
    parts = urllib.parse.urlsplit(uri)
    bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    try:
        with urllib.request.urlopen(f"{bare}/health", timeout=timeout) as response:  # noqa: S310 - http(s) only
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return  # the server answers; authentication is checked by the first real call
        raise MlflowUnavailableError(f"{where}: the MLflow server at {mask(uri)} answered /health with HTTP "
                                     f"{exc.code}.", fix="Check that the URL points at an MLflow tracking server.",
                                     reason="unhealthy", url=mask(uri)) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise MlflowUnavailableError(f"{where}: no MLflow server answers at {mask(uri)} "
                                     f"({getattr(exc, 'reason', exc)}).",
                                     fix="Start it (mlflow server --host 127.0.0.1 --port 5000 ...) or pass the "
                                         "right tracking URI; nothing was written.",
                                     reason="down", url=mask(uri)) from exc


def connect(tracking_uri: Any, *, where: str, timeout: float = 5.0) -> Any:
    """An ``MlflowClient`` bound to ``tracking_uri`` after the server answered ``/health``."""
    uri = check_uri(tracking_uri, where)
    require_mlflow(where)
    from mlflow import MlflowClient

    _health(uri, where, timeout)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def calling(uri: str, where: str) -> Iterator[None]:
    """Turn MLflow's exceptions into kit errors; silence its progress bars meanwhile."""
    from mlflow.exceptions import MlflowException

    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    waiting = logging.getLogger("mlflow.store.model_registry.abstract_store")  # "Waiting up to 300 seconds..."
    level = waiting.level
    waiting.setLevel(logging.WARNING)
    try:
        yield
    except MlflowException as exc:
        text = str(exc).splitlines()[0][:300]
        if any(code in text for code in ("401", "403", "Unauthorized", "Forbidden", "PERMISSION_DENIED")):
            raise MlflowUnavailableError(f"{where}: the MLflow server at {mask(uri)} refused the request ({text}).",
                                         fix="Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                                             "MLFLOW_TRACKING_TOKEN) for an account with write access.",
                                         reason="refused", url=mask(uri)) from exc
        if "failed with exception" in text or "Max retries exceeded" in text:
            raise MlflowUnavailableError(f"{where}: the MLflow server at {mask(uri)} stopped answering ({text}).",
                                         fix="Check the server and run the same call again; an export left "
                                             "half done is cleaned up by the next export.",
                                         reason="down", url=mask(uri)) from exc
        raise RegistryError(f"{where}: MLflow refused the request ({text}).",
                            fix="Read MLflow's message above; check the server's log if it names no cause.",
                            url=mask(uri)) from exc
    finally:
        waiting.setLevel(level)
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def finish_run(client: Any, run_id: str, status: str) -> None:
    """End a run without MLflow's "View run at ..." lines on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status=status)
