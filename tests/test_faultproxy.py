"""The fault-injection proxy, against a tiny echo server and the stack's private Redis."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from deploy.local.faultproxy import FaultProxy, Mode

REPO = Path(__file__).resolve().parents[1]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        # The proxy resets upstream connections on purpose; that is no error of the echo server.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture(name="echo_port")
def _echo_port() -> Iterator[int]:
    """A loopback echo server, for checks that need no protocol."""
    with _EchoServer(("127.0.0.1", 0), _Echo) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        yield server.server_address[1]
        server.shutdown()


@pytest.fixture(name="proxy")
def _proxy(echo_port: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo_port) as proxy:
        yield proxy


def _connect(port: int, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _echo(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def _wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_pass_through_forwards_both_ways(proxy: FaultProxy) -> None:
    """Bytes sent through the proxy reach the server and its answer comes back unchanged."""
    payload = bytes(range(256)) * 1000
    with _connect(proxy.port) as sock:
        assert _echo(sock, payload) == payload
    assert proxy.mode is Mode.PASSTHROUGH
    assert str(proxy.mode) == "pass"


def test_pass_through_speaks_redis(redis_url: str) -> None:
    """A real Redis client works through the proxy as if connected directly."""
    upstream = urlsplit(redis_url)
    assert upstream.hostname is not None
    assert upstream.port is not None
    with FaultProxy(upstream.hostname, upstream.port) as proxy:
        client = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            assert client.ping()
            client.set("faultproxy:test", "ok", ex=10)
            assert client.get("faultproxy:test") == b"ok"
        finally:
            client.close()


def test_counters_follow_connections(proxy: FaultProxy) -> None:
    """connections_total counts every accepted client and active_connections those still open."""
    with _connect(proxy.port) as first, _connect(proxy.port) as second:
        _echo(first)
        _echo(second)
        assert proxy.active_connections == 2
    _wait_until(lambda: proxy.active_connections == 0)
    assert proxy.connections_total == 2


def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    """Latency slows a round trip by the delay in each direction, on an already open connection too."""
    delay = 0.25
    with _connect(proxy.port, timeout=5) as sock:
        _echo(sock)
        proxy.latency(delay)
        started = time.monotonic()
        assert _echo(sock) == b"ping"
        elapsed = time.monotonic() - started
    assert proxy.mode == "latency"
    assert 0.9 * 2 * delay <= elapsed < 10 * 2 * delay


def test_latency_is_not_summed_over_a_burst(proxy: FaultProxy) -> None:
    """Chunks sent back to back are each delayed once, not queued behind each other's delay."""
    delay, chunks, gap = 0.2, 50, 0.01
    proxy.latency(delay)
    with _connect(proxy.port, timeout=30) as sock:
        started = time.monotonic()
        for _ in range(chunks):
            sock.sendall(b"x" * 10)
            time.sleep(gap)
        received = b""
        while len(received) < 10 * chunks:
            received += sock.recv(65536)
        elapsed = time.monotonic() - started
    # Each delayed once: the sending time plus one delay each way. Queued, the delays would add up to about
    # chunks x delay (10 s), past this bound of ten round-trip delays on top of the sending time.
    assert 0.9 * 2 * delay <= elapsed < chunks * gap + 10 * 2 * delay


def test_blackhole_makes_clients_time_out(proxy: FaultProxy) -> None:
    """Under a blackhole, new and open connections get no answer, and new ones work after pass_through()."""
    with _connect(proxy.port, timeout=0.5) as open_before:
        _echo(open_before)
        proxy.blackhole()
        with pytest.raises(TimeoutError):
            _echo(open_before)
        with _connect(proxy.port, timeout=0.5) as opened_during, pytest.raises(TimeoutError):
            _echo(opened_during)
    proxy.pass_through()
    with _connect(proxy.port) as sock:
        assert _echo(sock) == b"ping"


def test_idle_connection_survives_a_blackhole(proxy: FaultProxy) -> None:
    """A connection that sent nothing while blackholed forwards again once the blackhole lifts."""
    with _connect(proxy.port) as sock:
        _echo(sock)
        proxy.blackhole()
        proxy.pass_through()
        assert _echo(sock) == b"ping"


def _is_reset(port: int) -> bool:
    # The RST can arrive while connect() is still returning, or only at the first send or recv.
    try:
        with _connect(port) as sock:
            return _echo(sock) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_reset_breaks_open_and_new_connections(proxy: FaultProxy) -> None:
    """reset() resets open connections and each new one right after accept."""
    with _connect(proxy.port) as open_before:
        _echo(open_before)
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            open_before.recv(1)
    assert _is_reset(proxy.port)
    proxy.pass_through()
    with _connect(proxy.port) as sock:
        assert _echo(sock) == b"ping"


def test_refuse_closes_the_port_and_reopens_it(proxy: FaultProxy) -> None:
    """refuse() makes connects fail with ECONNREFUSED, and pass_through() listens again on the same port."""
    port = proxy.port
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        _connect(port)
    proxy.pass_through()
    assert proxy.port == port
    with _connect(port) as sock:
        assert _echo(sock) == b"ping"


def test_starts_in_refuse_mode_on_a_reserved_port(echo_port: int) -> None:
    """A proxy switched to refuse before start() holds a port without listening on it."""
    proxy = FaultProxy("127.0.0.1", echo_port)
    proxy.refuse()
    with proxy:
        assert proxy.port != 0
        with pytest.raises(ConnectionRefusedError):
            _connect(proxy.port)
        proxy.pass_through()
        with _connect(proxy.port) as sock:
            assert _echo(sock) == b"ping"


# S104: the wildcard address is here to be rejected, not bound.
@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "example.com", "::", "192.168.1.10"])  # noqa: S104
def test_non_loopback_hosts_are_rejected(host: str) -> None:
    """Neither the upstream nor the listening address may leave the loopback interface."""
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(host, 6379)
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("127.0.0.1", 6379, listen_host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    """Every loopback spelling is accepted as an upstream."""
    assert FaultProxy(host, 6379).upstream_host == host


async def test_serves_while_the_callers_loop_is_blocked(proxy: FaultProxy) -> None:
    """The proxy runs its own loop, so async callers work and blocking calls in them still get answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"async")
    assert await asyncio.wait_for(reader.readexactly(5), 2) == b"async"
    writer.close()
    await writer.wait_closed()
    proxy.latency(0.05)
    with _connect(proxy.port) as sock:
        assert _echo(sock) == b"ping"


@pytest.fixture(name="cli")
def _cli(echo_port: int) -> Iterator[tuple[int, int]]:
    """The CLI proxy in a subprocess, as (proxy port, control port)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.faultproxy", "--listen", "127.0.0.1:0",
         "--upstream", f"127.0.0.1:{echo_port}", "--control", "127.0.0.1:0"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        words = process.stdout.readline().split()
        assert words[0] == "listening", words
        yield int(words[1].rpartition(":")[2]), int(words[3].rpartition(":")[2])
    finally:
        process.terminate()
        process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


def test_cli_control_port_switches_modes(cli: tuple[int, int]) -> None:
    """One-line commands on the control port switch the faults of a proxy in another process."""
    port, control_port = cli
    with _connect(control_port) as control, control.makefile("rw") as lines:
        def command(line: str) -> str:
            lines.write(line + "\n")
            lines.flush()
            return lines.readline().strip()

        assert command("status").startswith("ok mode=pass ")
        assert command("refuse").startswith("ok mode=refuse ")
        with pytest.raises(ConnectionRefusedError):
            _connect(port)
        assert command("latency 0.1").startswith("ok mode=latency delay=0.1 ")
        with _connect(port) as sock:
            assert _echo(sock) == b"ping"
        assert command("blackhole").startswith("ok mode=blackhole ")
        assert command("reset").startswith("ok mode=reset ")
        assert command("pass").startswith("ok mode=pass ")
        assert command("latency soon").startswith("error:")
        assert command("explode").startswith("error:")
