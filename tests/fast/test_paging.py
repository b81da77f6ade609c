"""Keyset paging of every list: following ``next_key`` (or the signed cursor made of it) from the first page
to the last returns every row exactly once, in the list's order, in ceil(n / limit) pages."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from api.params import Cursors
from federation.customers import list_customers
from federation.gateway import Gateway
from federation.invoices import list_invoices
from federation.locations import list_locations
from federation.orders import list_orders
from federation.paging import Page
from federation.products import list_products
from federation.queries import CustomerFilter, InvoiceFilter, ItemFilter, OrderFilter, SoldItemsFilter
from federation.sold_items import list_sold_items
from tests.fakes import FakeAccounting, FakeSales, FakeWarehouse, federation_over, request_as
from tests.fakes import rows as r

TODAY = date(2025, 3, 1)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
LIMITS = [1, 2, 3, 4, 50]
# Given out of order on purpose: the list's order must come from the keyset, not from the rows' order.
ORDER_NOS = ["SO-2025-000005", "SO-2024-000900", "SO-2025-000001", "SO-2025-000010", "SO-2025-000002",
             "SO-2024-000007", "SO-2025-000003", "SO-2025-000004"]
CUSTOMER_IDS = [12, 3, 40, 7, 1, 25]
SKUS = ["WH-000030", "WH-000002", "WH-000101", "WH-000017", "WH-000005", "WH-000099", "WH-000001"]
LOCATIONS = ["MAD2", "BCN1", "LIS1", "BCN2", "VLC1"]
INVNOS = ["INV-000104", "INV-000003", "INV-000051", "INV-000002", "INV-000210", "INV-000077", "INV-000001"]


def world() -> Gateway:
    customers = [r.customer(i, acct_no=f"C{i:07d}") for i in CUSTOMER_IDS]
    orders = [r.order(no, CUSTOMER_IDS[n % len(CUSTOMER_IDS)], ordered_at=T0 + timedelta(days=n),
                      status="cancelled" if n == 3 else "confirmed", ship_from=LOCATIONS[n % 2])
              for n, no in enumerate(ORDER_NOS)]
    # units sold per SKU tie in pairs, so the SKU must break the ties
    lines = [r.line(no, 1, SKUS[n % len(SKUS)], 1 + (n % 4) // 2 * 3) for n, no in enumerate(ORDER_NOS)]
    lines += [r.line(ORDER_NOS[0], 2, SKUS[6], 4), r.line(ORDER_NOS[1], 2, SKUS[5], 1)]
    sales = FakeSales(customers=customers, orders=orders, lines=lines,
                      products=[r.product(n, sku) for n, sku in enumerate(SKUS)])
    wh = FakeWarehouse(locations=[r.location(code) for code in LOCATIONS],
                       items=[r.item(sku, active=n % 3 != 0) for n, sku in enumerate(SKUS)],
                       stock=[r.stock(sku, LOCATIONS[n % 2], on_hand=n % 3, reserved=0) for n, sku in enumerate(SKUS)])
    # due 3, 2, 1 days ahead, today, then past due; the fifth is paid
    invoices = [r.invoice(invno, f"C{CUSTOMER_IDS[n % 3]:07d}", due_on=TODAY - timedelta(days=n - 3),
                          status="paid" if n == 4 else "open", paid="100.00" if n == 4 else "0.00")
                for n, invno in enumerate(INVNOS)]
    acct = FakeAccounting(accounts=[r.account(c.acct_no) for c in customers if c.acct_no], invoices=invoices)
    return federation_over(wh, sales, acct)


Lister = Callable[[Gateway, Any, int], Awaitable[Page[dict[str, Any]]]]


async def walk(gw: Gateway, lister: Lister, limit: int, cursors: Cursors | None = None) -> list[list[Any]]:
    """Every page's rows, following the key (through a signed cursor when ``cursors`` is given)."""
    pages: list[list[Any]] = []
    after: Any = None
    while True:
        page = await lister(gw, after, limit)
        assert len(page.rows) <= limit
        pages.append(page.rows)
        if page.next_key is None:
            return pages
        assert len(pages) < 100, "the walk does not end"
        after = page.next_key
        if cursors is not None:
            after = cursors.decode("scope", cursors.encode("scope", after))
            if isinstance(after, list):   # JSON has no tuples; api/routes.py turns the pair back into one
                after = tuple(after)


LISTS: dict[str, tuple[Lister, Callable[[dict[str, Any]], Any], list[Any]]] = {
    "orders": (lambda gw, after, n: list_orders(gw, request_as("reader"), OrderFilter(), after, n),
               lambda row: row["order_no"], sorted(ORDER_NOS)),
    "orders-confirmed": (lambda gw, after, n: list_orders(gw, request_as("reader"), OrderFilter(status="confirmed"),
                                                          after, n),
                         lambda row: row["order_no"], sorted(no for n, no in enumerate(ORDER_NOS) if n != 3)),
    "orders-since": (lambda gw, after, n: list_orders(gw, request_as("reader"),
                                                      OrderFilter(since=T0 + timedelta(days=2),
                                                                  until=T0 + timedelta(days=6)), after, n),
                     lambda row: row["order_no"], sorted(ORDER_NOS[2:6])),
    "customers": (lambda gw, after, n: list_customers(gw, request_as("finance"), CustomerFilter(), after, n, TODAY),
                  lambda row: row["id"], sorted(CUSTOMER_IDS)),
    "products": (lambda gw, after, n: list_products(gw, request_as("finance"), ItemFilter(), after, n),
                 lambda row: row["sku"], sorted(SKUS)),
    "products-in-stock": (lambda gw, after, n: list_products(gw, request_as("reader"), ItemFilter(in_stock=True),
                                                             after, n),
                          lambda row: row["sku"], sorted(sku for n, sku in enumerate(SKUS) if n % 3)),
    "products-at-bcn1": (lambda gw, after, n: list_products(gw, request_as("reader"), ItemFilter(location="BCN1"),
                                                            after, n),
                         lambda row: row["sku"], sorted(sku for n, sku in enumerate(SKUS) if n % 2 == 1)),
    "locations": (lambda gw, after, n: list_locations(gw, request_as("reader"), after, n),
                  lambda row: row["code"], sorted(LOCATIONS)),
    "invoices": (lambda gw, after, n: list_invoices(gw, request_as("finance"), InvoiceFilter(today=TODAY), None,
                                                    after, n),
                 lambda row: row["invno"], sorted(INVNOS)),
    "invoices-overdue": (lambda gw, after, n: list_invoices(gw, request_as("finance"),
                                                            InvoiceFilter(overdue=True, today=TODAY), None, after, n),
                         lambda row: row["invno"], sorted(invno for n, invno in enumerate(INVNOS) if n > 3 and n != 4)),
}


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("name", sorted(LISTS))
async def test_a_keyset_walk_returns_every_row_once_in_order(name: str, limit: int) -> None:
    lister, key, expected = LISTS[name]
    pages = await walk(world(), lister, limit)
    assert [key(row) for page in pages for row in page] == expected
    assert len(pages) == max(1, math.ceil(len(expected) / limit))   # no empty page after a full last one


@pytest.mark.parametrize("name", sorted(LISTS))
async def test_the_walk_is_the_same_through_signed_cursors(name: str) -> None:
    """Each list's next_key survives the trip through an opaque cursor (JSON inside) unchanged in effect."""
    lister, key, expected = LISTS[name]
    pages = await walk(world(), lister, 2, Cursors("secret"))
    assert [key(row) for page in pages for row in page] == expected


def sold_items_expected() -> list[tuple[int, str]]:
    """Units per SKU over the orders that count as sold (not the cancelled one), highest first, then by SKU."""
    units: dict[str, int] = {}
    for n, _ in enumerate(ORDER_NOS):
        if n != 3:
            sku = SKUS[n % len(SKUS)]
            units[sku] = units.get(sku, 0) + 1 + (n % 4) // 2 * 3
    units[SKUS[6]] = units.get(SKUS[6], 0) + 4
    units[SKUS[5]] = units.get(SKUS[5], 0) + 1
    return sorted(((u, s) for s, u in units.items()), key=lambda us: (-us[0], us[1]))


@pytest.mark.parametrize("limit", LIMITS)
async def test_sold_items_walk_by_units_then_sku(limit: int) -> None:
    """The sold-items keyset is (units, sku): ties in units are broken by SKU, none lost or repeated."""
    expected = sold_items_expected()
    assert len({u for u, _ in expected}) < len(expected), "the data must hold ties for this test to mean anything"
    pages = await walk(world(), lambda gw, after, n: list_sold_items(gw, request_as("reader"), SoldItemsFilter(),
                                                                     after, n), limit, Cursors("secret"))
    assert [(row["units_sold"], row["sku"]) for page in pages for row in page] == expected
    assert len(pages) == math.ceil(len(expected) / limit)


async def test_a_row_added_behind_the_cursor_neither_repeats_nor_shifts_the_walk() -> None:
    """Keyset, not offset: an order inserted before the position already read does not push a row twice."""
    gw = world()
    sales = gw.connectors["sales"]
    ctx = request_as("reader")
    first = await list_orders(gw, ctx, OrderFilter(), None, 3)
    sales.order_rows["SO-2000-000001"] = r.order("SO-2000-000001", CUSTOMER_IDS[0])
    sales.order_rows["SO-2099-000001"] = r.order("SO-2099-000001", CUSTOMER_IDS[0])
    rest = await walk(gw, lambda gw, after, n: list_orders(gw, ctx, OrderFilter(), after or first.next_key, n), 3)
    seen = [row["order_no"] for row in first.rows] + [row["order_no"] for page in rest for row in page]
    assert seen == [*sorted(ORDER_NOS), "SO-2099-000001"]
