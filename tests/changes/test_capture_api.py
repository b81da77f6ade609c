"""Each kind of committed change shows through the API within the bound, with the cache warm, by the log
path (Warehouse logical decoding, the Sales binlog) and by the polling fallback.

Answers stay fresh for ten minutes and the first level for a minute: only change capture can explain
a new value showing within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from deploy.legacy.schema import LegacyTargets
from tests.changes.support import Legacy, watching
from tests.servers import Server, Upstreams, flush_redis_db, wait_for

BOUND = 2.0          # the bound, commit to visible through the API
GENEROUS = BOUND * 3  # what a test waits for on a loaded CI machine; the bench gives the real figures
INTERVAL = 0.5
MODES = {"log": {"BIZFED_CHANGES_WAREHOUSE": "log", "BIZFED_CHANGES_SALES": "log"},
         "poll": {"BIZFED_CHANGES_WAREHOUSE": "poll", "BIZFED_CHANGES_SALES": "poll"}}
REDIS_DBS = {"log": 4, "poll": 5}
LONG = "600,0,600"


@pytest.fixture(name="servers", scope="module")
def _servers(seeded: LegacyTargets, redis_url: str, launch: Callable[..., Server]) -> dict[str, Server]:
    """Two servers over the same databases, one reading the logs and one polling, each with its own Redis db
    (so each holds its own watchers' leases and cache)."""
    found = {}
    for mode, settings in MODES.items():
        flush_redis_db(redis_url, REDIS_DBS[mode])
        env = {**Upstreams(seeded, redis_url).env(redis_db=REDIS_DBS[mode]), **settings,
               "BIZFED_CHANGES_ACCOUNTING": "poll", "BIZFED_WATCH_INTERVAL": str(INTERVAL),
               "BIZFED_FRESHNESS_WAREHOUSE": LONG, "BIZFED_FRESHNESS_SALES": LONG,
               "BIZFED_FRESHNESS_ACCOUNTING": LONG, "BIZFED_LOCAL_CACHE_TTL": "60"}
        found[mode] = launch(env, name=f"capture-{mode}")
    for mode, server in found.items():
        watching(server, {"warehouse": mode, "sales": mode, "accounting": "poll"}, timeout=60)
    return found



@pytest.fixture(name="server", params=list(MODES))
def _server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Server:
    return servers[request.param]


def warm(server: Server, path: str, role: str = "finance") -> dict[str, Any]:
    """The answer once it comes wholly from the cache (that it did is checked). Other tests' changes are
    captured too and may drop a list page between two reads, so it reads until two agree."""
    body: dict[str, Any] = {}
    for _ in range(10):
        server.get(path, role=role)
        again = server.get(path, role=role)
        assert again.status_code == 200, again.text
        body = again.json()
        if {s["cache"] for s in body["meta"]["sources"].values()} <= {"hit"}:
            return body
    raise AssertionError(f"{path} never came from the cache: {body.get('meta')}")


def shows(server: Server, path: str, check: Callable[[dict[str, Any]], bool], what: str,
          role: str = "finance") -> float:
    """Seconds until ``path`` satisfies ``check``; fails after GENEROUS seconds."""
    started = time.monotonic()
    wait_for(lambda: check(server.get(path, role=role).json()["data"]), GENEROUS, what, interval=0.05)
    return time.monotonic() - started


def test_a_payment_posted_shows_on_its_order(server: Server, legacy: Legacy) -> None:
    invno, order_no, _balance = legacy.open_invoice_of_an_order()
    path = f"/v1/orders/{order_no}"
    before = warm(server, path)["data"]
    paid = next(i for i in before["invoices"] if i["invno"] == invno)["paid"]["amount"]
    legacy.post_payment(invno, 100)
    shows(server, path, lambda d: next(i for i in d["invoices"] if i["invno"] == invno)["paid"]["amount"] != paid,
          "the payment on the order's invoice")


def test_a_voided_invoice_shows_in_the_invoice_list(server: Server, legacy: Legacy) -> None:
    invno, acct_no = legacy.open_invoice()
    path = f"/v1/invoices?acct_no={acct_no}&limit=500"
    warm(server, path)
    legacy.accounting("UPDATE ARINVH SET STATUS = 'V' WHERE INVNO = %s", (invno,))
    def voided(rows: Any) -> bool:
        return any(i["invno"] == invno and i["status"] == "void" for i in rows)
    shows(server, path, voided, "the voided invoice")


def test_a_credit_limit_change_shows_on_the_customer(server: Server, legacy: Legacy) -> None:
    customer_id, acct_no = legacy.customer_with_account()
    path = f"/v1/customers/{customer_id}"
    limit = warm(server, path)["data"]["account"]["credit_limit"]["amount"]
    legacy.accounting("UPDATE ARCUST SET CRLIMIT = CRLIMIT + 12345 WHERE CUSTNO = %s", (acct_no.ljust(10),))
    shows(server, path, lambda d: d["account"]["credit_limit"]["amount"] != limit, "the new credit limit")


def test_a_standard_cost_change_shows_on_the_product(server: Server, legacy: Legacy) -> None:
    sku = legacy.costed_sku()
    path = f"/v1/products/{sku}"
    cost = warm(server, path)["data"]["std_cost"]["amount"]
    legacy.accounting("UPDATE ICITEM SET STDCOST = STDCOST + 101 WHERE ITEMNO = %s", (sku.ljust(20),))
    shows(server, path, lambda d: d["std_cost"]["amount"] != cost, "the new standard cost")


def test_an_order_status_change_shows(server: Server, legacy: Legacy) -> None:
    order_no, status = legacy.order_with_status_other_than("cancelled")
    path = f"/v1/orders/{order_no}"
    assert warm(server, path)["data"]["status"] == status
    legacy.sales("UPDATE orders SET status = 'cancelled' WHERE order_no = %s", (order_no,))
    shows(server, path, lambda d: d["status"] == "cancelled", "the cancelled order")


def test_a_customer_rename_shows_on_the_customer_and_its_orders(server: Server, legacy: Legacy) -> None:
    customer_id, order_no = legacy.customer_with_an_order()
    warm(server, f"/v1/customers/{customer_id}")
    warm(server, f"/v1/orders/{order_no}")
    name = f"Renamed {time.time_ns()}"
    legacy.sales("UPDATE customers SET name = %s WHERE id = %s", (name, customer_id))
    shows(server, f"/v1/customers/{customer_id}", lambda d: d["name"] == name, "the customer's new name")
    shows(server, f"/v1/orders/{order_no}", lambda d: d["customer"]["name"] == name, "the new name on its order")


def test_a_list_price_change_shows_on_the_product(server: Server, legacy: Legacy) -> None:
    sku = legacy.priced_sku()
    path = f"/v1/products/{sku}"
    price = warm(server, path)["data"]["list_price"]["amount"]
    legacy.sales("UPDATE products SET list_price = list_price + 1.25 WHERE id = "
                 "(SELECT id FROM (SELECT MIN(id) AS id FROM products WHERE sku = %s) AS first)", (sku.lower(),))
    shows(server, path, lambda d: d["list_price"]["amount"] != price, "the new list price")


def test_a_deleted_order_line_shows(server: Server, legacy: Legacy) -> None:
    order_no, line_no = legacy.order_with_lines(2)
    path = f"/v1/orders/{order_no}"
    lines = len(warm(server, path)["data"]["lines"])
    legacy.sales("DELETE FROM order_lines WHERE order_no = %s AND line_no = %s", (order_no, line_no))
    shows(server, path, lambda d: len(d["lines"]) == lines - 1, "the order without its deleted line")


def test_a_shipment_movement_shows_on_its_order(server: Server, legacy: Legacy) -> None:
    order_no, sku, location = legacy.order_line_with_a_known_sku()
    path = f"/v1/orders/{order_no}"
    before = warm(server, path)["data"]
    shipped = sum(ln["shipped_qty"] for ln in before["lines"] if ln["sku"] == sku)
    legacy.warehouse("INSERT INTO movements (sku, location_code, qty, kind, reference, moved_at) "
                     "VALUES (%s, %s, -1, 'shipment', %s, now())", (sku, location, order_no))
    shows(server, path, lambda d: sum(ln["shipped_qty"] for ln in d["lines"] if ln["sku"] == sku) == shipped + 1,
          "the shipment on the order")


def test_a_stock_count_shows_on_the_product(server: Server, legacy: Legacy) -> None:
    sku, location = legacy.stocked_sku()
    path = f"/v1/products/{sku}"
    on_hand = warm(server, path, role="reader")["data"]["on_hand"]
    legacy.warehouse("UPDATE stock SET on_hand = on_hand + 9, updated_at = now() WHERE sku = %s "
                     "AND location_code = %s", (sku, location))
    shows(server, path, lambda d: d["on_hand"] == on_hand + 9, "the counted stock", role="reader")


def test_sources_say_how_changes_are_captured(servers: dict[str, Server]) -> None:
    """Each source's entry shows its change mode, that it watches, a small lag and the last change seen."""
    for mode, server in servers.items():
        states = server.get("/v1/sources", role="admin").json()["data"]
        for source, expected in (("warehouse", mode), ("sales", mode), ("accounting", "poll")):
            changes = states[source]["changes"]
            assert changes["mode"] == expected, (source, changes)
            assert changes["state"] == "watching", (source, changes)
            assert changes["lag_s"] is not None, (source, changes)
            assert changes["lag_s"] < GENEROUS, (source, changes)
            assert changes["last_change_at"] is not None, (source, changes)
        reader = server.get("/v1/sources", role="reader").json()["data"]
        assert "changes" in reader["sales"]
        assert "changes" not in reader["accounting"]


def test_metrics_count_changes_and_lag(servers: dict[str, Server], legacy: Legacy) -> None:
    sku, location = legacy.stocked_sku()
    legacy.warehouse("UPDATE stock SET reserved = reserved, updated_at = now() WHERE sku = %s "
                     "AND location_code = %s", (sku, location))
    for mode, server in servers.items():
        def counted(s: Server = server, m: str = mode) -> bool:
            text = s.get("/metrics").text
            return f'bizfed_changes_total{{mode="{m}",source="warehouse"}}' in text
        wait_for(counted, GENEROUS, f"the {mode} server's change count")
        text = server.get("/metrics").text
        assert 'bizfed_change_lag_seconds{source="warehouse"}' in text
        assert f'bizfed_change_watcher_queries_total{{mode="{mode}",source="warehouse"}}' in text


def test_a_missing_log_grant_falls_back_to_polling(seeded: LegacyTargets, redis_url: str,
                                                   launch: Callable[..., Server], legacy: Legacy) -> None:
    """A Warehouse role without REPLICATION and a Sales user without replication grants: in auto mode both
    sources are polled, /v1/sources says why the log was not used, and changes still show."""
    with legacy.restricted_logins() as restricted:
        flush_redis_db(redis_url, 6)
        env = {**Upstreams(restricted, redis_url).env(redis_db=6), "BIZFED_WATCH_INTERVAL": str(INTERVAL),
               "BIZFED_FRESHNESS_SALES": LONG, "BIZFED_LOCAL_CACHE_TTL": "60"}
        server = launch(env, name="capture-fallback")
        watching(server, {"warehouse": "poll", "sales": "poll", "accounting": "poll"}, timeout=60)
        states = server.get("/v1/sources", role="admin").json()["data"]
        assert states["warehouse"]["changes"]["log_unavailable"], states["warehouse"]
        assert "REPLICATION" in states["sales"]["changes"]["log_unavailable"].upper(), states["sales"]
        order_no, status = legacy.order_with_status_other_than("delivered")
        path = f"/v1/orders/{order_no}"
        assert warm(server, path)["data"]["status"] == status
        legacy.sales("UPDATE orders SET status = 'delivered' WHERE order_no = %s", (order_no,))
        shows(server, path, lambda d: d["status"] == "delivered", "the change, by polling")


def test_nothing_is_lost_when_the_watchers_connections_are_killed(servers: dict[str, Server],
                                                                   legacy: Legacy) -> None:
    """Every watcher connection cut mid-stream, changes committed meanwhile: all show after the reconnect."""
    sku, location = legacy.stocked_sku()
    order_no, _ = legacy.order_with_status_other_than("draft")
    for server in servers.values():
        warm(server, f"/v1/products/{sku}", role="reader")
        warm(server, f"/v1/orders/{order_no}")
    on_hand = servers["log"].get(f"/v1/products/{sku}", role="reader").json()["data"]["on_hand"]
    legacy.kill_watchers()
    legacy.warehouse("UPDATE stock SET on_hand = on_hand + 3, updated_at = now() WHERE sku = %s "
                     "AND location_code = %s", (sku, location))
    legacy.sales("UPDATE orders SET status = 'draft' WHERE order_no = %s", (order_no,))
    legacy.kill_watchers()
    for server in servers.values():
        def caught_up(s: Server = server) -> bool:
            stock = s.get(f"/v1/products/{sku}", role="reader").json()["data"]["on_hand"]
            status = s.get(f"/v1/orders/{order_no}", role="finance").json()["data"]["status"]
            return bool(stock == on_hand + 3 and status == "draft")

        def lag_down(s: Server = server) -> bool:
            states = s.get("/v1/sources", role="admin").json()["data"]
            return all(states[name]["changes"]["lag_s"] < GENEROUS for name in ("warehouse", "sales"))
        wait_for(caught_up, GENEROUS * 3, "the changes made around the kills")
        wait_for(lag_down, GENEROUS * 3, "lag back under the bound")
