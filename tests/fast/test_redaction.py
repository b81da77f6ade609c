"""Redaction by role, where it happens: in the federation, which leaves Accounting-derived fields null for a
reader, lists them in the context (the API puts that list in ``meta.redacted``) and never asks Accounting."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from federation.customers import get_customer, list_customers
from federation.errors import Forbidden, SourceUnavailable
from federation.invoices import list_invoices
from federation.orders import get_order
from federation.products import get_product, list_products
from federation.queries import CustomerFilter, InvoiceFilter, ItemFilter
from federation.records import Money
from tests.fakes import FakeAccounting, FakeSales, FakeWarehouse, federation_over, request_as
from tests.fakes import rows as r

TODAY = date(2025, 3, 1)
ORDER = "SO-2025-000001"
SKU = "WH-000001"
FINANCE_ROLES = ["finance", "admin"]


def world() -> tuple[FakeWarehouse, FakeSales, FakeAccounting]:
    wh = FakeWarehouse(items=[r.item(SKU)], stock=[r.stock(SKU, "BCN1", 4)])
    sales = FakeSales(customers=[r.customer(7, acct_no="C0000007")], orders=[r.order(ORDER, 7)],
                      lines=[r.line(ORDER, 1, SKU, 2)], products=[r.product(1, SKU, "12.00")])
    acct = FakeAccounting(accounts=[r.account("C0000007")],
                          invoices=[r.invoice("INV-000001", "C0000007", order_no=ORDER, amount="24.00")],
                          costs={SKU: Money(Decimal("7.25"), "EUR")})
    return wh, sales, acct


async def test_a_reader_gets_an_order_without_its_invoices() -> None:
    wh, sales, acct = world()
    ctx = request_as("reader")
    got = await get_order(federation_over(wh, sales, acct), ctx, ORDER, TODAY)
    assert got["invoices"] is None
    assert got["payment_status"] is None
    assert ctx.redacted == ["invoices", "payment_status"]
    assert acct.calls == []
    assert not ctx.partial


@pytest.mark.parametrize("role", FINANCE_ROLES)
async def test_finance_roles_get_an_order_with_its_invoices(role: str) -> None:
    wh, sales, acct = world()
    ctx = request_as(role)
    got = await get_order(federation_over(wh, sales, acct), ctx, ORDER, TODAY)
    assert [i["invno"] for i in got["invoices"]] == ["INV-000001"]
    assert got["payment_status"] == "open"
    assert ctx.redacted == []


async def test_a_reader_gets_customers_without_account_fields() -> None:
    wh, sales, acct = world()
    ctx = request_as("reader")
    gw = federation_over(wh, sales, acct)
    page = await list_customers(gw, ctx, CustomerFilter(), None, 10, TODAY)
    assert [(row["account_status"], row["open_balance"]) for row in page.rows] == [(None, None)]
    assert ctx.redacted == ["account_status", "open_balance"]
    one = request_as("reader")
    got = await get_customer(gw, one, 7, TODAY)
    assert got["account"] is None
    assert got["acct_no"] == "C0000007"      # Sales' own field stays
    assert one.redacted == ["account"]
    assert acct.calls == []


@pytest.mark.parametrize("role", FINANCE_ROLES)
async def test_finance_roles_get_customers_with_account_fields(role: str) -> None:
    wh, sales, acct = world()
    gw = federation_over(wh, sales, acct)
    ctx = request_as(role)
    page = await list_customers(gw, ctx, CustomerFilter(), None, 10, TODAY)
    assert page.rows[0]["account_status"] == "active"
    assert page.rows[0]["open_balance"] == {"amount": "24.00", "currency": "EUR"}
    got = await get_customer(gw, ctx, 7, TODAY)
    assert got["account"]["open_invoices"] == 1
    assert ctx.redacted == []


async def test_a_reader_gets_products_without_standard_cost() -> None:
    wh, sales, acct = world()
    gw = federation_over(wh, sales, acct)
    ctx = request_as("reader")
    page = await list_products(gw, ctx, ItemFilter(), None, 10)
    assert page.rows[0]["std_cost"] is None
    assert page.rows[0]["list_price"] == {"amount": "12.00", "currency": "EUR"}
    one = request_as("reader")
    got = await get_product(gw, one, SKU)
    assert got["std_cost"] is None
    assert ctx.redacted == one.redacted == ["std_cost"]
    assert acct.calls == []


@pytest.mark.parametrize("role", FINANCE_ROLES)
async def test_finance_roles_get_products_with_standard_cost(role: str) -> None:
    wh, sales, acct = world()
    gw = federation_over(wh, sales, acct)
    ctx = request_as(role)
    page = await list_products(gw, ctx, ItemFilter(), None, 10)
    got = await get_product(gw, ctx, SKU)
    assert page.rows[0]["std_cost"] == got["std_cost"] == {"amount": "7.25", "currency": "EUR"}
    assert ctx.redacted == []


async def test_a_reader_may_not_list_invoices_and_no_source_is_asked() -> None:
    wh, sales, acct = world()
    with pytest.raises(Forbidden):
        await list_invoices(federation_over(wh, sales, acct), request_as("reader"), InvoiceFilter(today=TODAY),
                            None, None, 10)
    assert acct.calls == sales.calls == []


async def test_accounting_down_does_not_make_a_readers_answer_partial() -> None:
    """A reader's answers never depend on Accounting, so its outage costs them nothing."""
    wh, sales, acct = world()
    acct.fail(SourceUnavailable)
    gw = federation_over(wh, sales, acct)
    for call in (lambda ctx: get_order(gw, ctx, ORDER, TODAY),
                 lambda ctx: list_customers(gw, ctx, CustomerFilter(), None, 10, TODAY),
                 lambda ctx: get_customer(gw, ctx, 7, TODAY),
                 lambda ctx: list_products(gw, ctx, ItemFilter(), None, 10),
                 lambda ctx: get_product(gw, ctx, SKU)):
        ctx = request_as("reader")
        await call(ctx)
        assert not ctx.partial
        assert "accounting" not in ctx.sources


async def test_accounting_down_makes_a_finance_answer_partial() -> None:
    """The same outage, for finance: the fields are null because they are missing, not redacted."""
    wh, sales, acct = world()
    acct.fail(SourceUnavailable)
    gw = federation_over(wh, sales, acct)
    ctx = request_as("finance")
    got = await get_product(gw, ctx, SKU)
    assert got["std_cost"] is None
    assert ctx.partial
    assert ctx.redacted == []
