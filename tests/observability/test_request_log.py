"""The request log of `bizfed serve`: one JSON line per request, with its fields and without any secret."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from api.logs import scrub
from deploy.local.faultproxy import FaultProxy
from tests.servers import KEYS, Server, Upstreams, wait_for

FIELDS = {"request_id", "route", "method", "status", "duration_ms", "role", "sources"}


@pytest.fixture(name="server", scope="module")
def _server(upstreams: Upstreams, launch: Callable[..., Server]) -> Server:
    return launch(upstreams.env(), name="request-log")


def _lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for raw in server.log_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def _line_for(server: Server, request_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def logged() -> bool:
        found[:] = [line for line in _lines(server) if line.get("request_id") == request_id]
        return bool(found)

    # A request is logged when it ends: at the latest its deadline (5 s by default) after it began.
    wait_for(logged, 60, f"a log line for request {request_id}")
    assert len(found) == 1, f"{len(found)} lines for one request"
    return found[0]


def test_request_line_has_the_fields(server: Server) -> None:
    """An API request logs one JSON line with id, route pattern, method, status, duration, role and sources."""
    request_id = f"obs-{uuid.uuid4().hex}"
    response = server.get("/v1/locations", role="reader", headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    line = _line_for(server, request_id)
    assert set(line) >= FIELDS
    assert line["route"] == "/v1/locations"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["role"] == "reader"
    assert 0 <= line["duration_ms"] < 30_000
    assert line["sources"]["warehouse"]["status"] == "ok"
    assert "cache" in line["sources"]["warehouse"]


def test_route_is_the_pattern_and_failures_are_logged(server: Server) -> None:
    """A 404 on a product is logged under its route pattern; a rejected key is logged without a role."""
    request_id = f"obs-{uuid.uuid4().hex}"
    server.get("/v1/products/ZZ-NOPE-1", role="reader", headers={"X-Request-ID": request_id})
    line = _line_for(server, request_id)
    assert line["route"] == "/v1/products/<sku:str>"
    assert line["path"] == "/v1/products/ZZ-NOPE-1"

    request_id = f"obs-{uuid.uuid4().hex}"
    response = server.get("/v1/locations", headers={"X-Request-ID": request_id,
                                                    "Authorization": "Bearer wrong-key-Zx81"})
    assert response.status_code == 401
    line = _line_for(server, request_id)
    assert line["status"] == 401
    assert line["role"] is None


def test_log_never_holds_a_key_or_connection_string(server: Server, upstreams: Upstreams) -> None:
    """Keys sent as a header or as ?key=, wrong keys and the sources' connection strings never reach the log."""
    request_id = f"obs-{uuid.uuid4().hex}"
    assert server.get("/dashboard", params={"key": KEYS["reader"]},
                      headers={"X-Request-ID": request_id}).status_code == 200
    line = _line_for(server, request_id)
    assert line["route"] == "/dashboard"
    assert line["query"] == "key=[redacted]"
    server.get("/v1/locations", role="admin")
    server.get("/v1/locations", headers={"Authorization": "Bearer wrong-key-Zx81"})
    server.get("/v1/locations", params={"key": KEYS["finance"], "limit": "5"})
    server.get("/health/ready")
    text = server.log_text()
    for secret in (*KEYS.values(), "wrong-key-Zx81", upstreams.targets.accounting_odbc,
                   upstreams.targets.warehouse_dsn, upstreams.targets.sales_url):
        assert secret not in text
    assert "Bearer " not in text.replace("Bearer [redacted]", "")


def test_a_client_that_hangs_up_is_logged_as_499_not_500(upstreams: Upstreams, launch: Callable[..., Server],
                                                          proxy_factory: Callable[[int], FaultProxy]) -> None:
    """A request whose client closes the connection while the sources are still answering is a 499."""
    sales = proxy_factory(upstreams.mariadb_port)
    # Sales answers after several seconds (each chunk of the MariaDB handshake takes 1 s each way) and the
    # timeouts wait 5 s for it: the request is still in flight long after the client hangs up, 0.3 s in.
    slow = {"BIZFED_CACHE": "off", "BIZFED_SOURCE_TIMEOUT": "5", "BIZFED_CONNECT_TIMEOUT": "5"}
    server = launch({**upstreams.env(sales=sales.port), **slow}, name="hang-up")
    sales.latency(1.0)
    request_id = f"obs-{uuid.uuid4().hex}"
    host, port = server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"GET /v1/customers?limit=5 HTTP/1.1\r\nHost: {host}\r\nX-Request-ID: {request_id}\r\n"
                     f"Authorization: Bearer {KEYS['reader']}\r\n\r\n".encode())
        time.sleep(0.3)
    line = _line_for(server, request_id)
    assert line["status"] == 499
    assert line["level"] == "info"
    sales.pass_through()


@pytest.mark.parametrize(("raw", "leak"), [
    ("GET /dashboard?key=s3cret&x=1", "s3cret"),
    ("Authorization: Bearer s3cret", "s3cret"),
    ("DRIVER={MariaDB Unicode};SERVER=db;PORT=3306;UID=app;PWD=s3cret", "s3cret"),
    ("could not connect: host=db port=5432 user=app password=s3cret", "s3cret"),
    ("postgresql://app:s3cret@db:5432/warehouse", "s3cret"),
    ("mysql+asyncmy://app:s3cret@db/sales", "s3cret"),
    ("redis://:s3cret@cache:6379/0", "s3cret"),
])
def test_scrub_removes_secrets(raw: str, leak: str) -> None:
    """The scrubber removes keys, bearer tokens, passwords and connection strings from any text."""
    assert leak not in scrub(raw)
