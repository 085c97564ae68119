"""RedisServerControl against real private redis-servers: stop, restart with the same settings, refusals.

Every server here is started by the ``start_redis`` fixture (its own port and folder); the
reference for "down" and "back" is the server itself (PING refused, the fixture's process exited,
``INFO server``'s process id and run id) and the keys written before the stop.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from mlops_kit.errors import MlopsKitError, OnlineStoreUnavailableError, ValidationError
from mlops_kit.features.online import RedisServerControl, is_loopback

import redis  # noqa: E402 - the dev extra installs it; a missing client must fail, not skip


def _client(server, **kw):
    return redis.Redis(host="127.0.0.1", port=server.port, password=server.password, protocol=2, **kw)


def _stop_quietly(url: str) -> None:
    control = RedisServerControl(url)
    if control.is_up():
        control.stop()


@pytest.fixture
def controlled(start_redis):
    """A server and its control; whatever runs on its port at the end (a restarted server) is stopped."""
    made = []

    def make(password=None):
        server = start_redis(password=password)
        made.append(server)
        return server, RedisServerControl(server.url)

    yield make
    for server in made:
        _stop_quietly(server.url)


def test_stop_really_stops_and_start_brings_the_same_server_back(controlled):
    server, control = controlled()
    client = _client(server)
    client.set("k", "v")
    info = control.check()
    assert info.pid == server.proc.pid and info.port == server.port
    assert os.path.realpath(info.binary) == os.path.realpath(server.binary)
    assert info.settings["dir"] == str(server.folder) and not info.persistent

    stopped = control.stop()
    assert stopped["pid"] == server.proc.pid and stopped["keys"] == 1 and stopped["stop_s"] >= 0
    assert server.proc.wait(timeout=5) == 0          # the fixture's own process exited
    with pytest.raises(redis.ConnectionError):
        _client(server, socket_connect_timeout=0.5).ping()
    assert not control.is_up()

    started = control.start()
    after = control.probe()
    assert started["pid"] == after.pid != server.proc.pid and after.run_id != info.run_id
    assert after.port == server.port
    assert {k: after.settings[k] for k in ("dir", "save", "appendonly", "bind")} == \
        {k: info.settings[k] for k in ("dir", "save", "appendonly", "bind")}
    assert started["keys"] == 0 and _client(server).get("k") is None   # no persistence: the key is gone


def test_a_persistent_server_keeps_its_keys_and_a_second_cycle_works(controlled):
    server, control = controlled()
    client = _client(server)
    client.config_set("appendonly", "yes")
    client.config_set("appendfsync", "always")
    client.set("kept", "1")
    control.stop()
    control.start()
    assert _client(server).get("kept") == b"1" and control.probe().persistent
    first = control.probe().run_id
    control.stop()        # a restarted server is stopped and restarted again with the same settings
    control.start()
    assert control.probe().run_id != first and _client(server).get("kept") == b"1"


def test_the_password_survives_the_restart(controlled):
    server, control = controlled(password="s3cret")
    control.stop()
    control.start()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port, protocol=2).ping()
    assert _client(server).ping()
    assert "s3cret" not in repr(control) and "s3cret" not in str(control.probe().to_dict())


@pytest.mark.parametrize("url", ["redis://10.1.2.3:6379/0", "redis://example.com:6379/0",
                                 "redis://:pw@192.168.0.9:6379/1"])
def test_a_server_off_this_machine_is_refused_before_any_connection(url):
    with pytest.raises(ValidationError, match="not on this machine") as err:
        RedisServerControl(url)
    assert err.value.details["reason"] == "not loopback" and "pw@" not in str(err.value)


def test_other_bad_arguments_are_refused():
    with pytest.raises(ValidationError, match="not a Redis URL"):
        RedisServerControl("sqlite")
    with pytest.raises(MlopsKitError):
        RedisServerControl("memcached://127.0.0.1:1")
    with pytest.raises(ValidationError, match="start_timeout"):
        RedisServerControl("redis://127.0.0.1:6379/0", start_timeout=0)
    assert is_loopback("127.0.0.5") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")


def _forward(listener: socket.socket, port: int) -> None:
    """A tiny TCP forwarder: what a container port mapping looks like from the client."""
    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        upstream = socket.create_connection(("127.0.0.1", port))
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def test_a_server_behind_a_port_mapping_is_refused_and_left_running(controlled):
    server, _ = controlled()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    threading.Thread(target=_forward, args=(listener, server.port), daemon=True).start()
    try:
        control = RedisServerControl(f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        assert control.probe().port == server.port           # the proxy really reaches the server
        with pytest.raises(ValidationError, match="port mapping") as err:
            control.stop()
        assert err.value.details["reason"] == "cannot restart"
    finally:
        listener.close()
    assert server.proc.poll() is None and _client(server).ping()    # nothing was stopped


def test_start_without_stop_and_stop_of_a_down_server_are_refused(controlled):
    server, control = controlled()
    with pytest.raises(ValidationError, match="start\\(\\) before stop\\(\\)"):
        control.start()
    control.stop()
    with pytest.raises(OnlineStoreUnavailableError):
        control.stop()
    control.start()
    with pytest.raises(ValidationError, match="already served"):
        control.start()
