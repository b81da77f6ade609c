"""Timeouts, breakers, stale serving and bulkheads, each shown by injecting a real fault between API and source."""

from __future__ import annotations

import concurrent.futures
import statistics
import time
from collections.abc import Callable, Iterator

import pytest

from tests.resilience.conftest import DEADLINE, RESET, SOURCE_TIMEOUT, Faults
from tests.servers import Server, Upstreams, flush_redis_db, wait_for

# For tests that act while a breaker is open: a reset far longer than the few hundred milliseconds from the
# opening to their last request, so the breaker cannot half-open in between.
LONG_RESET = {"BIZFED_BREAKER_RESET": str(10 * RESET)}
SYNC_POLL_S = 0.5   # cache/breakers.py SharedBreakers' default poll: how soon another server sees an opening


@pytest.fixture(autouse=True)
def _healed(faults: Faults) -> Iterator[None]:
    """Every test starts and ends with all proxies passing traffic."""
    faults.heal()
    yield
    faults.heal()


def _timed(server: Server, path: str, role: str = "finance") -> tuple[float, dict]:
    started = time.monotonic()
    response = server.get(path, role=role)
    elapsed = time.monotonic() - started
    assert response.status_code in (200, 503), response.text
    return elapsed, {"status": response.status_code, **response.json()}


def _orders_with_invoices(server: Server, count: int) -> list[str]:
    invoices = server.get("/v1/invoices?status=paid&limit=200", role="finance").json()["data"]
    found: list[str] = []
    for inv in invoices:
        no = inv["order_no"]
        if no and no not in found and server.get(f"/v1/orders/{no}", role="reader").status_code == 200:
            found.append(no)
        if len(found) == count:
            return found
    pytest.fail("the seeded data has too few invoiced orders")


def _breaker(server: Server, source: str) -> str:
    return server.get("/v1/sources", role="reader").json()["data"][source]["breaker"]


@pytest.fixture(name="server")
def _server(faults: Faults, redis_url: str, launch: Callable[..., Server], request: pytest.FixtureRequest) -> Server:
    """A server over the proxies with the tight settings, plus those a test passes as ``indirect`` param."""
    db = 3 + hash(request.node.name) % 6
    flush_redis_db(redis_url, db)
    return launch(faults.env(db, **getattr(request, "param", {})), name="resilience")


@pytest.mark.parametrize("server", [LONG_RESET], indirect=True, ids=["long-reset"])
def test_accounting_blackholed_partial_then_fast_fail_then_stale(server: Server, faults: Faults):
    """With Accounting silent an order is 200 partial within its deadline, fails fast once the breaker
    opens, and a warm entry is served stale with the old invoices."""
    warm, *cold = _orders_with_invoices(server, 6)
    _, before = _timed(server, f"/v1/orders/{warm}")
    assert before["data"]["invoices"]
    faults.accounting.blackhole()
    elapsed, body = _timed(server, f"/v1/orders/{cold[0]}")
    assert body["status"] == 200
    assert body["meta"]["partial"] is True
    assert body["meta"]["sources"]["accounting"]["status"] == "unavailable"
    assert body["data"]["invoices"] is None
    assert body["data"]["lines"]
    assert elapsed < 10 * DEADLINE
    for no in cold[1:3]:
        _timed(server, f"/v1/orders/{no}")
    wait_for(lambda: _breaker(server, "accounting") == "open", 10, "the Accounting breaker opens")
    elapsed, body = _timed(server, f"/v1/orders/{cold[3]}")
    assert body["meta"]["sources"]["accounting"] == {"status": "unavailable", "cache": "none", "age_s": 0.0,
                                                     "error": "circuit open"}
    assert elapsed < SOURCE_TIMEOUT  # refused at once, not after waiting out an Accounting timeout
    # The warm entry is seconds old by now, past Accounting's 0.5 s freshness: an open breaker serves it stale.
    _, stale = _timed(server, f"/v1/orders/{warm}")
    assert stale["meta"]["sources"]["accounting"]["status"] == "stale"
    assert stale["meta"]["sources"]["accounting"]["error"] == "circuit open"
    assert stale["meta"]["partial"] is False
    assert stale["data"]["invoices"] == before["data"]["invoices"]
    assert stale["data"]["payment_status"] == before["data"]["payment_status"]


def test_source_returns_breaker_half_opens_and_closes(server: Server, faults: Faults):
    """After an outage the half-open probe succeeds, the breaker closes and fresh data returns without a restart."""
    orders = _orders_with_invoices(server, 4)
    faults.accounting.reset()  # drop pooled connections, then refuse new ones: a crashed server
    faults.accounting.refuse()
    for no in orders[:3]:
        _timed(server, f"/v1/orders/{no}")
    wait_for(lambda: _breaker(server, "accounting") == "open", 10, "the Accounting breaker opens")
    faults.accounting.pass_through()
    answers: list[dict] = []

    def fresh_again() -> bool:
        answers.append(_timed(server, f"/v1/orders/{orders[3]}")[1])
        return answers[-1]["meta"]["sources"]["accounting"]["status"] == "ok"

    wait_for(fresh_again, 10 * RESET, "the half-open trial lets fresh Accounting data through")
    assert answers[-1]["data"]["invoices"]
    assert _breaker(server, "accounting") == "closed"


def test_slow_warehouse_keeps_deadline_and_spares_other_sources(server: Server, faults: Faults):
    """A Warehouse slower than its timeout costs no more than the deadline, retries stay within
    the budget, and Sales-only resources keep their speed."""
    def sales_latency(n: int = 20) -> float:
        return statistics.median(_timed(server, "/v1/customers?limit=20", role="reader")[0] for _ in range(n))

    baseline = sales_latency()
    faults.warehouse.latency(SOURCE_TIMEOUT * 2)
    paths = [f"/v1/products/WH-{n:06d}" for n in range(1, 13)] + ["/v1/products?limit=5"] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        slow = pool.map(lambda p: _timed(server, p, role="reader"), paths)
        during = sales_latency()
        results = list(slow)
    for elapsed, body in results:
        assert elapsed < 10 * DEADLINE
        assert body["status"] in (503, 200)
    # Waiting on the Warehouse would cost Sales reads a timeout (1 s) each, far above ten times their usual time.
    assert during < 10 * baseline + 0.1, (during, baseline)
    calls = server.value("bizfed_source_calls_total", source="warehouse")
    retries = server.value("bizfed_source_retries_total", source="warehouse")
    assert retries <= calls * 0.2 + 10


def test_breaker_opening_is_shared_between_servers(faults: Faults, launch: Callable[..., Server], redis_url: str):
    """An outage seen by one server opens the breaker in a second server sharing its Redis."""
    flush_redis_db(redis_url, 9)
    first = launch(faults.env(9, **LONG_RESET), name="first")
    up: Upstreams = faults.upstreams
    second = launch({**faults.env(9, **LONG_RESET), "BIZFED_ACCOUNTING_ODBC": up.env()["BIZFED_ACCOUNTING_ODBC"]},
                    name="second")
    orders = _orders_with_invoices(first, 3)
    faults.accounting.reset()  # drop pooled connections, then refuse new ones: a crashed server
    faults.accounting.refuse()
    for no in orders:
        _timed(first, f"/v1/orders/{no}")
    wait_for(lambda: _breaker(first, "accounting") == "open", 10, "the first server's breaker opens")
    wait_for(lambda: _breaker(second, "accounting") == "open", 20 * SYNC_POLL_S,
             "the second server's breaker opens too")
    _, body = _timed(second, f"/v1/orders/{orders[0]}")
    assert body["meta"]["sources"]["accounting"].get("error") == "circuit open"


@pytest.mark.parametrize("server", [LONG_RESET], indirect=True, ids=["long-reset"])
def test_breakers_work_locally_when_redis_is_down(server: Server, faults: Faults):
    """With Redis unreachable every request still answers and the breaker still opens in-process."""
    orders = _orders_with_invoices(server, 4)
    faults.redis.refuse()
    faults.accounting.reset()  # drop pooled connections, then refuse new ones: a crashed server
    faults.accounting.refuse()
    for no in orders[:3]:
        _, body = _timed(server, f"/v1/orders/{no}")
        assert body["status"] == 200
    wait_for(lambda: _breaker(server, "accounting") == "open", 10, "the local breaker opens without Redis")
    elapsed, body = _timed(server, f"/v1/orders/{orders[3]}")
    assert body["meta"]["sources"]["accounting"].get("error") == "circuit open"
    assert elapsed < SOURCE_TIMEOUT  # refused at once, not after waiting out an Accounting timeout


def test_redis_outage_causes_no_errors(server: Server, faults: Faults):
    """Killing and restoring Redis mid-run gives zero 5xx on routes whose sources are up, then hits again."""
    paths = ["/v1/locations", "/v1/products?limit=20", "/v1/customers/1", "/v1/orders?limit=20"]
    statuses: list[int] = []
    for phase in ("before", "down", "after"):
        if phase == "down":
            faults.redis.reset()
            faults.redis.refuse()
        elif phase == "after":
            faults.redis.pass_through()
        for _ in range(3):
            for path in paths:
                response = server.get(path, role="finance")
                statuses.append(response.status_code)
    assert all(s == 200 for s in statuses), statuses
    body = server.get("/v1/locations", role="finance").json()
    # Redis is skipped for a second after it failed (the cache's backoff), then tried again.
    wait_for(lambda: server.get("/v1/locations", role="finance").json()["meta"]["sources"]["warehouse"]["cache"]
             == "hit", 10, "cache hits resume after Redis returns")
    assert body["meta"]["partial"] is False
