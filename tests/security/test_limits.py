"""Size and time limits: bodies, headers, query strings and slow clients; a 500 tells only its request id."""

from __future__ import annotations

import contextlib
import socket
import time
from types import SimpleNamespace
from typing import Any, cast

import httpx
import orjson

from api.params import MAX_LIMIT
from api.problems import to_problem
from tests.security.support import check_problem
from tests.servers import KEYS, Server

ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
# The server's REQUEST_TIMEOUT is its head timeout, BIZFED_HEAD_TIMEOUT's default of 10 s (api/app.py);
# the bound is ten times that (the cut comes after 10-15 s: Sanic checks every half timeout).
HEAD_TIMEOUT = 10.0
SLOW_CLIENT_BOUND = 10 * HEAD_TIMEOUT


def test_oversize_body_is_413(server: Server) -> None:
    """A cache invalidation body over the 64 KiB limit is refused with a 413 problem, sized or chunked."""
    body = orjson.dumps({"tags": ["t" * 50] * 2000})
    assert len(body) > 64 * 1024
    response = httpx.post(server.base + "/v1/cache/invalidate", content=body, timeout=30,
                          headers={**ADMIN, "Content-Type": "application/json"})
    check_problem(response, 413)
    chunked = httpx.post(server.base + "/v1/cache/invalidate", content=iter([body[:40_000], body[40_000:]]),
                         timeout=30, headers={**ADMIN, "Content-Type": "application/json"})
    check_problem(chunked, 413)


def test_huge_header_is_431(server: Server) -> None:
    """A 20 KB header, or 150 headers of 100 bytes, is a 431 problem (header fields too large), not a 413."""
    response = httpx.get(server.base + "/v1/locations", headers={**ADMIN, "X-Padding": "p" * 20_000}, timeout=30)
    body = check_problem(response, 431)
    assert body["title"] == "Request header fields too large"
    many = {f"X-H{n}": "v" * 100 for n in range(150)}
    check_problem(httpx.get(server.base + "/v1/locations", headers={**ADMIN, **many}, timeout=30), 431)


def _raw_get(server: Server, target: str) -> httpx.Response:
    """GET ``target`` over a plain socket (httpx refuses URLs over 64 KiB) and read the answer to its end."""
    host, _, port = server.base.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        request = f"GET {target} HTTP/1.1\r\nHost: bizfed\r\nAuthorization: {ADMIN['Authorization']}\r\n\r\n"
        with contextlib.suppress(ConnectionError):   # the server may answer and close before reading it all
            conn.sendall(request.encode())
        received = b""
        with contextlib.suppress(ConnectionError):
            while chunk := conn.recv(65536):
                received += chunk
    head, _, content = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=content,
                          request=httpx.Request("GET", server.base + target.partition("?")[0]))


def test_huge_url_is_414(server: Server) -> None:
    """A 100 KB query string is a 414 problem (URI too long), not a 413 about the request header."""
    response = _raw_get(server, "/v1/products?q=" + "a" * 100_000)
    body = check_problem(response, 414)
    assert body["title"] == "URI too long"
    assert "header" not in body["detail"]


def test_unknown_path_is_404_without_echoing_it(server: Server) -> None:
    """A 404 for a path no route serves says "no such resource" and does not repeat the path back."""
    for path in ("/v1/no-such-thing-q7x", "/v1/orders/SO-1/no-such-thing-q7x", "/no-such-thing-q7x"):
        response = httpx.get(server.base + path, headers=ADMIN, timeout=30)
        body = check_problem(response, 404)
        assert body["detail"] == "no such resource"
        assert "no-such-thing-q7x" not in response.text


def test_overlong_query_string_is_refused(server: Server) -> None:
    """An overlong query string gets a 4xx problem; a long but legal one is judged by its parameters."""
    check_problem(httpx.get(server.base + "/v1/products?q=" + "a" * 9_000, headers=ADMIN, timeout=30), 414)
    check_problem(httpx.get(server.base + "/v1/products?q=" + "a" * 2_000, headers=ADMIN, timeout=30), 400)
    many = "&".join(f"p{n}=1" for n in range(500))
    check_problem(httpx.get(server.base + "/v1/products?" + many, headers=ADMIN, timeout=30), 400)


def test_limit_and_filters_are_bounded(server: Server) -> None:
    """limit above the maximum or below 1, and text filters over 100 characters, are 400s."""
    for params in ({"limit": MAX_LIMIT + 1}, {"limit": 0}, {"limit": -1}, {"limit": 10**12}, {"q": "x" * 101}):
        check_problem(httpx.get(server.base + "/v1/customers", params=params, headers=ADMIN, timeout=30), 400)
    page = httpx.get(server.base + "/v1/customers", params={"limit": MAX_LIMIT}, headers=ADMIN, timeout=30)
    assert page.status_code == 200
    assert len(page.json()["data"]) <= MAX_LIMIT


def test_slow_client_is_cut_off(server: Server) -> None:
    """A client that sends half a request and then nothing is disconnected after the request timeout."""
    host, _, port = server.base.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=SLOW_CLIENT_BOUND + 5) as conn:
        conn.sendall(b"GET /v1/locations HTTP/1.1\r\nHost: bizfed\r\nAuthorization: Bearer ")
        started = time.monotonic()
        received = b""
        while chunk := conn.recv(4096):
            received += chunk
        waited = time.monotonic() - started
    assert waited < SLOW_CLIENT_BOUND, f"the half-sent request held a connection for {waited:.0f}s"
    assert not received or received.startswith(b"HTTP/1.1 408"), received[:100]


def test_a_500_names_only_its_request_id() -> None:
    """An unexpected error becomes a 500 problem whose only specifics are the request id: no message, no trace."""
    # A request of an app whose services are not built yet: nothing to count the error in.
    request = cast(Any, SimpleNamespace(ctx=SimpleNamespace(request_id="rid-123"), app=SimpleNamespace(ctx=None)))
    secret = "postgresql://bizfed:hunter2@db.internal:5432/warehouse SELECT * FROM items"
    response = to_problem(request, RuntimeError(secret))
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    body = orjson.loads(response.body or b"{}")
    assert set(body) == {"type", "title", "status", "detail", "request_id"}
    assert body["request_id"] == "rid-123"
    assert "rid-123" in body["detail"]
    text = (response.body or b"").decode()
    for secret_part in ("hunter2", "db.internal", "SELECT", "RuntimeError", "Traceback"):
        assert secret_part not in text
