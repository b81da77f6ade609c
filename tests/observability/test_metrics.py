"""GET /metrics over a two-worker `bizfed serve`: valid Prometheus text, and counters that follow what happened."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.faultproxy import FaultProxy
from tests.servers import Server, Upstreams, flush_redis_db, wait_for

FAIL_MAX = 2
# Outcomes of calls that reached the source and failed (not refused locally by the breaker or bulkhead).
FAILURE_OUTCOMES = ("unreachable", "timeout", "query_failed", "deadline_exceeded", "error")


@pytest.fixture(name="accounting_proxy", scope="module")
def _accounting_proxy(upstreams: Upstreams, proxy_factory: Callable[[int], FaultProxy]) -> FaultProxy:
    return proxy_factory(upstreams.mariadb_port)


@pytest.fixture(name="server", scope="module")
def _server(upstreams: Upstreams, accounting_proxy: FaultProxy, launch: Callable[..., Server]) -> Server:
    """Two workers (so the multiprocess collection is exercised), a small breaker and short timeouts."""
    flush_redis_db(upstreams.redis_url)
    env = upstreams.env(accounting=accounting_proxy.port)
    env.update({"BIZFED_BREAKER_FAIL_MAX": str(FAIL_MAX), "BIZFED_BREAKER_RESET": "60",
                "BIZFED_SOURCE_TIMEOUT": "0.5", "BIZFED_CONNECT_TIMEOUT": "0.5", "BIZFED_RETRY_ATTEMPTS": "1"})
    return launch(env, workers=2, name="metrics")


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
    assert "/v1/products/<sku:str>" in routes
    assert "unmatched" in routes
    assert not any("4711" in (route or "") for route in routes)


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
