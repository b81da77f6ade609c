"""The watchers through fault proxies: a source cut mid-stream (blackholed, reset, refused) while changes
commit behind it loses none of them; after the fault each shows, and the lag comes back under the bound."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from deploy.legacy.schema import LegacyTargets
from deploy.local.addresses import dsn_port, odbc_port
from deploy.local.faultproxy import FaultProxy
from tests.changes.support import Legacy, watching
from tests.changes.test_capture_api import GENEROUS, INTERVAL, LONG, warm
from tests.servers import Server, Upstreams, flush_redis_db, wait_for

REDIS_DB = 6
FAULT_SECONDS = 4.0   # long enough for several rounds to fail, and for the breaker-aware back-off to start


@pytest.fixture(name="proxies", scope="module")
def _proxies(seeded: LegacyTargets, proxy_factory: Callable[[int], FaultProxy]) -> dict[str, FaultProxy]:
    return {"warehouse": proxy_factory(dsn_port(seeded.warehouse_dsn)),
            "mariadb": proxy_factory(odbc_port(seeded.accounting_odbc))}


@pytest.fixture(name="server", scope="module")
def _server(seeded: LegacyTargets, redis_url: str, launch: Callable[..., Server],
            proxies: dict[str, FaultProxy]) -> Server:
    """Warehouse, Sales and Accounting all reached through the proxies, the watchers' connections included."""
    flush_redis_db(redis_url, REDIS_DB)
    mariadb = proxies["mariadb"].port
    env = {**Upstreams(seeded, redis_url).env(warehouse=proxies["warehouse"].port, sales=mariadb,
                                              accounting=mariadb, redis_db=REDIS_DB),
           "BIZFED_WATCH_INTERVAL": str(INTERVAL), "BIZFED_CONNECT_TIMEOUT": "1", "BIZFED_SOURCE_TIMEOUT": "1",
           "BIZFED_BREAKER_RESET": "2", "BIZFED_FRESHNESS_WAREHOUSE": LONG, "BIZFED_FRESHNESS_SALES": LONG,
           "BIZFED_FRESHNESS_ACCOUNTING": LONG, "BIZFED_LOCAL_CACHE_TTL": "60"}
    server = launch(env, name="capture-faults")
    watching(server, {"warehouse": "log", "sales": "log", "accounting": "poll"}, timeout=60)
    return server



@pytest.mark.parametrize("fault", ["blackhole", "reset", "refuse"])
def test_changes_committed_during_a_fault_all_show_after_it(fault: str, server: Server, legacy: Legacy,
                                                             proxies: dict[str, FaultProxy]) -> None:
    sku, location = legacy.stocked_sku()
    order_no, _ = legacy.order_with_status_other_than("cancelled")
    customer_id, acct_no = legacy.customer_with_account()
    on_hand = warm(server, f"/v1/products/{sku}", role="reader")["data"]["on_hand"]
    warm(server, f"/v1/orders/{order_no}")
    limit = warm(server, f"/v1/customers/{customer_id}")["data"]["account"]["credit_limit"]["amount"]
    for proxy in proxies.values():
        getattr(proxy, fault)()
    try:
        # The business goes on writing, straight to its databases, while bizfed cannot reach them.
        legacy.warehouse("UPDATE stock SET on_hand = on_hand + 5, updated_at = now() WHERE sku = %s "
                         "AND location_code = %s", (sku, location))
        legacy.sales("UPDATE orders SET status = 'cancelled' WHERE order_no = %s", (order_no,))
        legacy.accounting("UPDATE ARCUST SET CRLIMIT = CRLIMIT + 777 WHERE CUSTNO = %s", (acct_no.ljust(10),))
        time.sleep(FAULT_SECONDS)
        failing = server.get("/v1/sources", role="admin").json()["data"]
        assert {failing[n]["changes"]["state"] for n in ("warehouse", "sales", "accounting")} <= {"failing",
                                                                                                  "watching"}
    finally:
        for proxy in proxies.values():
            proxy.pass_through()
    restored = time.monotonic()

    def all_show() -> bool:
        stock = server.get(f"/v1/products/{sku}", role="reader").json()["data"]
        order = server.get(f"/v1/orders/{order_no}", role="finance").json()["data"]
        account = server.get(f"/v1/customers/{customer_id}", role="finance").json()["data"]["account"]
        return bool(stock["on_hand"] == on_hand + 5 and order["status"] == "cancelled"
                    and account is not None and account["credit_limit"]["amount"] != limit)

    # Back-off after repeated failures is at most 30 s; with these settings it stays far below.
    wait_for(all_show, 30, f"every change committed during the {fault}")

    def lag_down() -> bool:
        states = server.get("/v1/sources", role="admin").json()["data"]
        return all(states[n]["changes"]["state"] == "watching" and states[n]["changes"]["lag_s"] < GENEROUS
                   for n in ("warehouse", "sales", "accounting"))
    wait_for(lag_down, 30, "every watcher watching with its lag under the bound")
    assert time.monotonic() - restored < 60
