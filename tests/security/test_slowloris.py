"""Slowloris: a request head dribbled line by line is cut off within BIZFED_HEAD_TIMEOUT of its first byte."""

from __future__ import annotations

import http.client
import selectors
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.security.conftest import server_env
from tests.servers import KEYS, Server, Upstreams

HEAD_TIMEOUT = 1.0
# Ten times the head timeout: Sanic checks timeouts every HEAD_TIMEOUT / 2, and the machine is shared. Idle
# connections and slow bodies are kept up this long too, so a cut by the head timer cannot come after them.
BOUND = 10 * HEAD_TIMEOUT
# Well inside the head timeout: a server that restarted its timer on every byte would never cut these off.
DRIBBLE_EVERY = HEAD_TIMEOUT / 4
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}


@pytest.fixture(name="slow_server", scope="module")
def _slow_server(launch: Callable[..., Server], upstreams: Upstreams) -> Server:
    """`bizfed serve` allowing a request head HEAD_TIMEOUT in all (its keep-alive timeout, 15 s, exceeds BOUND)."""
    return launch(server_env(upstreams, BIZFED_HEAD_TIMEOUT=str(HEAD_TIMEOUT)), name="slowloris")


def _open(server: Server) -> socket.socket:
    host, _, port = server.base.removeprefix("http://").partition(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(b"GET /v1/locations HTTP/1.1\r\nHost: bizfed\r\n")
    conn.setblocking(False)
    return conn


def _dribble(conns: list[socket.socket], give_up: float,
             meanwhile: Callable[[], None] = lambda: None) -> tuple[dict[int, float], dict[int, bytes]]:
    """Send every open socket a header line each DRIBBLE_EVERY until the server drops them all or ``give_up`` passes.

    Returns, per socket index, the seconds after its request line until the server closed it, and what it
    answered. ``meanwhile`` runs once, after the first dribbled line.
    """
    started = time.monotonic()
    closed: dict[int, float] = {}
    answers = dict.fromkeys(range(len(conns)), b"")
    selector = selectors.DefaultSelector()
    for index, conn in enumerate(conns):
        selector.register(conn, selectors.EVENT_READ, index)
    line = 0
    next_line = started
    try:
        while len(closed) < len(conns) and time.monotonic() - started < give_up:
            now = time.monotonic()
            if now >= next_line:
                for index, conn in enumerate(conns):
                    if index not in closed:
                        try:
                            conn.send(f"X-Dribble-{line}: still here\r\n".encode())
                        except OSError:
                            closed[index] = now - started
                            selector.unregister(conn)
                if line == 0:
                    meanwhile()
                line += 1
                next_line = started + line * DRIBBLE_EVERY
            for key, _ in selector.select(timeout=max(0.0, min(next_line - time.monotonic(), 0.2))):
                index = key.data
                try:
                    chunk = conns[index].recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    answers[index] += chunk
                else:
                    closed[index] = time.monotonic() - started
                    selector.unregister(conns[index])
    finally:
        selector.close()
        for conn in conns:
            conn.close()
    return closed, answers


def test_a_dribbled_head_is_cut_off_while_others_are_served(slow_server: Server) -> None:
    """A dribbled head gets a 408 and is closed within the bound; a request meanwhile is a 200."""
    served: list[int] = []

    def normal_request() -> None:
        served.append(httpx.get(slow_server.base + "/v1/locations", headers=ADMIN, timeout=30).status_code)

    closed, answers = _dribble([_open(slow_server)], give_up=BOUND, meanwhile=normal_request)
    assert served == [200]
    assert 0 in closed, f"the dribbling client still held its connection after {BOUND:.0f}s"
    assert closed[0] < BOUND
    assert not answers[0] or answers[0].startswith(b"HTTP/1.1 408"), answers[0][:100]


def test_many_dribbling_sockets_are_all_dropped(slow_server: Server) -> None:
    """200 sockets each dribbling header lines are all closed within the bound."""
    conns = [_open(slow_server) for _ in range(200)]
    closed, answers = _dribble(conns, give_up=BOUND)
    assert len(closed) == len(conns), \
        f"{len(conns) - len(closed)} of {len(conns)} dribbling sockets still open after {BOUND:.0f}s"
    assert all(not a or a.startswith(b"HTTP/1.1 408") for a in answers.values())
    assert httpx.get(slow_server.base + "/v1/locations", headers=ADMIN, timeout=30).status_code == 200


def test_an_idle_keep_alive_connection_is_not_a_slow_head(slow_server: Server) -> None:
    """A keep-alive connection idle for longer than the head bound still has its next request served."""
    host, _, port = slow_server.base.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        opened = None
        for _ in range(2):
            conn.request("GET", "/v1/locations", headers=ADMIN)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            if opened is None:
                opened = conn.sock
                time.sleep(BOUND)   # idle, ten times the head timeout
        assert conn.sock is opened, "the connection was not kept"
    finally:
        conn.close()


def test_a_slow_body_after_a_prompt_head_is_not_cut(slow_server: Server) -> None:
    """A body sent over longer than the head bound, after a whole head, is still answered by its handler."""
    body = b'{"tags": ["slowloris-test-matches-nothing"]}'
    head = (f"POST /v1/cache/invalidate HTTP/1.1\r\nHost: bizfed\r\nAuthorization: {ADMIN['Authorization']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    host, _, port = slow_server.base.removeprefix("http://").partition(":")
    pieces = [body[start:start + 4] for start in range(0, len(body), 4)]
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head)
        for piece in pieces:
            time.sleep(BOUND / len(pieces))
            conn.sendall(piece)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
