"""GET /metrics over a two-worker `bizfed serve`: valid Prometheus text, and counters that follow what happened."""

from __future__ import annotations

import os
import random
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.settings import load_settings
from deploy.local.faultproxy import FaultProxy
from tests.observability.conftest import Serve
from tests.servers import Server, Upstreams, metric_samples, wait_for

FAIL_MAX = 2
# Outcomes of calls that reached the source and failed (not refused locally by the breaker or bulkhead).
FAILURE_OUTCOMES = ("unreachable", "timeout", "query_failed", "deadline_exceeded", "error")
# Hostile request shapes: (method, path) from a token; each shape always gets the same answer, whatever the token.
SHAPES: tuple[Callable[[bytes], tuple[bytes, bytes]], ...] = (
    lambda t: (t, b"/health/live"),
    lambda t: (t.lower(), b"/v1/orders/" + t),
    lambda t: (t, b"/no/such/" + t),
    lambda t: (b"G\x00" + t, b"/health/live"),
    lambda t: (b"GET", b"/\x00" + t),
    lambda t: (b"GET", b"/v1/orders/%00" + t),
    lambda t: (b"GET", b"/no/such/%00%22%0a" + t),
)
TOKEN_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-!~"
# Growth a changed value can cause (digits of counts and sums); one new label set costs ~17 lines (~2 KB).
SIZE_SLACK = 1024


@pytest.fixture(name="server", scope="module")
def _server(serve: Serve, accounting_proxy: FaultProxy) -> Server:
    """Two workers (so the multiprocess collection is exercised), a small breaker and short timeouts."""
    return serve("metrics", {"BIZFED_BREAKER_FAIL_MAX": str(FAIL_MAX), "BIZFED_BREAKER_RESET": "60",
                             "BIZFED_SOURCE_TIMEOUT": "0.5", "BIZFED_CONNECT_TIMEOUT": "0.5",
                             "BIZFED_RETRY_ATTEMPTS": "1"},
                 workers=2, accounting=accounting_proxy.port)


def test_metrics_is_prometheus_text(server: Server) -> None:
    """/metrics needs no key and parses as Prometheus text with the request, source and cache families."""
    server.get("/health/live")
    response = server.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    for name in ("bizfed_http_requests", "bizfed_http_request_duration_seconds", "bizfed_source_calls",
                 "bizfed_source_call_duration_seconds", "bizfed_source_breaker_state", "bizfed_source_up",
                 "bizfed_source_retries", "bizfed_source_bulkhead_rejections"):
        assert name in names, f"{name} missing from /metrics"


def test_observability_routes_stay_out_of_openapi(server: Server) -> None:
    """/metrics and the dashboard's routes are not part of the documented API."""
    response = server.get("/openapi.json")
    assert response.status_code == 200, f"/openapi.json answered {response.status_code}"
    paths = set(response.json()["paths"])
    assert not {p for p in paths if p == "/metrics" or p.startswith("/dashboard")}


def test_request_counters_add_up_across_workers(server: Server) -> None:
    """Every request counts once in the totals, whichever worker answered and whichever worker is scraped."""
    before = server.value("bizfed_http_requests_total", route="/health/live", status="200")
    before_hist = server.value("bizfed_http_request_duration_seconds_count", route="/health/live", status="200")
    for _ in range(30):
        assert server.get("/health/live").status_code == 200
    for _ in range(3):  # several scrapes, likely served by different workers: each must see all 30
        assert server.value("bizfed_http_requests_total", route="/health/live", status="200") == before + 30
    assert server.value("bizfed_http_request_duration_seconds_count", route="/health/live",
                        status="200") == before_hist + 30


def test_routes_are_labelled_by_pattern(server: Server) -> None:
    """A request for one product is counted under the route pattern, never under the raw path."""
    server.get("/v1/products/ZZ-NOPE-4711", role="reader")
    server.get("/no/such/path/4711")
    samples = server.metrics()
    routes = {dict(labels).get("route") for (name, labels) in samples if name == "bizfed_http_requests_total"}
    assert "/v1/products/{sku}" in routes
    assert "unmatched" in routes
    assert not any("4711" in (route or "") for route in routes)


def _raw_request(base: str, method: bytes, path: bytes) -> bytes:
    """Send one request line byte for byte (httpx refuses odd methods) and return the status line, if any."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=30) as sock:
        sock.sendall(method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.partition(b"\r\n")[0]


def _scrape(server: Server) -> tuple[set[tuple[str, tuple[tuple[str, str], ...]]], int]:
    """The set of (name, labels) of every sample on /metrics, and the answer's size in bytes."""
    response = server.get("/metrics")
    assert response.status_code == 200, response.text
    return set(metric_samples(response.text)), len(response.content)


def test_hostile_methods_and_paths_add_no_series(server: Server) -> None:
    """Invented, lower-case, 100-character and NUL-laden methods and odd paths leave /metrics' series unchanged."""
    for shape in SHAPES:  # the first answer of each shape may add its one bounded series
        _raw_request(server.base, *shape(b"WARMUP"))
    _scrape(server)
    before, size_before = _scrape(server)
    rng = random.Random(16)
    tokens = [b"XQZ1", b"get", b"Get", b"T" * 100, bytes(rng.choices(TOKEN_BYTES, k=100))]
    tokens += [bytes(rng.choices(TOKEN_BYTES, k=rng.randint(1, 40))) for _ in range(30)]
    answers = {_raw_request(server.base, *shape(token)) for token in tokens for shape in SHAPES}
    assert any(a.startswith(b"HTTP/1.1 405") for a in answers), answers  # the methods did reach the app
    after, size_after = _scrape(server)
    assert after == before, f"new series: {sorted(after - before)[:5]}"
    assert size_after - size_before < SIZE_SLACK, f"/metrics grew from {size_before} to {size_after} bytes"
    text = server.get("/metrics").text
    assert "\x00" not in text
    methods = {dict(labels).get("method") for name, labels in after if name == "bizfed_http_requests_total"}
    assert methods <= {"GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "other"}, methods


def _openapi_template(route_path: str, params: list[str]) -> str:
    """A route's path as sanic-ext's OpenAPI document writes it: each ``<name:type>`` becomes ``{name}``."""
    uri = "/" + route_path.lstrip("/")
    for name in params:
        uri = re.sub(f"<{re.escape(name)}.*?>", f"{{{name}}}", uri)
    return uri


def test_route_labels_are_public_templates_of_the_route_table(server: Server, upstreams: Upstreams) -> None:
    """One order is counted under /v1/orders/{order_no}, as the OpenAPI document names it; every route label
    is a template of the app's route table (or unmatched/other)."""
    server.get("/v1/orders/SO-NOPE-4711", role="reader")
    server.get("/dashboard/assets/no-such-asset.js")
    app = create_app(load_settings(upstreams.env()), name=f"metrics_routes_{os.getpid()}")
    app.router.finalize()  # fills in each route's params
    table = {_openapi_template(route.path, [p.name for p in route.params.values()]) for route in app.router.routes}
    documented = set(httpx.get(server.base + "/openapi.json", timeout=30).json()["paths"])
    samples = server.metrics()
    routes = {dict(labels)["route"] for name, labels in samples if "route" in dict(labels)}
    assert "/v1/orders/{order_no}" in routes
    assert "/v1/orders/{order_no}" in documented
    assert routes <= table | {"unmatched", "other"}, routes - table
    assert {r for r in routes if r.startswith("/v1/")} <= documented
    assert not any("<" in r or "4711" in r for r in routes), routes


def test_internal_errors_counter_reads_zero_from_start(server: Server) -> None:
    """bizfed_internal_errors_total is on /metrics before any programming error, reading 0, by route template."""
    samples = server.metrics()
    errors = {dict(labels)["route"]: value for (name, labels), value in samples.items()
              if name == "bizfed_internal_errors_total"}
    assert errors, "bizfed_internal_errors_total missing from /metrics"
    assert set(errors.values()) == {0.0}
    assert "/v1/orders/{order_no}" in errors


def test_breaker_opening_moves_the_source_metrics(server: Server, accounting_proxy: FaultProxy) -> None:
    """With Accounting unreachable, failures count by outcome until the breaker opens; then calls fail fast."""
    assert server.value("bizfed_source_breaker_state", source="accounting") == 0
    failures_before = sum(server.value("bizfed_source_calls_total", source="accounting", outcome=o)
                          for o in FAILURE_OUTCOMES)
    served_503 = server.value("bizfed_http_requests_total", route="/v1/invoices", status="503")
    accounting_proxy.reset()
    accounting_proxy.refuse()
    try:
        def opened() -> bool:
            server.get("/v1/invoices", role="finance")
            return server.value("bizfed_source_breaker_state", source="accounting") == 2

        wait_for(opened, 60, "the Accounting breaker reads open (2) in bizfed_source_breaker_state")
        failures = sum(server.value("bizfed_source_calls_total", source="accounting", outcome=o)
                       for o in FAILURE_OUTCOMES)
        assert failures - failures_before >= 1
        assert server.value("bizfed_source_breaker_transitions_total", source="accounting", state="open") >= 1

        def fails_fast() -> bool:
            server.get("/v1/invoices", role="finance")
            return server.value("bizfed_source_calls_total", source="accounting", outcome="circuit_open") >= 1

        wait_for(fails_fast, 60, "a call refused with outcome circuit_open")
        assert server.value("bizfed_http_requests_total", route="/v1/invoices", status="503") > served_503
        assert server.value("bizfed_source_call_duration_seconds_count", source="accounting",
                            outcome="circuit_open") >= 1
        wait_for(lambda: server.value("bizfed_source_up", source="accounting") == 0, 10,
                 "bizfed_source_up reads 0 for Accounting")
    finally:
        accounting_proxy.pass_through()
    assert server.value("bizfed_source_up", source="warehouse") == 1
