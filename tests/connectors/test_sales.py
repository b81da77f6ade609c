"""Sales connector against hand-written rows in a fresh MariaDB database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.sales import SalesConnector
from deploy.legacy.sales_tables import customers, order_lines, orders, products
from federation.queries import CustomerFilter, OrderFilter, SoldItemsFilter
from federation.records import Customer, Money, OrderStats, ProductSales, SoldItem
from tests.connectors.conftest import make_sales


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def order(order_no: str, customer_id: int, status: str, ordered_at: datetime, ship_from: str | None,
          currency: str) -> dict[str, Any]:
    return {"order_no": order_no, "customer_id": customer_id, "status": status, "ordered_at": ordered_at,
            "ship_from": ship_from, "currency": currency}


def line(order_no: str, line_no: int, product_id: int, qty: int, unit_price: str,
         discount_pct: str = "0") -> dict[str, Any]:
    return {"order_no": order_no, "line_no": line_no, "product_id": product_id, "qty": qty,
            "unit_price": Decimal(unit_price), "discount_pct": Decimal(discount_pct)}


CUSTOMERS: list[dict[str, Any]] = [
    {"id": 1, "name": "Åsa O'Brien", "email": "asa@example.com", "country": "SE",
     "created_at": datetime(2023, 1, 2, 3, 4, 5), "acct_no": "C0000001"},
    {"id": 2, "name": "東京商事 株式会社", "email": None, "country": "JP",
     "created_at": datetime(2023, 1, 3), "acct_no": "C0000002"},
    {"id": 3, "name": "Zoë D'Arcy", "email": "", "country": None, "created_at": datetime(2023, 1, 4), "acct_no": None},
    {"id": 4, "name": "Ólafur second account holder", "email": None, "country": "IS",
     "created_at": datetime(2023, 1, 5), "acct_no": "C0000001"},
    {"id": 5, "name": "Müller GmbH", "email": None, "country": "DE", "created_at": datetime(2023, 1, 6),
     "acct_no": "C0000005"},
    # id 6 is inserted below with an unreadable created_at
    {"id": 7, "name": "100% Pure_Co", "email": None, "country": "ES", "created_at": datetime(2023, 1, 8),
     "acct_no": "C0000007"},
]
PRODUCTS: list[dict[str, Any]] = [
    {"id": 10, "title": "Widget", "sku": "wh-000001", "list_price": Decimal("12.50"), "currency": "EUR"},
    {"id": 11, "title": "Widget, second listing", "sku": "wh-000001", "list_price": Decimal("99.00"),
     "currency": "EUR"},
    {"id": 12, "title": "Installation service", "sku": None, "list_price": Decimal("100.00"), "currency": "EUR"},
    {"id": 13, "title": "Gadget", "sku": "wh-000002", "list_price": Decimal("0.05"), "currency": "USD"},
    {"id": 14, "title": "Thing", "sku": "wh-000003", "list_price": Decimal("1.00"), "currency": "EUR"},
    {"id": 15, "title": "Orphan SKU product", "sku": "wh-000004", "list_price": Decimal("3.00"), "currency": "EUR"},
]
ORDERS: list[dict[str, Any]] = [
    order("SO-2024-000001", 1, "confirmed", datetime(2024, 1, 10, 10), "BCN1", "EUR"),
    order("SO-2024-000002", 1, "shipped", datetime(2024, 2, 1), "NYC1", "USD"),
    order("SO-2024-000003", 2, "cancelled", datetime(2024, 2, 5), "BCN1", "EUR"),
    order("SO-2024-000004", 2, "draft", datetime(2024, 2, 6), "BCN1", "EUR"),
    order("SO-2024-000005", 3, "delivered", datetime(2024, 3, 1), None, "EUR"),
    order("SO-2024-000006", 5, "confirmed", datetime(2024, 3, 15), "BCN1", "EUR"),
    # SO-2024-000007 is inserted below with an unknown status
    order("SO-2024-000008", 7, "confirmed", datetime(2024, 4, 1), "BCN1", "EUR"),
]
LINES: list[dict[str, Any]] = [
    line("SO-2024-000001", 1, 10, 2, "12.50"),
    line("SO-2024-000001", 2, 12, 1, "100.00", "10.00"),
    # 1 × 0.05 × 0.5 = 0.025 -> 0.03 half-up (banker's rounding would give 0.02)
    line("SO-2024-000002", 1, 13, 1, "0.05", "50.00"),
    line("SO-2024-000002", 2, 13, 3, "0.05", "50.00"),
    line("SO-2024-000003", 1, 10, 100, "12.50"),
    line("SO-2024-000004", 1, 14, 7, "1.00"),
    line("SO-2024-000005", 1, 14, 5, "1.00"),
    line("SO-2024-000005", 2, 11, 1, "99.00"),
    line("SO-2024-000008", 1, 14, 5, "1.00"),
    line("SO-2024-000008", 2, 15, 3, "3.00", "33.33"),
]


@pytest.fixture(name="rows", scope="module", autouse=True)
async def _rows(sales_url: str) -> None:
    engine = create_async_engine(sales_url)
    async with engine.begin() as conn:
        for table, rows in ((customers, CUSTOMERS), (products, PRODUCTS), (orders, ORDERS), (order_lines, LINES)):
            await conn.execute(insert(table), rows)
        # the legacy server accepts these outside strict mode; they must not break a list
        await conn.execute(text("SET SESSION sql_mode = ''"))
        await conn.execute(text("INSERT INTO customers (id, name, created_at) "
                                "VALUES (6, 'Unreadable', '0000-00-00 00:00:00')"))
        await conn.execute(text("INSERT INTO orders (order_no, customer_id, status, ordered_at, currency) "
                                "VALUES ('SO-2024-000007', 1, 'bogus', '2024-01-01 00:00:00.000000', 'EUR')"))
    await engine.dispose()


def ids(found: list[Customer]) -> list[int]:
    return [c.id for c in found]


async def test_customer_fields_are_normalised(sales: SalesConnector) -> None:
    """A customer keeps full Unicode, gets aware UTC created_at, and blank email/country become None."""
    assert await sales.customer(1) == Customer(1, "Åsa O'Brien", "asa@example.com", "SE", at(2023, 1, 2, 3, 4, 5),
                                               "C0000001")
    zoe = await sales.customer(3)
    assert zoe is not None
    assert (zoe.email, zoe.country, zoe.acct_no) == (None, None, None)
    assert await sales.customer(999) is None


async def test_unreadable_customer_is_skipped_and_pages_stay_full(sales: SalesConnector) -> None:
    """A customer with an unreadable created_at is left out, and the page after it is still full."""
    assert await sales.customer(6) is None
    assert ids(await sales.customers(CustomerFilter(), None, 3)) == [1, 2, 3]
    assert ids(await sales.customers(CustomerFilter(), 3, 3)) == [4, 5, 7]
    assert ids(await sales.customers(CustomerFilter(), 7, 3)) == []


@pytest.mark.parametrize(("where", "expected"), [
    (CustomerFilter(q="åSA"), [1]),
    (CustomerFilter(q="o'b"), [1]),
    (CustomerFilter(q="d'arcy"), [3]),
    (CustomerFilter(q="東京"), [2]),
    (CustomerFilter(q="%"), [7]),
    (CustomerFilter(q="_"), [7]),
    (CustomerFilter(country="JP"), [2]),
    (CustomerFilter(q="a", country="SE"), [1]),
])
async def test_customer_filters(sales: SalesConnector, where: CustomerFilter, expected: list[int]) -> None:
    """q is a case-insensitive substring of the name (any script, wildcards literal); country is exact."""
    assert ids(await sales.customers(where, None, 50)) == expected


async def test_customers_by_account(sales: SalesConnector) -> None:
    """A batched lookup returns what exists; the lowest id wins when two customers share an acct_no."""
    by_acct = await sales.customers_by_acct(["C0000001", "C0000002 ", "C9999999"])
    assert {k: v.id for k, v in by_acct.items()} == {"C0000001": 1, "C0000002": 2}


async def test_order_customer_is_found_by_order_number(sales: SalesConnector) -> None:
    """An order's customer comes from the order number alone; an unknown order has none."""
    order = await sales.order("SO-2024-000002")
    assert order is not None
    customer = await sales.order_customer("SO-2024-000002")
    assert customer is not None
    assert customer.id == order.customer_id
    assert await sales.order_customer("SO-1999-000001") is None


async def test_order_stats_count_every_order(sales: SalesConnector) -> None:
    """Order stats count a customer's orders and the latest time; a customer without orders gets zero."""
    stats = await sales.order_stats([2, 4])
    assert stats == {2: OrderStats(2, at(2024, 2, 6)), 4: OrderStats(0, None)}


async def test_order_totals_round_each_line_half_up(sales: SalesConnector) -> None:
    """Line totals are qty × price × (1 − discount/100) rounded half-up to cents; the order total sums them."""
    order = await sales.order("SO-2024-000002")
    assert order is not None
    assert (order.total, order.currency) == (Decimal("0.11"), "USD")  # 0.03 + 0.08
    assert order.ordered_at == at(2024, 2, 1)
    lines = await sales.order_lines("SO-2024-000002")
    assert [line.total.amount for line in lines] == [Decimal("0.03"), Decimal("0.08")]
    assert str(lines[0].total.amount) == "0.03"


async def test_order_lines_carry_sku_title_and_currency(sales: SalesConnector) -> None:
    """Lines are in line order with the canonical SKU (None for services), the product title and order currency."""
    lines = await sales.order_lines("SO-2024-000001")
    assert [(ln.line_no, ln.sku, ln.title, ln.qty) for ln in lines] == [
        (1, "WH-000001", "Widget", 2), (2, None, "Installation service", 1)]
    assert lines[1].unit_price == Money(Decimal("100.00"), "EUR")
    assert lines[1].discount_pct == Decimal("10.00")
    assert lines[1].total == Money(Decimal("90.00"), "EUR")
    third = await sales.order_lines("SO-2024-000008")
    assert third[1].total == Money(Decimal("6.00"), "EUR")  # 3 × 3.00 × 0.6667 = 6.0003
    assert await sales.order_lines("SO-2024-404404") == []


async def test_orders_list_totals_and_skips_unreadable(sales: SalesConnector) -> None:
    """The list has every readable order with its total (0.00 without lines); an unknown status is skipped."""
    found = await sales.orders(OrderFilter(), None, 50)
    assert [o.order_no for o in found] == [o["order_no"] for o in ORDERS]
    totals = {o.order_no: (str(o.total), o.currency) for o in found}
    assert totals["SO-2024-000001"] == ("115.00", "EUR")
    assert totals["SO-2024-000006"] == ("0.00", "EUR")
    assert await sales.order("SO-2024-000007") is None
    assert all(o.ordered_at.tzinfo is UTC for o in found)


async def test_orders_page_after_a_skipped_order_stays_full(sales: SalesConnector) -> None:
    """Paging past the unreadable order still returns a full page."""
    page = await sales.orders(OrderFilter(), "SO-2024-000005", 2)
    assert [o.order_no for o in page] == ["SO-2024-000006", "SO-2024-000008"]


@pytest.mark.parametrize(("where", "expected"), [
    (OrderFilter(customer_id=1), ["SO-2024-000001", "SO-2024-000002"]),
    (OrderFilter(status="cancelled"), ["SO-2024-000003"]),
    (OrderFilter(since=at(2024, 2, 5), until=at(2024, 3, 1)), ["SO-2024-000003", "SO-2024-000004"]),
    (OrderFilter(since=datetime(2024, 3, 15, 2, tzinfo=UTC).astimezone()), ["SO-2024-000008"]),
])
async def test_order_filters(sales: SalesConnector, where: OrderFilter, expected: list[str]) -> None:
    """Orders filter by customer, status and [since, until) on ordered_at, times compared in UTC."""
    assert [o.order_no for o in await sales.orders(where, None, 50)] == expected


async def test_one_page_of_orders_is_two_statements(sales: SalesConnector) -> None:
    """A page of orders costs the orders query and ONE batched lines query, whatever the page size."""
    statements = _count_statements(sales)
    await sales.orders(OrderFilter(), None, 50)
    assert len(statements) == 2
    assert "order_lines" in statements[1]


async def test_products_by_sku_lowest_id_per_sku(sales: SalesConnector) -> None:
    """Products are keyed by canonical SKU; with two listings of one SKU the lowest id wins."""
    found = await sales.products_by_sku(["WH-000001", " wh-000002", "WH-999999"])
    assert {k: (p.id, p.list_price) for k, p in found.items()} == {
        "WH-000001": (10, Money(Decimal("12.50"), "EUR")), "WH-000002": (13, Money(Decimal("0.05"), "USD"))}


async def test_product_sales_ignore_draft_and_cancelled(sales: SalesConnector) -> None:
    """Units and orders count non-draft, non-cancelled orders over every listing of the SKU."""
    assert await sales.product_sales("wh-000001") == ProductSales(3, 2, at(2024, 3, 1))
    assert await sales.product_sales("WH-999999") == ProductSales(0, 0, None)


async def test_sold_items_ranked_by_units_then_sku(sales: SalesConnector) -> None:
    """Sold items rank by units descending, then SKU, over products with a SKU, skipping draft and cancelled."""
    assert await sales.sold_items(SoldItemsFilter(), None, 50) == [
        SoldItem("WH-000003", 10), SoldItem("WH-000002", 4), SoldItem("WH-000001", 3), SoldItem("WH-000004", 3)]


async def test_sold_items_keyset_walks_ties(sales: SalesConnector) -> None:
    """Keyset on (units_sold desc, sku asc) walks the ranking one row at a time, ties included."""
    seen: list[SoldItem] = []
    after = None
    while page := await sales.sold_items(SoldItemsFilter(), after, 1):
        seen += page
        after = (page[-1].units_sold, page[-1].sku)
    assert [s.sku for s in seen] == ["WH-000003", "WH-000002", "WH-000001", "WH-000004"]


@pytest.mark.parametrize(("where", "expected"), [
    (SoldItemsFilter(location="BCN1"), [("WH-000003", 5), ("WH-000004", 3), ("WH-000001", 2)]),
    (SoldItemsFilter(since=at(2024, 2, 1), until=at(2024, 3, 2)),
     [("WH-000003", 5), ("WH-000002", 4), ("WH-000001", 1)]),
    (SoldItemsFilter(until=at(2024, 2, 1)), [("WH-000001", 2)]),
])
async def test_sold_items_filters(sales: SalesConnector, where: SoldItemsFilter,
                                  expected: list[tuple[str, int]]) -> None:
    """Sold items honour ship_from = location and ordered_at in [since, until)."""
    assert [(s.sku, s.units_sold) for s in await sales.sold_items(where, None, 50)] == expected


def _count_statements(sales: SalesConnector) -> list[str]:
    statements: list[str] = []
    sales.on_statement = statements.append
    return statements


async def test_a_call_sends_only_its_own_statements(sales_url: str, closing: Callable[[Any], None]) -> None:
    """No ping before a call and no ROLLBACK after it: the server counts just the statements the calls sent."""
    connector = make_sales(sales_url, pool_size=1)
    closing(connector)
    await connector.open()

    async def questions() -> int:   # the session's statement count, read on the connector's one connection
        return int((await connector._fetch("SHOW SESSION STATUS LIKE 'Questions'", ()))[0][1])

    sent: list[str] = []
    before = await questions()
    connector.on_statement = sent.append
    await connector.orders(OrderFilter(), None, 5)
    await connector.customer(1)
    connector.on_statement = None
    assert len(sent) == 3   # the page of orders, its totals, the customer
    assert await questions() - before == len(sent) + 1   # and the second SHOW itself


@pytest.mark.parametrize(("n", "expected"), [(500, 1), (501, 2)])
async def test_batched_lookup_is_one_statement_per_500_keys(sales: SalesConnector, n: int, expected: int) -> None:
    """A 500-key lookup is one statement (before_cursor_execute); 501 keys take two."""
    statements = _count_statements(sales)
    found = await sales.customers_by_acct(["C0000001", *(f"X{i:07d}" for i in range(n - 1))])
    assert list(found) == ["C0000001"]
    assert len([s for s in statements if "customers" in s]) == expected
