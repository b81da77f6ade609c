"""The fakes answer as the connectors do: each fake is filled with what its real connector reads from the seeded
(deliberately messy) legacy databases, then both are asked the same questions (filters, keyset pages, look-ups
in any spelling) and must give equal records. This needs the servers; the fast tier trusts it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors.accounting import AccountingConnector
from connectors.sales import SalesConnector
from connectors.warehouse import WarehouseConnector
from deploy.legacy.schema import LegacyTargets
from federation.queries import CustomerFilter, InvoiceFilter, ItemFilter, OrderFilter, SoldItemsFilter
from tests.connectors.conftest import make_accounting, make_sales, make_warehouse
from tests.fakes import FakeAccounting, FakeSales, FakeWarehouse
from tests.fakes.warehouse import Shipment

TODAY = date(2026, 6, 30)       # inside the generated history, so some invoices are overdue and some not
ALL = 1_000_000                 # a limit no list reaches at scale 1
PAGE = 17                       # for walks: several pages, a short last one


@dataclass
class Pair:
    real: Any
    fake: Any

    async def both(self, op: str, *args: Any) -> tuple[Any, Any]:
        return await getattr(self.real, op)(*args), await getattr(self.fake, op)(*args)


@dataclass
class Sources:
    warehouse: Pair
    sales: Pair
    accounting: Pair
    skus: list[str]
    order_nos: list[str]
    customer_ids: list[int]
    acct_nos: list[str]
    locations: list[str]


async def _copy(wh: WarehouseConnector, sales: SalesConnector, acct: AccountingConnector) -> Sources:
    """Fakes holding what the connectors read: every row each port can reach."""
    locations = await wh.locations()
    stocked = await wh.items(ItemFilter(), None, ALL)
    skus = [s.sku for s in stocked]
    items = [i for i in [await wh.item(sku) for sku in skus] if i is not None]
    levels = [lv for sku in skus for lv in await wh.stock_levels(sku)]
    customers = await sales.customers(CustomerFilter(), None, ALL)
    orders = await sales.orders(OrderFilter(), None, ALL)
    order_nos = [o.order_no for o in orders]
    lines = [ln for no in order_nos for ln in await sales.order_lines(no)]
    shipped = await wh.shipped(order_nos)
    line_skus = sorted({ln.sku for ln in lines if ln.sku is not None} | set(skus))
    products = await sales.products_by_sku(line_skus)
    invoices = await acct.invoices(InvoiceFilter(today=TODAY), None, ALL)
    acct_nos = sorted({i.acct_no for i in invoices} | {c.acct_no for c in customers if c.acct_no})
    accounts = await acct.accounts(acct_nos, TODAY)
    costs = await acct.std_costs(line_skus)
    for rows in (items, orders, invoices):
        assert len(rows) > 100, "the seed is too small to compare"
    return Sources(
        Pair(wh, FakeWarehouse(locations=locations, items=items, stock=levels,
                               shipments=[Shipment(no, sku, qty) for (no, sku), qty in shipped.items()])),
        Pair(sales, FakeSales(customers=customers, orders=orders, lines=lines, products=products.values())),
        Pair(acct, FakeAccounting(accounts=accounts.values(), invoices=invoices, costs=costs)),
        skus, order_nos, [c.id for c in customers], acct_nos, [loc.code for loc in locations])


@pytest.fixture(name="sources", scope="module")
async def _sources(seeded: LegacyTargets) -> AsyncIterator[Sources]:
    wh, sales, acct = (make_warehouse(seeded.warehouse_dsn), make_sales(seeded.sales_url),
                       make_accounting(seeded.accounting_odbc))
    for connector in (wh, sales, acct):
        await connector.open()
    try:
        yield await _copy(wh, sales, acct)
    finally:
        for connector in (wh, sales, acct):
            await connector.close()


def _some(values: Sequence[Any], n: int = 12) -> list[Any]:
    """A spread of ``n`` values from the first to the last."""
    step = max(1, len(values) // n)
    return [*values[::step], values[-1]]


async def _walk(lister: Callable[[Any, int], Awaitable[list[Any]]], key: Callable[[Any], Any]) -> list[Any]:
    rows: list[Any] = []
    after = None
    while True:
        page = await lister(after, PAGE)
        rows.extend(page)
        if len(page) < PAGE:
            return rows
        after = key(page[-1])


async def _same_walk(pair: Pair, op: str, where: Any, key: Callable[[Any], Any]) -> None:
    real = await _walk(lambda after, n: getattr(pair.real, op)(where, after, n), key)
    fake = await _walk(lambda after, n: getattr(pair.fake, op)(where, after, n), key)
    assert real, f"{op}({where}) is empty: the comparison would prove nothing"
    assert fake == real, f"{op}({where}) differs"


def _mismatches(found: list[tuple[str, Any, Any]]) -> list[str]:
    return [f"{what}: real {real!r} != fake {fake!r}" for what, real, fake in found if real != fake]


async def test_warehouse_lists_match(sources: Sources) -> None:
    wh = sources.warehouse
    real, fake = await wh.both("locations")
    assert fake == real
    filters = [ItemFilter(), ItemFilter(in_stock=True), ItemFilter(in_stock=False), ItemFilter(active=False),
               ItemFilter(q="e"), ItemFilter(q=sources.skus[5][-4:].lower()), ItemFilter(q="E", in_stock=True),
               *(ItemFilter(location=code) for code in sources.locations),
               ItemFilter(location=f" {sources.locations[0]} ", in_stock=True, active=True)]
    for where in filters:
        await _same_walk(wh, "items", where, lambda row: row.sku)


async def test_warehouse_lookups_match(sources: Sources) -> None:
    wh = sources.warehouse
    skus = [*_some(sources.skus), "WH-999999", f"  {sources.skus[3].lower()} ", ""]
    found = []
    for sku in skus:
        found += [(f"item({sku!r})", *await wh.both("item", sku)),
                  (f"stock_levels({sku!r})", *await wh.both("stock_levels", sku))]
    found += [("stock_totals", *await wh.both("stock_totals", skus)),
              ("item_names", *await wh.both("item_names", skus))]
    nos = [*_some(sources.order_nos, 40), "SO-0000-000000", f" {sources.order_nos[7]} "]
    found.append(("shipped", *await wh.both("shipped", nos)))
    assert found[-1][1], "no shipments among the orders compared"
    assert not _mismatches(found)


async def test_sales_lists_match(sources: Sources) -> None:
    s = sources.sales
    some_customer = sources.customer_ids[len(sources.customer_ids) // 2]
    for where in [CustomerFilter(), CustomerFilter(q="a"), CustomerFilter(q="SON"), CustomerFilter(country="DE"),
                  CustomerFilter(country=" ES ", q="e")]:
        await _same_walk(s, "customers", where, lambda row: row.id)
    middle = datetime(2024, 6, 1, tzinfo=UTC)
    for order_where in [OrderFilter(), OrderFilter(status="cancelled"), OrderFilter(status="draft"),
                        OrderFilter(since=middle), OrderFilter(until=middle),
                        OrderFilter(customer_id=some_customer), OrderFilter(status="delivered", since=middle)]:
        await _same_walk(s, "orders", order_where, lambda row: row.order_no)
    for sold_where in [SoldItemsFilter(), SoldItemsFilter(since=middle), SoldItemsFilter(until=middle),
                       *(SoldItemsFilter(location=code) for code in sources.locations)]:
        await _same_walk(s, "sold_items", sold_where, lambda row: (row.units_sold, row.sku))


async def test_sales_lookups_match(sources: Sources) -> None:
    s = sources.sales
    ids = [*_some(sources.customer_ids), 0, 10**9]
    nos = [*_some(sources.order_nos, 30), "SO-0000-000000", f" {sources.order_nos[11]} "]
    skus = [*_some(sources.skus, 30), "WH-999999", f" {sources.skus[2].lower()}"]
    found = []
    for customer_id in ids:
        found.append((f"customer({customer_id})", *await s.both("customer", customer_id)))
    found += [("order_stats", *await s.both("order_stats", ids)),
              ("customers_by_acct", *await s.both("customers_by_acct", [*sources.acct_nos, " ", "NOPE"])),
              ("products_by_sku", *await s.both("products_by_sku", skus))]
    for no in nos:
        found += [(f"order({no!r})", *await s.both("order", no)),
                  (f"order_lines({no!r})", *await s.both("order_lines", no)),
                  (f"order_customer({no!r})", *await s.both("order_customer", no))]
    for sku in skus:
        found.append((f"product_sales({sku!r})", *await s.both("product_sales", sku)))
    assert not _mismatches(found)


async def test_accounting_matches(sources: Sources) -> None:
    a = sources.accounting
    # an account with open invoices not yet overdue, so the narrowest filter below has rows to compare
    some_acct = (await a.real.invoices(InvoiceFilter(status="open", overdue=False, today=TODAY), None, 1))[0].acct_no
    for where in [InvoiceFilter(today=TODAY), InvoiceFilter(status="open", today=TODAY),
                  InvoiceFilter(status="paid", today=TODAY), InvoiceFilter(overdue=True, today=TODAY),
                  InvoiceFilter(overdue=False, today=TODAY), InvoiceFilter(acct_no=f" {some_acct}", today=TODAY),
                  InvoiceFilter(acct_no=some_acct, overdue=False, status="open", today=TODAY)]:
        await _same_walk(a, "invoices", where, lambda row: row.invno)
    accts = [*sources.acct_nos, "NOPE", " ", "X" * 11]
    nos = [*_some(sources.order_nos, 60), "SO-0000-000000", "S" * 21]
    found = [(f"accounts({day})", *await a.both("accounts", accts, day)) for day in (TODAY, date(2025, 1, 1))]
    found += [(f"invoices_for_orders({day})", *await a.both("invoices_for_orders", nos, day))
              for day in (TODAY, date(2025, 1, 1))]
    found.append(("std_costs", *await a.both("std_costs", [*sources.skus, "WH-999999", " wh-000001 "])))
    assert not _mismatches(found)
