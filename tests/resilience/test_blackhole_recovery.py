"""Nothing wedges: after Accounting is blackholed and restored, its routes answer fresh data again at once.

A blackhole is the fault a crashed host or a dropped route gives: connections are accepted, requests go
out, and nothing ever comes back, so a driver call without a socket timeout waits forever. Calls past
their deadline must not keep the worker, the connection or the breaker's half-open probe hostage.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.resilience.conftest import ACCOUNTING_TTL, DEADLINE, RESET, SOURCE_TIMEOUT, Faults
from tests.servers import Server, flush_redis_db, wait_for

REDIS_DB = 15          # the stale-truth and invalidation modules' too: each flushes it, and modules run in turn
CLIENTS = 4            # concurrent finance clients, each request one or two Accounting calls: all four workers busy
BLACKHOLE_S = 6 * SOURCE_TIMEOUT   # ample for the breaker to open: three failed calls of one timeout each
RECOVERY_S = 2 * RESET             # the bound, from the end of the fault to fresh data on every route
DEADLINE_SLACK_S = 2.0
SETTLE_S = 10 * SOURCE_TIMEOUT     # for calls abandoned in the fault to end and give back their threads
THREAD_SLACK = 2
CONNECTION_SLACK = 2


@dataclass(frozen=True)
class Answer:
    path: str
    seconds: float
    status: int
    accounting: dict[str, object] | None


def _ask(server: Server, path: str) -> Answer:
    started = time.monotonic()
    response = server.get(path, role="finance")
    seconds = time.monotonic() - started
    body = response.json()
    return Answer(path, seconds, response.status_code, (body.get("meta") or {}).get("sources", {}).get("accounting"))


def _fresh(answer: Answer) -> bool:
    """A 200 with Accounting's data read from Accounting just now, not served stale."""
    report = answer.accounting or {}
    return (answer.status == 200 and report.get("status") == "ok"
            and float(report.get("age_s", 0.0)) <= ACCOUNTING_TTL)  # type: ignore[arg-type]


def _threads(server: Server) -> int:
    return len(os.listdir(f"/proc/{server.proc.pid}/task"))


def _breaker(server: Server) -> str:
    return str(server.get("/v1/sources", role="reader").json()["data"]["accounting"]["breaker"])


def _pool(server: Server) -> dict[str, int]:
    """The Accounting connector's pool figures, as the finance role sees them."""
    return dict(server.get("/v1/sources", role="finance").json()["data"]["accounting"]["pool"])


class _Load:
    """Finance clients reading Accounting's routes in a loop, every answer kept."""

    def __init__(self, server: Server, paths: list[str]) -> None:
        self._server = server
        self._paths = paths
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def _run(self, offset: int) -> None:
        n = offset
        while not self._stop.is_set():
            answer = _ask(self._server, self._paths[n % len(self._paths)])
            with self._lock:
                self.answers.append(answer)
            n += 1

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30.0)


@pytest.fixture(name="server")
def _server(faults: Faults, redis_url: str, launch: Callable[..., Server]) -> Iterator[Server]:
    flush_redis_db(redis_url, REDIS_DB)
    faults.heal()
    # No in-process copies: an answer labelled ok has been read from Accounting within its 0.5 s freshness.
    yield launch(faults.env(REDIS_DB, BIZFED_LOCAL_CACHE_TTL="0"), name="blackhole-recovery")
    faults.heal()


def _accounting_paths(server: Server) -> tuple[list[str], list[str]]:
    """One path of each route that reads Accounting for the finance role; and many distinct ones, for load
    whose calls are not folded into one by the cache."""
    invoices = server.get("/v1/invoices?status=paid&limit=100", role="finance").json()["data"]
    orders: list[dict] = []
    for no in dict.fromkeys(i["order_no"] for i in invoices if i["order_no"]):
        order = server.get(f"/v1/orders/{no}", role="finance").json().get("data")
        if order and order["invoices"] and order["lines"] and order["lines"][0]["sku"]:
            orders.append(order)
        if len(orders) == 12:
            break
    else:
        pytest.fail("the seeded data has too few invoiced orders with a product line")
    first = orders[0]
    routes = ["/v1/invoices?limit=20", f"/v1/orders/{first['order_no']}", f"/v1/customers/{first['customer']['id']}",
              f"/v1/products/{first['lines'][0]['sku']}", "/v1/products?limit=20"]
    many = [p for n, o in enumerate(orders) for p in (
        f"/v1/invoices?limit={10 + n}", f"/v1/orders/{o['order_no']}", f"/v1/customers/{o['customer']['id']}",
        f"/v1/products/{o['lines'][0]['sku']}")]
    return routes, many


def test_accounting_recovers_at_once_after_a_blackhole(server: Server, faults: Faults) -> None:
    """Blackholed under load until the breaker opens and a half-open probe fails, then restored: within
    two breaker resets every Accounting route answers fresh, no request overran its deadline, and once
    idle no worker slot is held and threads and connections are back to what they were."""
    paths, many = _accounting_paths(server)
    with _Load(server, many) as warm:
        time.sleep(2.0)   # every worker thread and pooled connection in use at least once
    assert all(_fresh(a) for a in warm.answers[-CLIENTS:]), warm.answers[-CLIENTS:]
    threads_before, connections_before = _threads(server), faults.accounting.active_connections

    with _Load(server, many) as load:
        faults.accounting.blackhole()
        wait_for(lambda: _breaker(server) == "open", BLACKHOLE_S, "the Accounting breaker opens")
        time.sleep(2 * RESET)   # a half-open probe, at least, meets the blackhole too
        faults.accounting.pass_through()
        healed_at = time.monotonic()
        rounds: list[list[Answer]] = []

        def every_route_fresh() -> bool:
            with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
                rounds.append(list(pool.map(lambda p: _ask(server, p), paths)))
            return all(_fresh(a) for a in rounds[-1])

        deadline = healed_at + 10 * RECOVERY_S   # keep watching past the bound, to report how long it took
        while not every_route_fresh() and time.monotonic() < deadline:
            time.sleep(0.1)
        recovered_s = time.monotonic() - healed_at

    assert recovered_s <= RECOVERY_S, (
        f"Accounting routes fresh again only {recovered_s:.1f}s after the blackhole ended "
        f"(bound {RECOVERY_S:.0f}s); breaker {_breaker(server)}; last round {rounds[-1]}")
    slowest = max(load.answers + [a for r in rounds for a in r], key=lambda a: a.seconds)
    assert slowest.seconds <= DEADLINE + DEADLINE_SLACK_S, slowest
    assert load.answers
    assert all(a.status in (200, 503) for a in load.answers)

    # No calls in flight now: every worker slot is free again, not held by a call stuck on a dead socket.
    settle_by = time.monotonic() + SETTLE_S
    while True:
        pool, threads, connections = _pool(server), _threads(server), faults.accounting.active_connections
        back = (pool["in_use"] == 0 and threads <= threads_before + THREAD_SLACK
                and connections <= max(connections_before, pool["max"]) + CONNECTION_SLACK
                and connections <= pool["size"] + CONNECTION_SLACK)
        if back or time.monotonic() > settle_by:
            break
        time.sleep(0.25)
    assert pool["in_use"] == 0, pool
    assert threads <= threads_before + THREAD_SLACK, (threads, threads_before)
    # The idle pool may have grown up to its size since: what is bounded is what the pool holds, and
    # the connections open through the proxy are the pool's, none left behind by a call given up on.
    assert connections <= max(connections_before, pool["max"]) + CONNECTION_SLACK, (connections, connections_before)
    assert connections <= pool["size"] + CONNECTION_SLACK, (connections, pool)
