"""Engine fixtures: a real ``redis-server`` per test session (per xdist worker) on loopback.

``online_workspace`` and ``online_store`` are parametrised over ``sqlite`` and ``redis``; a
Redis test gets an empty database (FLUSHALL) on its worker's own server. Without the
``redis-server`` binary the Redis cases skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .spark_fixtures import offline_engine, spark  # noqa: F401 - Spark engine fixtures

INSTALL_HINT = "redis-server not found: apt-get install redis-server (or run scripts/test.sh as root)"


def redis_server_binary() -> str | None:
    """Path of the redis-server executable, or None."""
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


def missing_server_outcome(env: dict[str, str]) -> str:
    """What a missing redis-server does to the Redis tests: 'fail' under CI, else 'skip'."""
    return "fail" if env.get("CI", "").lower() == "true" else "skip"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    """One private redis-server process on 127.0.0.1."""

    binary: str
    folder: Path
    port: int = 0
    password: str | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> "RedisServer":
        import redis

        for _ in range(5):
            self.port = port or free_port()
            args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self.folder)]
            if self.password:
                args += ["--requirepass", self.password]
            log = open(self.folder / f"redis-{self.port}.log", "wb")
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                                 socket_connect_timeout=0.2, protocol=2)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if client.ping():
                        client.close()
                        return self
                except redis.RedisError:
                    time.sleep(0.02)
            client.close()
            self.stop()
            if port is not None:
                break
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}; see {self.folder}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def flush(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, protocol=2)
        client.flushall()
        client.close()


def redis_binary_or_skip() -> str:
    """The redis-server binary; skip the test without one (fail under CI=true)."""
    binary = redis_server_binary()
    if binary is None:
        if missing_server_outcome(dict(os.environ)) == "fail":
            pytest.fail(f"{INSTALL_HINT}; under CI=true the Redis tests must run, not skip.")
        pytest.skip(INSTALL_HINT)
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """This session's (this xdist worker's) redis-server; yields the ``RedisServer``."""
    server = RedisServer(redis_binary_or_skip(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def start_redis(tmp_path):
    """Start extra private servers for fault tests: ``start_redis(password=None, port=None)``."""
    started: list[RedisServer] = []

    def start(password: str | None = None, port: int | None = None) -> RedisServer:
        folder = tmp_path / f"redis-{len(started)}"
        folder.mkdir()
        server = RedisServer(redis_binary_or_skip(), folder, password=password).start(port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def engine(request) -> str:
    """``"sqlite"`` or the URL of an empty Redis database."""
    if request.param == "sqlite":
        return "sqlite"
    server = request.getfixturevalue("redis_server")
    server.flush()
    return server.url


@pytest.fixture
def online_workspace(workspace, engine):
    """A fresh workspace whose ``feature_store.toml`` names the engine under test."""
    if engine != "sqlite":
        (workspace.root / "feature_store.toml").write_text(f'online_store = "{engine}"\n', encoding="utf-8")
    return workspace


@pytest.fixture
def online_store(engine, tmp_path):
    """A bare ``OnlineStore`` of the engine under test (closed after the test)."""
    from mlops_kit.features import RedisOnlineStore, SqliteOnlineStore

    store = (SqliteOnlineStore(tmp_path / "online.sqlite") if engine == "sqlite"
             else RedisOnlineStore(engine, namespace="test"))
    yield store
    store.close()
