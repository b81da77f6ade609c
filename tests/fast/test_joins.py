"""The other resources' joins across systems: products (stock + Sales price + Accounting cost), customers (+ their
account), invoices (+ their Sales customer) and sold items (+ Warehouse names and stock), whole and partial."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from federation.customers import get_customer, list_customers
from federation.errors import NotFound, PrimaryUnavailable, SourceUnavailable
from federation.invoices import list_invoices
from federation.locations import list_locations
from federation.products import get_product, list_products
from federation.queries import CustomerFilter, InvoiceFilter, ItemFilter, SoldItemsFilter
from federation.records import Money
from federation.sold_items import list_sold_items
from tests.fakes import FakeAccounting, FakeSales, FakeWarehouse, federation_over, request_as
from tests.fakes import rows as r

TODAY = date(2025, 3, 1)
T0 = datetime(2025, 1, 10, tzinfo=UTC)


def world() -> tuple[FakeWarehouse, FakeSales, FakeAccounting]:
    wh = FakeWarehouse(
        locations=[r.location("MAD2", "Madrid"), r.location("BCN1")],
        items=[r.item("WH-000001", "Bolt"), r.item("WH-000002", "Nut"), r.item("WH-000003", "Washer")],
        stock=[r.stock("WH-000001", "MAD2", 10, 4), r.stock("WH-000001", "BCN1", 5, 1),
               r.stock("WH-000002", "BCN1", 2, 2)])
    sales = FakeSales(
        customers=[r.customer(1, "Ada", acct_no="C0000001"), r.customer(2, "Bea", acct_no="C0000002"),
                   r.customer(3, "Ada's twin account", acct_no="C0000001"), r.customer(4, "Cash only")],
        orders=[r.order("SO-1", 1, ordered_at=T0, ship_from="BCN1"),
                r.order("SO-2", 2, ordered_at=T0 + timedelta(days=3), ship_from="MAD2"),
                r.order("SO-3", 1, ordered_at=T0 + timedelta(days=9), status="cancelled"),
                r.order("SO-4", 1, ordered_at=T0 + timedelta(days=5), status="draft"),
                r.order("SO-5", 2, ordered_at=T0 + timedelta(days=7), status="delivered", ship_from="BCN1")],
        lines=[r.line("SO-1", 1, "WH-000001", 3), r.line("SO-1", 2, "WH-000009", 1),
               r.line("SO-2", 1, "WH-000001", 2), r.line("SO-2", 2, "WH-000003", 6),
               r.line("SO-3", 1, "WH-000001", 50), r.line("SO-4", 1, "WH-000001", 70),
               r.line("SO-5", 1, "WH-000001", 1)],
        products=[r.product(20, "WH-000001", "9.99", title="Bolt, newer listing"),
                  r.product(10, "WH-000001", "8.50", title="Bolt M6"),
                  r.product(11, "WH-000003", "0.40")])
    acct = FakeAccounting(
        accounts=[r.account("C0000001", "Ada SL", status="on_hold"), r.account("C0000002", "Bea SA")],
        invoices=[r.invoice("INV-1", "C0000001", order_no="SO-1", amount="30.00", paid="5.00",
                            due_on=TODAY - timedelta(days=1)),
                  r.invoice("INV-2", "C0000001", amount="12.00", due_on=TODAY + timedelta(days=9)),
                  r.invoice("INV-3", "C0000001", amount="99.00", paid="99.00", status="paid"),
                  r.invoice("INV-4", "C0000002", order_no="SO-2", amount="20.00", due_on=TODAY),
                  r.invoice("INV-5", "C0000099", amount="1.00")],
        costs={"WH-000001": Money(Decimal("4.10"), "EUR"), "WH-000002": Money(Decimal("0.05"), "EUR")})
    return wh, sales, acct


async def test_products_join_stock_price_and_cost() -> None:
    """Stock summed over locations, the list price of the lowest Sales product id of the SKU, the std cost."""
    wh, sales, acct = world()
    ctx = request_as("finance")
    page = await list_products(federation_over(wh, sales, acct), ctx, ItemFilter(), None, 10)
    got = {row["sku"]: row for row in page.rows}
    assert list(got) == ["WH-000001", "WH-000002", "WH-000003"]
    assert (got["WH-000001"]["on_hand"], got["WH-000001"]["reserved"], got["WH-000001"]["available"]) == (15, 5, 10)
    assert got["WH-000001"]["list_price"] == {"amount": "8.50", "currency": "EUR"}
    assert got["WH-000001"]["std_cost"] == {"amount": "4.10", "currency": "EUR"}
    # the warehouse item Sales does not sell, and the one Accounting has no cost for: null, and not partial
    assert got["WH-000002"]["list_price"] is None
    assert got["WH-000003"]["std_cost"] is None
    assert (got["WH-000003"]["on_hand"], got["WH-000003"]["available"]) == (0, 0)
    assert not ctx.partial


async def test_one_product_has_its_stock_by_location_and_its_sales() -> None:
    """Stock per location in location order; sales count units and orders of orders neither draft nor cancelled."""
    wh, sales, acct = world()
    got = await get_product(federation_over(wh, sales, acct), request_as("finance"), "WH-000001")
    assert got["sku"] == "WH-000001"
    assert got["sales_title"] == "Bolt M6"
    assert [(s["location"], s["available"]) for s in got["stock"]] == [("BCN1", 4), ("MAD2", 6)]
    assert (got["on_hand"], got["reserved"], got["available"]) == (15, 5, 10)
    assert got["sales"] == {"units_sold": 3 + 2 + 1, "orders": 3, "last_ordered_at": T0 + timedelta(days=7)}
    assert got["std_cost"] == {"amount": "4.10", "currency": "EUR"}


async def test_an_unknown_product_is_not_found() -> None:
    wh, sales, acct = world()
    with pytest.raises(NotFound):
        await get_product(federation_over(wh, sales, acct), request_as("reader"), "WH-000404")


@pytest.mark.parametrize(("failing", "nulled"), [("sales", "list_price"), ("accounting", "std_cost")])
async def test_a_products_secondary_source_failing_nulls_its_fields(failing: str, nulled: str) -> None:
    wh, sales, acct = world()
    {"sales": sales, "accounting": acct}[failing].fail(SourceUnavailable)
    ctx = request_as("finance")
    page = await list_products(federation_over(wh, sales, acct), ctx, ItemFilter(), None, 10)
    assert [row[nulled] for row in page.rows] == [None, None, None]
    assert [row["available"] for row in page.rows] == [10, 0, 0]
    assert ctx.partial
    assert ctx.sources[failing].status == "unavailable"


async def test_products_without_the_warehouse_are_primary_unavailable() -> None:
    wh, sales, acct = world()
    wh.fail(SourceUnavailable, "items")
    with pytest.raises(PrimaryUnavailable) as failed:
        await list_products(federation_over(wh, sales, acct), request_as("reader"), ItemFilter(), None, 10)
    assert failed.value.source == "warehouse"


async def test_one_product_without_its_stock_is_primary_unavailable() -> None:
    """A product's stock levels come from its primary source too: their failure is a 503, not a null."""
    wh, sales, acct = world()
    wh.fail(SourceUnavailable, "stock_levels")
    with pytest.raises(PrimaryUnavailable):
        await get_product(federation_over(wh, sales, acct), request_as("reader"), "WH-000001")


async def test_customers_join_their_accounts_balances() -> None:
    """Open balance: the sum over the account's open invoices of amount less paid; no account, no balance."""
    wh, sales, acct = world()
    ctx = request_as("finance")
    page = await list_customers(federation_over(wh, sales, acct), ctx, CustomerFilter(), None, 10, TODAY)
    got = {row["id"]: (row["account_status"], row["open_balance"]) for row in page.rows}
    assert got == {1: ("on_hold", {"amount": "37.00", "currency": "EUR"}),
                   2: ("active", {"amount": "20.00", "currency": "EUR"}),
                   3: ("on_hold", {"amount": "37.00", "currency": "EUR"}),
                   4: (None, None)}
    assert not ctx.partial


async def test_one_customer_has_its_account_and_order_count() -> None:
    """Overdue balance counts open balances due before today; the order count is every order of the customer."""
    wh, sales, acct = world()
    got = await get_customer(federation_over(wh, sales, acct), request_as("finance"), 1, TODAY)
    assert got["account"] == {
        "acct_no": "C0000001", "name": "Ada SL", "status": "on_hold",
        "credit_limit": {"amount": "5000.00", "currency": "EUR"},
        "open_balance": {"amount": "37.00", "currency": "EUR"},
        "overdue_balance": {"amount": "25.00", "currency": "EUR"}, "open_invoices": 2}
    assert got["orders"] == {"count": 3, "last_ordered_at": T0 + timedelta(days=9)}


async def test_a_customer_without_an_account_does_not_ask_accounting() -> None:
    wh, sales, acct = world()
    ctx = request_as("finance")
    got = await get_customer(federation_over(wh, sales, acct), ctx, 4, TODAY)
    assert got["account"] is None
    assert got["orders"] == {"count": 0, "last_ordered_at": None}
    assert acct.calls == []


async def test_a_page_of_customers_without_accounts_does_not_ask_accounting() -> None:
    wh, sales, acct = world()
    ctx = request_as("finance")
    page = await list_customers(federation_over(wh, sales, acct), ctx, CustomerFilter(q="cash"), None, 10, TODAY)
    assert [(row["id"], row["open_balance"]) for row in page.rows] == [(4, None)]
    assert acct.calls == []
    assert not ctx.partial


async def test_a_customers_order_count_failing_is_null_and_partial() -> None:
    wh, sales, acct = world()
    sales.fail(SourceUnavailable, "order_stats")
    ctx = request_as("finance")
    got = await get_customer(federation_over(wh, sales, acct), ctx, 1, TODAY)
    assert got["orders"] is None
    assert got["account"]["acct_no"] == "C0000001"
    assert ctx.partial


async def test_customers_filter_by_name_and_country() -> None:
    wh, sales, acct = world()
    sales.customer_rows[5] = r.customer(5, "ADAMS & Co", country="PT")
    gw = federation_over(wh, sales, acct)
    by_name = await list_customers(gw, request_as("reader"), CustomerFilter(q="ada"), None, 10, TODAY)
    assert [row["id"] for row in by_name.rows] == [1, 3, 5]
    by_country = await list_customers(gw, request_as("reader"), CustomerFilter(country="PT"), None, 10, TODAY)
    assert [row["id"] for row in by_country.rows] == [5]


async def test_invoices_name_the_sales_customer_of_their_account() -> None:
    """An account shared by two customers names the lowest id; an account Sales does not know names none."""
    wh, sales, acct = world()
    ctx = request_as("finance")
    page = await list_invoices(federation_over(wh, sales, acct), ctx, InvoiceFilter(today=TODAY), None, None, 10)
    assert [(row["invno"], row["customer_id"]) for row in page.rows] == [
        ("INV-1", 1), ("INV-2", 1), ("INV-3", 1), ("INV-4", 2), ("INV-5", None)]
    assert [row["overdue"] for row in page.rows] == [True, False, False, False, False]
    assert [row["balance"]["amount"] for row in page.rows] == ["25.00", "12.00", "0.00", "20.00", "1.00"]
    assert not ctx.partial


async def test_invoices_of_one_customer_are_those_of_its_account() -> None:
    wh, sales, acct = world()
    gw = federation_over(wh, sales, acct)
    page = await list_invoices(gw, request_as("finance"), InvoiceFilter(today=TODAY), 2, None, 10)
    assert [row["invno"] for row in page.rows] == ["INV-4"]
    # a customer without an account has no invoices: Accounting is not asked
    none = await list_invoices(gw, request_as("finance"), InvoiceFilter(today=TODAY), 4, None, 10)
    assert none.rows == []
    assert acct.calls_to("invoices") == 1
    # an account filter naming another customer's account contradicts the customer: nothing
    other = await list_invoices(gw, request_as("finance"), InvoiceFilter(acct_no="C0000001", today=TODAY), 2,
                                None, 10)
    assert other.rows == []


async def test_invoices_without_sales_have_no_customer_and_are_partial() -> None:
    wh, sales, acct = world()
    sales.fail(SourceUnavailable)
    ctx = request_as("finance")
    page = await list_invoices(federation_over(wh, sales, acct), ctx, InvoiceFilter(today=TODAY), None, None, 10)
    assert [row["customer_id"] for row in page.rows] == [None] * 5
    assert ctx.partial


async def test_sold_items_join_warehouse_names_and_stock() -> None:
    """Units of sold orders in the period; a SKU the warehouse lacks has no name or stock, one without stock rows 0."""
    wh, sales, acct = world()
    ctx = request_as("reader")
    page = await list_sold_items(federation_over(wh, sales, acct), ctx, SoldItemsFilter(), None, 10)
    assert page.rows == [
        {"sku": "WH-000001", "name": "Bolt", "units_sold": 6, "on_hand": 15, "available": 10},
        {"sku": "WH-000003", "name": "Washer", "units_sold": 6, "on_hand": 0, "available": 0},
        {"sku": "WH-000009", "name": None, "units_sold": 1, "on_hand": None, "available": None},
    ]
    assert not ctx.partial


async def test_sold_items_filter_by_period_and_location() -> None:
    wh, sales, acct = world()
    gw = federation_over(wh, sales, acct)
    period = SoldItemsFilter(since=T0 + timedelta(days=1), until=T0 + timedelta(days=7))
    page = await list_sold_items(gw, request_as("reader"), period, None, 10)
    assert [(row["sku"], row["units_sold"]) for row in page.rows] == [("WH-000003", 6), ("WH-000001", 2)]
    at_bcn1 = await list_sold_items(gw, request_as("reader"), SoldItemsFilter(location="BCN1"), None, 10)
    assert [(row["sku"], row["units_sold"]) for row in at_bcn1.rows] == [("WH-000001", 4), ("WH-000009", 1)]


async def test_sold_items_without_the_warehouse_keep_their_units() -> None:
    wh, sales, acct = world()
    wh.fail(SourceUnavailable)
    ctx = request_as("reader")
    page = await list_sold_items(federation_over(wh, sales, acct), ctx, SoldItemsFilter(), None, 10)
    assert [(row["units_sold"], row["name"], row["on_hand"]) for row in page.rows] == [
        (6, None, None), (6, None, None), (1, None, None)]
    assert ctx.partial


async def test_locations_are_listed_by_code() -> None:
    wh, sales, acct = world()
    page = await list_locations(federation_over(wh, sales, acct), request_as("reader"), None, 10)
    assert [(row["code"], row["city"]) for row in page.rows] == [("BCN1", "Barcelona"), ("MAD2", "Madrid")]
