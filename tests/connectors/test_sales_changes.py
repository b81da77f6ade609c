"""The Sales polling feed against seeded Sales on MariaDB through SQLAlchemy (asyncmy): row changes of
each table reported with what they touch, repeated until acknowledged, never lost to a killed
connection or a round the server never answers."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pyodbc
import pytest
from sqlalchemy.engine import make_url

from connectors.sales_changes import TABLES, SalesPoll
from deploy.legacy.schema import LegacyTargets, sales_as_odbc
from deploy.local.addresses import url_port, url_with_port
from deploy.local.faultproxy import FaultProxy
from federation.changes import Ref
from federation.errors import SourceTimeout
from tests.connectors.feeds import one, poll_until_it_answers, refs, settled

TIMEOUT = 1.0


@pytest.fixture(name="db", scope="module")
def _db(seeded: LegacyTargets) -> Iterator[pyodbc.Connection]:
    """A sales clerk's connection: what it writes, the feed must see."""
    conn = pyodbc.connect(sales_as_odbc(seeded.sales_url, seeded.accounting_odbc), autocommit=True, timeout=5)
    conn.setencoding(encoding="utf-8")
    conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
    conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(name="feed")
async def _feed(seeded: LegacyTargets) -> AsyncIterator[SalesPoll]:
    feed = SalesPoll(seeded.sales_url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    await feed.start()
    try:
        yield feed
    finally:
        await feed.close()






def skus_of_order(db: pyodbc.Connection, order_no: str) -> set[Ref]:
    rows = db.execute("SELECT p.sku FROM order_lines l JOIN products p ON p.id = l.product_id "
                      "WHERE l.order_no = ? AND p.sku IS NOT NULL", order_no).fetchall()
    return {Ref("sku", r[0].strip().upper()) for r in rows}


async def test_a_quiet_feed_reports_nothing_and_costs_one_query_per_table(feed: SalesPoll) -> None:
    before = feed.queries
    for _ in range(5):
        batch = await settled(feed)
        assert batch.changes == ()
        assert batch.complete
    assert feed.queries - before == 5 * len(TABLES)
    assert feed.mode == "poll"
    facts = json.loads(json.dumps(feed.details()))
    assert facts["dialect"] == "mysql"
    assert facts["rows_held"] > 1000


async def test_a_same_length_name_edit_names_the_customer_account_and_orders(feed: SalesPoll,
                                                                             db: pyodbc.Connection) -> None:
    cid, name, acct = one(db, "SELECT id, name, acct_no FROM customers WHERE acct_no IS NOT NULL AND EXISTS "
                              "(SELECT 1 FROM orders o WHERE o.customer_id = customers.id) ORDER BY id LIMIT 1")
    orders = {Ref("order", r[0]) for r in db.execute("SELECT order_no FROM orders WHERE customer_id = ?", cid)}
    db.execute("UPDATE customers SET name = ? WHERE id = ?", name[:-1] + ("a" if name[-1] != "a" else "b"), cid)

    batch = await settled(feed)
    assert [c.table for c in batch.changes] == ["customers"]
    assert refs(batch) == {Ref("customer", str(cid)), Ref("account", acct.strip())} | orders
    assert batch.changes[0].committed_at is None


async def test_an_email_set_and_cleared_is_seen(feed: SalesPoll, db: pyodbc.Connection) -> None:
    cid = one(db, "SELECT MAX(id) FROM customers")[0]
    db.execute("UPDATE customers SET email = NULL WHERE id = ?", cid)
    await settled(feed)
    db.execute("UPDATE customers SET email = '' WHERE id = ?", cid)
    assert Ref("customer", str(cid)) in refs(await settled(feed))
    db.execute("UPDATE customers SET email = NULL WHERE id = ?", cid)
    assert Ref("customer", str(cid)) in refs(await settled(feed))


async def test_an_order_status_change_names_the_order_its_customer_and_skus(feed: SalesPoll,
                                                                            db: pyodbc.Connection) -> None:
    order_no, cid, status = one(db, "SELECT order_no, customer_id, status FROM orders WHERE EXISTS "
                                    "(SELECT 1 FROM order_lines l WHERE l.order_no = orders.order_no) "
                                    "ORDER BY order_no LIMIT 1")
    db.execute("UPDATE orders SET status = ? WHERE order_no = ?", "cancelled" if status != "cancelled" else "draft",
               order_no)

    batch = await settled(feed)
    assert [c.table for c in batch.changes] == ["orders"]
    assert refs(batch) == {Ref("order", order_no), Ref("customer", str(cid))} | skus_of_order(db, order_no)


async def test_an_order_line_added_and_removed_names_its_order_and_sku(feed: SalesPoll, db: pyodbc.Connection) -> None:
    order_no = one(db, "SELECT MIN(order_no) FROM orders")[0]
    pid, sku = one(db, "SELECT id, sku FROM products WHERE sku IS NOT NULL ORDER BY id LIMIT 1")
    db.execute("INSERT INTO order_lines (order_no, line_no, product_id, qty, unit_price, discount_pct) "
               "VALUES (?, 999, ?, 1, 9.99, 0)", order_no, pid)
    expected = {Ref("order", order_no), Ref("sku", sku.strip().upper())}
    batch = await settled(feed)
    assert [c.table for c in batch.changes] == ["order_lines"]
    assert refs(batch) == expected

    db.execute("DELETE FROM order_lines WHERE order_no = ? AND line_no = 999", order_no)
    assert refs(await settled(feed)) == expected


async def test_a_discount_changed_on_a_line_is_seen(feed: SalesPoll, db: pyodbc.Connection) -> None:
    order_no, line_no = one(db, "SELECT order_no, line_no FROM order_lines ORDER BY order_no DESC, line_no LIMIT 1")
    db.execute("UPDATE order_lines SET discount_pct = discount_pct + 0.01 WHERE order_no = ? AND line_no = ?",
               order_no, line_no)
    assert Ref("order", order_no) in refs(await settled(feed))


async def test_titles_swapped_between_two_products_name_both_skus(feed: SalesPoll, db: pyodbc.Connection) -> None:
    (a, title_a, sku_a), (b, title_b, sku_b) = db.execute(
        "SELECT id, title, sku FROM products WHERE sku IS NOT NULL ORDER BY id LIMIT 2").fetchall()
    db.execute("UPDATE products SET title = ? WHERE id = ?", title_b, a)
    db.execute("UPDATE products SET title = ? WHERE id = ?", title_a, b)

    found = {ref for ref in refs(await settled(feed)) if ref.kind == "sku"}
    assert found == {Ref("sku", sku_a.strip().upper()), Ref("sku", sku_b.strip().upper())}


async def test_a_price_change_is_repeated_until_acknowledged(feed: SalesPoll, db: pyodbc.Connection) -> None:
    pid, sku = one(db, "SELECT id, sku FROM products WHERE sku IS NOT NULL ORDER BY id DESC LIMIT 1")
    db.execute("UPDATE products SET list_price = list_price + 0.01 WHERE id = ?", pid)

    first, second = await feed.poll(), await feed.poll()
    assert first.changes == second.changes
    assert Ref("sku", sku.strip().upper()) in refs(first)
    await feed.ack(first)
    assert (await feed.poll()).changes == ()



async def test_no_change_is_lost_to_a_killed_connection(feed: SalesPoll, db: pyodbc.Connection,
                                                        seeded: LegacyTargets) -> None:
    await settled(feed)
    cid = one(db, "SELECT MIN(id) FROM customers")[0]
    db.execute("UPDATE customers SET country = CASE WHEN country = 'DE' THEN 'FR' ELSE 'DE' END WHERE id = ?", cid)
    ids = [r[0] for r in db.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? "
                                    "AND ID <> CONNECTION_ID()", make_url(seeded.sales_url).database).fetchall()]
    assert len(ids) == 1
    db.execute(f"KILL {int(ids[0])}")

    assert Ref("customer", str(cid)) in refs(await poll_until_it_answers(feed, 5.0))


@pytest.fixture(name="proxied")
async def _proxied(seeded: LegacyTargets,
                   proxy_factory: Callable[[int], FaultProxy]) -> AsyncIterator[tuple[SalesPoll, FaultProxy]]:
    proxy = proxy_factory(url_port(seeded.sales_url))
    feed = SalesPoll(url_with_port(seeded.sales_url, proxy.port), timeout=TIMEOUT, connect_timeout=TIMEOUT)
    await feed.start()
    try:
        yield feed, proxy
    finally:
        proxy.pass_through()
        await feed.close()


async def test_a_blackholed_round_costs_one_bounded_round_and_loses_nothing(
        proxied: tuple[SalesPoll, FaultProxy], db: pyodbc.Connection) -> None:
    feed, proxy = proxied
    await settled(feed)
    order_no = one(db, "SELECT MAX(order_no) FROM orders")[0]
    db.execute("UPDATE orders SET ship_from = CASE WHEN ship_from = 'X1' THEN 'X2' ELSE 'X1' END WHERE order_no = ?",
               order_no)

    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(SourceTimeout):
        await feed.poll()
    assert time.monotonic() - started < TIMEOUT + 2.0

    proxy.pass_through()
    batch = await poll_until_it_answers(feed, 10.0)
    assert Ref("order", order_no) in refs(batch)
    await feed.ack(batch)
    assert (await feed.poll()).changes == ()
