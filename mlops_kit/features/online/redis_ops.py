"""Stop and restart the real ``redis-server`` behind a loopback online-store URL (outage drills).

:class:`RedisServerControl` finds the server process of a ``redis://`` URL from the server
itself (``INFO server``: ``process_id``, ``executable``, ``tcp_port``, ``run_id``,
``config_file``; ``CONFIG GET`` for ``dir``, ``save``, ``appendonly`` and the other settings a
restart must keep), stops it with ``SHUTDOWN NOSAVE`` and starts it again on the same port with
the same settings.

Why ``SHUTDOWN NOSAVE`` and not ``SIGSTOP``/``SIGCONT``: a stopped (hung) process keeps its
socket open, so every read waits for the client's socket timeout (30 s per read in
``RedisOnlineStore``) and the drill measures the timeout, not the serving path's handling;
it also keeps every key, so nothing about recovery is learned. A shutdown is what a crash or
an OOM kill looks like to the client (connection refused at once, the real
``OnlineStoreUnavailableError`` path), and a restart is a real runbook step: a server without
persistence (``save ""``, ``appendonly no``) comes back empty, so the online store must be
re-materialized. ``NOSAVE`` keeps the drill honest on persistent servers too: only what was
already on disk (the AOF, or the last RDB snapshot) survives, as after a crash.

Refusals (``ValidationError``, nothing is stopped): a host that is not loopback; a server whose
listening port is not the URL's (a proxy or container port mapping); a process id that is not
a live process of this machine, or one this user may not signal; a process that is not a
``redis-server`` binary; a server run by a service manager (``supervised``); a working
directory this user cannot write; settings that cannot be read (``CONFIG`` disabled).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import OnlineStoreUnavailableError, ValidationError
from ..config import mask_url, parse_online_store

try:  # the optional extra: pip install -e ".[redis]"
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - exercised only without the extra
    _redis = None  # type: ignore[assignment]

__all__ = ["RedisServerInfo", "RedisServerControl", "is_loopback"]

#: settings carried over to the restarted server (those the server reports; newer ones may be absent)
KEPT_SETTINGS = ("bind", "dir", "dbfilename", "save", "appendonly", "appendfilename", "appenddirname",
                 "appendfsync", "databases", "requirepass", "protected-mode", "maxmemory", "maxmemory-policy",
                 "logfile")
_MULTI = ("save", "bind")  # written unquoted: several words are several values


def is_loopback(host: str) -> bool:
    """``localhost`` or an address of 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class RedisServerInfo:
    """What the server says about itself (the password is never kept here)."""

    pid: int
    run_id: str
    port: int
    version: str
    executable: str
    binary: str | None
    config_file: str
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def persistent(self) -> bool:
        """Whether anything survives a restart (an RDB save rule or the AOF)."""
        return bool(self.settings.get("save", "").strip()) or self.settings.get("appendonly") == "yes"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (process facts and the non-secret settings)."""
        return {"pid": self.pid, "run_id": self.run_id, "port": self.port, "version": self.version,
                "binary": self.binary, "config_file": self.config_file, "persistent": self.persistent,
                "settings": {k: v for k, v in self.settings.items() if k != "requirepass"}}


def _process_state(pid: int) -> str:
    """``alive``, ``gone`` or ``foreign`` (exists, but this user may not signal it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "foreign"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "alive"
    return "gone" if stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"]) else "alive"


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _restart_conf(folder: Path, port: int) -> Path:
    return folder / f"mlops-kit-restart-{port}.conf"


def _original_config(config_file: str) -> str:
    """The config file a restart includes: the server's own, or the one an earlier restart included."""
    path = Path(config_file) if config_file else None
    if path is None or not path.name.startswith("mlops-kit-restart-"):
        return config_file
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("include "):
            return line[len("include "):].strip().strip('"')
    return ""


def _conf_line(name: str, value: str) -> str:
    if name in _MULTI:
        return f"{name} {value}" if value.strip() else f'{name} ""'
    return f'{name} "' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RedisServerControl:
    """Stop and restart the redis-server of a loopback URL: ``RedisServerControl("redis://127.0.0.1:6379/0")``.

    ``check()`` probes the server and refuses one it could not bring back; ``stop()`` checks,
    then shuts it down (``SHUTDOWN NOSAVE``) and waits until the process has exited and the
    port is closed; ``start()`` starts the same binary with the recorded settings on the same
    port (a config file written to the server's ``dir``, mode 0600, that ``include``s the
    original config file first) and waits for ``PING``. The restarted server runs in its own
    session, so it outlives this process. Both return what they measured; wall-clock seconds
    come from ``timer`` (default ``time.perf_counter``) and are measurements, not results.
    """

    def __init__(self, url: str, *, start_timeout: float = 10.0,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        cfg = parse_online_store(url, "RedisServerControl(url)")
        if cfg.kind != "redis":
            raise ValidationError(f"RedisServerControl: {cfg.kind!r} is not a Redis URL; only a Redis server "
                                  "process can be stopped and restarted.", fix="Pass e.g. 'redis://127.0.0.1:6379/0'.")
        if not is_loopback(str(cfg.host)):
            raise ValidationError(f"RedisServerControl: {mask_url(cfg.url or '')} is not on this machine "
                                  f"(host {cfg.host!r}); only a loopback server can be stopped and restarted here.",
                                  fix="Run the drill against a private redis-server on 127.0.0.1, or use the "
                                      "simulated outage (online_store='sqlite').", reason="not loopback")
        if isinstance(start_timeout, bool) or not isinstance(start_timeout, (int, float)) or start_timeout <= 0:
            raise ValidationError(f"RedisServerControl: start_timeout must be seconds > 0, got {start_timeout!r}.",
                                  fix="Use e.g. start_timeout=10.")
        if _redis is None:  # pragma: no cover - exercised only without the extra
            raise OnlineStoreUnavailableError("RedisServerControl: the redis client library is not installed.",
                                              fix='pip install -e ".[redis]"', url=mask_url(cfg.url or ""))
        self.config, self.url = cfg, mask_url(cfg.url or "")
        self.start_timeout, self.timer = float(start_timeout), timer
        self.last: RedisServerInfo | None = None
        self._proc: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"RedisServerControl({self.url!r})"

    # -- probing ----------------------------------------------------------------------------------
    def _client(self) -> Any:
        cfg = self.config
        return _redis.Redis(host=cfg.host, port=cfg.port, db=cfg.db, password=cfg.password, protocol=2,
                            socket_connect_timeout=1.0, socket_timeout=5.0, decode_responses=True,
                            retry=Retry(NoBackoff(), 0))  # a refused connection is an answer here

    def is_up(self) -> bool:
        """Whether the server answers ``PING``."""
        client = self._client()
        try:
            return bool(client.ping())
        except _redis.RedisError:
            return False
        finally:
            client.close()

    def dbsize(self) -> int:
        """Keys in the URL's database."""
        client = self._client()
        try:
            return int(client.dbsize())
        except _redis.RedisError as exc:
            raise OnlineStoreUnavailableError(f"{self.url}: DBSIZE failed: {type(exc).__name__}: {exc}.",
                                              fix="Check that the server is running.", url=self.url) from exc
        finally:
            client.close()

    def probe(self) -> RedisServerInfo:
        """Ask the server for its process, binary and settings (``OnlineStoreUnavailableError`` when down)."""
        client = self._client()
        try:
            info = client.info("server")
            settings: dict[str, str] = {}
            for name in (*KEPT_SETTINGS, "supervised"):
                settings.update({str(k): str(v) for k, v in client.config_get(name).items()})
        except _redis.ResponseError as exc:
            raise ValidationError(f"{self.url}: the server refused INFO/CONFIG ({exc}); its settings cannot be "
                                  "read, so it could not be restarted as it was.",
                                  fix="Use a private redis-server with CONFIG enabled.", reason="config") from exc
        except _redis.RedisError as exc:
            raise OnlineStoreUnavailableError(f"{self.url} is unavailable: {type(exc).__name__}: {exc}.",
                                              fix=f"Start redis-server on port {self.config.port} first.",
                                              url=self.url) from exc
        finally:
            client.close()
        pid = int(info["process_id"])
        try:
            binary: str | None = os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            exe = str(info.get("executable", ""))
            binary = os.path.realpath(exe) if exe and os.access(exe, os.X_OK) else None
        return RedisServerInfo(pid=pid, run_id=str(info["run_id"]), port=int(info["tcp_port"]),
                               version=str(info.get("redis_version", "")), executable=str(info.get("executable", "")),
                               binary=binary, config_file=str(info.get("config_file", "")), settings=settings)

    def _problems(self, info: RedisServerInfo) -> list[str]:
        problems = []
        if info.port != self.config.port:
            problems.append(f"the URL's port {self.config.port} reaches a server listening on {info.port} "
                            "(a proxy or a port mapping)")
        state = _process_state(info.pid)
        if state == "gone":
            problems.append(f"its process id {info.pid} is not a process of this machine (a container or "
                            "another host behind the loopback port?)")
        elif state == "foreign":
            problems.append(f"its process {info.pid} belongs to another user")
        if info.binary is None or not os.access(info.binary, os.X_OK):
            problems.append(f"its binary {info.binary or info.executable!r} cannot be found or run")
        elif state == "alive" and not os.path.basename(info.binary).startswith("redis-"):
            problems.append(f"process {info.pid} runs {info.binary}, not a redis-server binary")
        if info.settings.get("supervised", "no") not in ("no", ""):
            problems.append("it is run by a service manager (supervised)")
        folder = info.settings.get("dir", "")
        if not folder or not os.access(folder, os.W_OK):
            problems.append(f"its working directory {folder!r} is not writable by this user")
        if info.config_file and not os.access(info.config_file, os.R_OK):
            problems.append(f"its config file {info.config_file} cannot be read")
        return problems

    def check(self) -> RedisServerInfo:
        """Probe, and refuse (``ValidationError``) a server this process could not restart."""
        info = self.probe()
        problems = self._problems(info)
        if problems:
            raise ValidationError(f"RedisServerControl: {self.url} cannot be stopped and restarted from here: "
                                  + "; ".join(problems) + ".",
                                  fix="Use a private redis-server started by this user on 127.0.0.1, or the "
                                      "simulated outage.", reason="cannot restart", problems=problems)
        self.last = info
        return info

    # -- stop and start ---------------------------------------------------------------------------
    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not done():
            if self._proc is not None:
                self._proc.poll()  # reap a server this object started
            if time.monotonic() > deadline:
                raise OnlineStoreUnavailableError(f"{self.url}: {what} within {self.start_timeout:g} s.",
                                                  fix="Check the server log in its dir.", url=self.url)
            time.sleep(0.02)

    def _shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``; a server that refuses for now (the first AOF rewrite after
        ``appendonly yes`` is still running) is asked again until ``start_timeout``."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            client = self._client()
            try:
                client.shutdown(nosave=True)
                return
            except _redis.ConnectionError:
                return  # the server closed the connection while exiting: expected
            except _redis.ResponseError as exc:
                if time.monotonic() > deadline:
                    raise OnlineStoreUnavailableError(
                        f"{self.url} refused SHUTDOWN NOSAVE for {self.start_timeout:g} s: {exc}.",
                        fix="Read the server log (an AOF rewrite or a replica sync may be running).",
                        url=self.url) from exc
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> dict[str, Any]:
        """Check, then ``SHUTDOWN NOSAVE``; wait for the process to exit and the port to close."""
        info = self.check()
        keys = self.dbsize()
        started = self.timer()
        self._shutdown()
        self._wait(lambda: _process_state(info.pid) == "gone" and not _port_open(info.port),
                   f"process {info.pid} did not exit after SHUTDOWN NOSAVE")
        return {"pid": info.pid, "run_id": info.run_id, "keys": keys, "persistent": info.persistent,
                "stop_s": round(self.timer() - started, 4)}

    def start(self) -> dict[str, Any]:
        """Start the stopped server again (same binary, port and settings); wait for ``PING``."""
        info = self.last
        if info is None:
            raise ValidationError(f"RedisServerControl: start() before stop() for {self.url}; nothing is known "
                                  "about the server to restart.", fix="Call stop() first.")
        if self.is_up() or _port_open(info.port):
            raise ValidationError(f"RedisServerControl: port {info.port} is already served; the server was "
                                  "restarted by someone else, or never stopped.", fix="Call stop() first.")
        folder = Path(info.settings["dir"])
        conf = _restart_conf(folder, info.port)
        origin = _original_config(info.config_file)
        lines = [f'include "{origin}"'] if origin else []
        lines += [f"port {info.port}", "daemonize no", "supervised no"]
        lines += [_conf_line(k, v) for k, v in info.settings.items() if k in KEPT_SETTINGS and (v or k == "save")]
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        started = self.timer()
        with open(folder / f"mlops-kit-restart-{info.port}.log", "ab") as log:
            self._proc = subprocess.Popen(["redis-server", str(conf)], executable=info.binary, cwd=folder,
                                          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        proc = self._proc

        def up() -> bool:
            if proc.poll() is not None:
                raise OnlineStoreUnavailableError(
                    f"{self.url}: the restarted redis-server exited with code {proc.returncode}.",
                    fix=f"Read {folder / f'mlops-kit-restart-{info.port}.log'}.", url=self.url)
            return self.is_up()

        self._wait(up, "the restarted server did not answer PING")
        new = self.probe()
        self.last = new
        return {"pid": new.pid, "run_id": new.run_id, "keys": self.dbsize(), "start_s": round(self.timer() - started, 4)}
