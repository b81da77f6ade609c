"""Nothing wedges: after Accounting is blackholed and restored, its routes answer fresh data again at once.

A blackhole is the fault a crashed host or a dropped route gives: connections are accepted, requests go
out, and nothing ever comes back, so a driver call without a socket timeout waits forever. Calls past
their deadline must not keep the worker, the connection or the breaker's half-open probe hostage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.resilience.conftest import ACCOUNTING_TTL, DEADLINE, RESET, SOURCE_TIMEOUT, Faults
from tests.resilience.recovery import (
    CLIENTS,
    Load,
    ask_all,
    breaker,
    fresh,
    idle_footprint,
    invoiced_orders,
    recover,
    settled,
)
from tests.servers import Server, flush_redis_db, wait_for

REDIS_DB = 15          # other modules' too (see test_fault_matrix): each flushes it, and modules run in turn
BLACKHOLE_S = 6 * SOURCE_TIMEOUT   # ample for the breaker to open: three failed calls of one timeout each
RECOVERY_S = 2 * RESET             # the bound, from the end of the fault to fresh data on every route
DEADLINE_SLACK_S = 2.0


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
    orders = invoiced_orders(server, 12)
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
    proxies = {"accounting": faults.accounting}
    with Load(server, many) as warm:
        time.sleep(2.0)   # every worker thread and pooled connection in use at least once
    assert all(fresh(a, "accounting", ACCOUNTING_TTL) for a in warm.answers[-CLIENTS:]), warm.answers[-CLIENTS:]
    before = idle_footprint(server, proxies)

    with Load(server, many) as load:
        faults.accounting.blackhole()
        wait_for(lambda: breaker(server, "accounting") == "open", BLACKHOLE_S, "the Accounting breaker opens")
        time.sleep(2 * RESET)   # a half-open probe, at least, meets the blackhole too
        faults.accounting.pass_through()
        recovery = recover(time.monotonic(), lambda: ask_all(server, paths),
                           lambda answers: all(fresh(a, "accounting", ACCOUNTING_TTL) for a in answers),
                           10 * RECOVERY_S)   # keep watching past the bound, to report how long it took

    assert recovery.seconds <= RECOVERY_S, (
        f"Accounting routes fresh again only {recovery.seconds:.1f}s after the blackhole ended "
        f"(bound {RECOVERY_S:.0f}s); breaker {breaker(server, 'accounting')}; last round {recovery.last}")
    slowest = max(load.answers + recovery.answers, key=lambda a: a.seconds)
    assert slowest.seconds <= DEADLINE + DEADLINE_SLACK_S, slowest
    assert load.answers
    assert all(a.status in (200, 503) for a in load.answers)

    # No calls in flight now: every worker slot is free again, not held by a call stuck on a dead socket;
    # the connections through the proxy are the pool's, none left behind by a call given up on.
    after, leftovers = settled(server, proxies, before)
    assert not leftovers, (leftovers, before, after)
