"""A real ``mlflow server`` for the bridge tests: one per test session, on a free loopback port.

The server keeps its SQLite backend store and its artifact root in a temporary folder and
is stopped (its whole process group) at the end of the session. Without mlflow installed
the MLflow tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = 'mlflow not installed: pip install -e ".[mlflow]"'
START_TIMEOUT_S = 180.0  # about 12 s on an idle machine (first start migrates the database)


def missing_mlflow_outcome(env: dict[str, str]) -> str:
    """What a missing mlflow does to the MLflow tests: 'fail' under CI, else 'skip'."""
    return "fail" if env.get("CI", "").lower() == "true" else "skip"


def mlflow_or_skip() -> None:
    """Skip the calling test without mlflow (fail under CI=true)."""
    if importlib.util.find_spec("mlflow") is None:
        if missing_mlflow_outcome(dict(os.environ)) == "fail":
            pytest.fail(f"{INSTALL_HINT}; under CI=true the MLflow tests must run, not skip.")
        pytest.skip(INSTALL_HINT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MlflowServer:
    """One private ``mlflow server`` process group on 127.0.0.1."""

    folder: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def start(self) -> "MlflowServer":
        self.port = free_port()
        store, artifacts = self.folder / "mlflow.db", self.folder / "artifacts"
        artifacts.mkdir(exist_ok=True)
        args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", "1", "--backend-store-uri", f"sqlite:///{store}",
                "--default-artifact-root", str(artifacts)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
        with open(self.folder / "server.log", "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._answers():
                return self
            time.sleep(0.5)
        tail = (self.folder / "server.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"mlflow server did not answer /health on port {self.port}; log tail:\n{tail}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a job worker the server left behind
        except ProcessLookupError:
            pass
        self.proc = None


_SESSION: dict[str, MlflowServer] = {}


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """This session's MLflow server (shared by every module that imports this fixture)."""
    mlflow_or_skip()
    server = _SESSION.get("server")
    if server is None:
        server = _SESSION["server"] = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    if _SESSION.get("server") is server:
        del _SESSION["server"]
        server.stop()


@pytest.fixture
def mlflow_uri(mlflow_server):
    return mlflow_server.url


@pytest.fixture
def down_uri():
    """The URL of a loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def unique_name(request):
    """An MLflow model name of this test only (tests share one server)."""
    return "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name)[:60].strip("-")


def log_foreign(uri: str, name: str, model, *, signature=None, fmt: str = "skops", params=None, metrics=None,
                run_tags=None):
    """Log ``model`` to MLflow the way a team would without the kit; returns the new model version."""
    import tempfile

    import mlflow.sklearn
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("team") or None
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("team")
    run = client.create_run(experiment_id, tags=run_tags or {})
    for key, value in (params or {}).items():
        client.log_param(run.info.run_id, key, value)
    for key, value in (metrics or {}).items():
        client.log_metric(run.info.run_id, key, value)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.sklearn.save_model(model, f"{tmp}/model", serialization_format=fmt, signature=signature,
                                  pip_requirements=["scikit-learn"])
        client.log_artifacts(run.info.run_id, f"{tmp}/model", "model")
    try:
        client.get_registered_model(name)
    except Exception:
        client.create_registered_model(name)
    return client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
