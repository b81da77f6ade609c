"""SalesRefs against this module's real Sales MariaDB (and the same statements on SQLite)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pymysql
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.sales_refs import RowChange, SalesRefs
from federation.changes import ACCOUNT, CUSTOMER, ORDER, SKU, Ref

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def refs(*pairs: tuple[str, str]) -> frozenset[Ref]:
    return frozenset(Ref(kind, key) for kind, key in pairs)  # type: ignore[arg-type]


@pytest.fixture(name="db", scope="module")
def _db(sales_url: str) -> Iterator[pymysql.connections.Connection[Any]]:
    """A plain connection to write the module's rows with, and the rows every test reads."""
    url = make_url(sales_url)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username or "root",
                           password=url.password or "", database=url.database, autocommit=True)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO customers (id, name, created_at, acct_no) VALUES (%s, %s, NOW(), %s)",
                        [(1, "Ada", "C0000001"), (2, "Bob", None), (3, "Cy", None)])
        cur.executemany("INSERT INTO products (id, title, sku, list_price, currency) VALUES (%s, %s, %s, 1, 'EUR')",
                        [(10, "Widget", "wh-000010"), (11, "Gadget", " wh-000011"), (12, "Install", None)])
        cur.executemany("INSERT INTO orders (order_no, customer_id, status, ordered_at, currency) "
                        "VALUES (%s, %s, 'confirmed', NOW(), 'EUR')",
                        [("SO-1", 1), ("SO-2", 1), ("SO-3", 2)])
        cur.executemany("INSERT INTO order_lines (order_no, line_no, product_id, qty, unit_price) "
                        "VALUES (%s, %s, %s, 1, 1)",
                        [("SO-1", 1, 10), ("SO-1", 2, 11), ("SO-1", 3, 12), ("SO-2", 1, 10), ("SO-3", 1, 11)])
    yield conn
    conn.close()


@pytest.fixture(name="sales_refs")
async def _sales_refs(db: Any, sales_url: str) -> AsyncIterator[SalesRefs]:
    engine = create_async_engine(sales_url, pool_size=1, max_overflow=0)

    async def fetch(sql: str, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        async with engine.connect() as conn:
            return (await conn.exec_driver_sql(sql, tuple(values))).all()

    yield SalesRefs(fetch)
    await engine.dispose()


ORDER_ROW = {"order_no": "SO-1", "customer_id": 1, "status": "confirmed", "currency": "EUR"}


async def test_order_status_change_touches_the_skus_of_its_lines(sales_refs: SalesRefs) -> None:
    change = RowChange("orders", ORDER_ROW | {"status": "draft"}, ORDER_ROW, WHEN)
    [got] = await sales_refs.refs([change])
    assert got.table == "orders"
    assert got.committed_at == WHEN
    assert got.refs == refs((ORDER, "SO-1"), (CUSTOMER, "1"), (SKU, "WH-000010"), (SKU, "WH-000011"))


async def test_order_moved_to_another_customer_touches_both(sales_refs: SalesRefs) -> None:
    [got] = await sales_refs.refs([RowChange("orders", ORDER_ROW | {"customer_id": 2}, ORDER_ROW)])
    assert {(CUSTOMER, "1"), (CUSTOMER, "2")} <= {(r.kind, r.key) for r in got.refs}
    assert got.committed_at is None


async def test_order_insert_and_delete_without_lines(sales_refs: SalesRefs) -> None:
    new = {"order_no": "SO-9 ", "customer_id": 3, "status": "draft"}
    inserted, deleted = await sales_refs.refs([RowChange("orders", None, new), RowChange("orders", new, None)])
    assert inserted.refs == deleted.refs == refs((ORDER, "SO-9"), (CUSTOMER, "3"))


async def test_order_line_changes_touch_order_and_product_sku(sales_refs: SalesRefs) -> None:
    line = {"order_no": "SO-3", "line_no": 1, "product_id": 11, "qty": 1}
    inserted, updated, deleted = await sales_refs.refs([
        RowChange("order_lines", None, line),
        RowChange("order_lines", line, line | {"product_id": 10, "qty": 2}),
        RowChange("order_lines", line, None),
    ])
    assert inserted.refs == deleted.refs == refs((ORDER, "SO-3"), (SKU, "WH-000011"))
    assert updated.refs == refs((ORDER, "SO-3"), (SKU, "WH-000011"), (SKU, "WH-000010"))


async def test_order_line_of_a_service_product_names_no_sku(sales_refs: SalesRefs) -> None:
    [got] = await sales_refs.refs([RowChange("order_lines", None, {"order_no": "SO-1", "product_id": 12})])
    assert got.refs == refs((ORDER, "SO-1"))


async def test_customer_changes_touch_accounts_and_every_order(sales_refs: SalesRefs) -> None:
    ada = {"id": 1, "name": "Ada", "acct_no": "C0000001"}
    renamed, moved, inserted, deleted = await sales_refs.refs([
        RowChange("customers", ada, ada | {"name": "Ada L."}),
        RowChange("customers", ada, ada | {"acct_no": "C0000099 "}),
        RowChange("customers", None, {"id": 3, "name": "Cy", "acct_no": None}),
        RowChange("customers", {"id": 7, "name": "Gone", "acct_no": "C0000007"}, None),
    ])
    orders_of_ada = {(ORDER, "SO-1"), (ORDER, "SO-2")}
    assert renamed.refs == refs((CUSTOMER, "1"), (ACCOUNT, "C0000001"), *orders_of_ada)
    assert moved.refs == refs((CUSTOMER, "1"), (ACCOUNT, "C0000001"), (ACCOUNT, "C0000099"), *orders_of_ada)
    assert inserted.refs == refs((CUSTOMER, "3"))
    assert deleted.refs == refs((CUSTOMER, "7"), (ACCOUNT, "C0000007"))


async def test_product_changes_touch_both_skus_and_orders_having_it(sales_refs: SalesRefs) -> None:
    widget = {"id": 10, "title": "Widget", "sku": "wh-000010"}
    resku, retitled, inserted, deleted = await sales_refs.refs([
        RowChange("products", widget, widget | {"sku": "wh-000077"}),
        RowChange("products", {"id": 12, "title": "Install", "sku": None}, {"id": 12, "title": "Setup", "sku": None}),
        RowChange("products", None, {"id": 13, "title": "New", "sku": "wh-000013"}),
        RowChange("products", {"id": 14, "title": "Old", "sku": ""}, None),
    ])
    assert resku.refs == refs((SKU, "WH-000010"), (SKU, "WH-000077"), (ORDER, "SO-1"), (ORDER, "SO-2"))
    assert retitled.refs == refs((ORDER, "SO-1"))
    assert inserted.refs == refs((SKU, "WH-000013"))
    assert deleted.refs == frozenset()


async def test_lookups_are_batched_one_statement_per_kind(sales_refs: SalesRefs) -> None:
    rows = [RowChange("orders", None, ORDER_ROW | {"order_no": f"SO-{i}"}) for i in range(1, 4)]
    rows += [RowChange("order_lines", None, {"order_no": "SO-1", "product_id": p}) for p in (10, 11, 12)]
    rows += [RowChange("customers", None, {"id": i}) for i in (1, 2, 3)]
    rows += [RowChange("products", None, {"id": p, "sku": None}) for p in (10, 11, 12)]
    rows += [RowChange("audit_log", None, {"id": 1})]
    changes = await sales_refs.refs(rows)
    assert sales_refs.queries == 4
    assert len(changes) == 12   # the table no answer is built from is left out
    assert changes[8].refs == refs((CUSTOMER, "3"))


async def test_long_in_lists_are_chunked(sales_refs: SalesRefs) -> None:
    rows = [RowChange("customers", None, {"id": i}) for i in range(1, 1202)]
    changes = await sales_refs.refs(rows)
    assert sales_refs.queries == 3   # 1201 keys in chunks of 500
    assert changes[0].refs == refs((CUSTOMER, "1"), (ORDER, "SO-1"), (ORDER, "SO-2"))
    assert await sales_refs.refs([]) == []
    assert sales_refs.queries == 3


async def test_the_statements_run_on_sqlite_too() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript("""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, acct_no TEXT);
        CREATE TABLE products (id INTEGER PRIMARY KEY, title TEXT, sku TEXT);
        CREATE TABLE orders (order_no TEXT PRIMARY KEY, customer_id INTEGER, status TEXT);
        CREATE TABLE order_lines (order_no TEXT, line_no INTEGER, product_id INTEGER, PRIMARY KEY (order_no, line_no));
        INSERT INTO customers VALUES (1, 'Ada', 'C0000001');
        INSERT INTO products VALUES (10, 'Widget', 'wh-000010');
        INSERT INTO orders VALUES ('SO-1', 1, 'draft');
        INSERT INTO order_lines VALUES ('SO-1', 1, 10);
    """)

    async def fetch(sql: str, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return conn.execute(sql.replace("%s", "?"), tuple(values)).fetchall()

    sales_refs = SalesRefs(fetch)
    got = await sales_refs.refs([
        RowChange("orders", None, {"order_no": "SO-1", "customer_id": 1}),
        RowChange("order_lines", None, {"order_no": "SO-1", "product_id": 10}),
        RowChange("customers", None, {"id": 1, "acct_no": "C0000001"}),
        RowChange("products", None, {"id": 10, "sku": "wh-000010"}),
    ])
    conn.close()
    assert [c.refs for c in got] == [
        refs((ORDER, "SO-1"), (CUSTOMER, "1"), (SKU, "WH-000010")),
        refs((ORDER, "SO-1"), (SKU, "WH-000010")),
        refs((CUSTOMER, "1"), (ACCOUNT, "C0000001"), (ORDER, "SO-1")),
        refs((SKU, "WH-000010"), (ORDER, "SO-1")),
    ]
