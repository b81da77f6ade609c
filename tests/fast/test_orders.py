"""One order joined across the three systems: lines and customer from Sales, shipped quantities from the
Warehouse, invoices from Accounting; and what is left of it when a source fails."""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import date

import pytest

from federation.errors import NotFound, PrimaryUnavailable, SourceTimeout, SourceUnavailable
from federation.orders import get_order
from federation.records import Invoice
from tests.fakes import FakeAccounting, FakeSales, FakeWarehouse, federation_over, request_as
from tests.fakes import rows as r
from tests.fakes.warehouse import Shipment

TODAY = date(2025, 3, 1)
ORDER = "SO-2025-000001"
OTHER = "SO-2025-000002"


def sales() -> FakeSales:
    """One order of four lines: WH-000001 on two of them (2 + 3), WH-000002 once, and a service line."""
    return FakeSales(
        customers=[r.customer(7, "Ada Shop", acct_no="C0000007")],
        orders=[r.order(ORDER, 7, ship_from="BCN1"), r.order(OTHER, 7)],
        lines=[r.line(ORDER, 1, "WH-000001", 2, "10.00"),
               r.line(ORDER, 2, "WH-000002", 1, "5.50", discount_pct="10"),
               r.line(ORDER, 3, "WH-000001", 3, "10.00"),
               r.line(ORDER, 4, None, 1, "20.00"),
               r.line(OTHER, 1, "WH-000001", 9, "10.00")],
    )


def warehouse(*shipments: Shipment) -> FakeWarehouse:
    return FakeWarehouse(items=[r.item("WH-000001"), r.item("WH-000002")], shipments=shipments)


def accounting(*invoices: Invoice) -> FakeAccounting:
    return FakeAccounting(accounts=[r.account("C0000007")], invoices=invoices)


async def test_an_order_joins_its_customer_shipments_and_invoices() -> None:
    """Customer name, per-line shipped quantities, invoices in invoice order and the derived facts, all ok."""
    wh = warehouse(r.shipment(ORDER, "WH-000001", 3), r.shipment(ORDER, "WH-000002", 1),
                   r.shipment(OTHER, "WH-000001", 9))
    acct = accounting(r.invoice("INV-000002", "C0000007", order_no=ORDER, amount="30.00", paid="10.00"),
                      r.invoice("INV-000001", "C0000007", order_no=ORDER, amount="44.95", paid="44.95",
                                status="paid"),
                      r.invoice("INV-000003", "C0000007", order_no=OTHER, amount="90.00"))
    ctx = request_as("finance")
    got = await get_order(federation_over(wh, sales(), acct), ctx, ORDER, TODAY)

    assert got["customer"] == {"id": 7, "name": "Ada Shop"}
    assert got["ship_from"] == "BCN1"
    assert got["total"] == {"amount": "74.95", "currency": "EUR"}   # 20.00 + 4.95 + 30.00 + 20.00
    assert [ln["line_no"] for ln in got["lines"]] == [1, 2, 3, 4]
    assert [ln["total"]["amount"] for ln in got["lines"]] == ["20.00", "4.95", "30.00", "20.00"]
    # a line shows what shipped of its SKU for this order; the service line has no SKU and ships nothing
    assert [ln["shipped_qty"] for ln in got["lines"]] == [3, 1, 3, 0]
    assert got["fulfilment"] == "partial"
    assert [i["invno"] for i in got["invoices"]] == ["INV-000001", "INV-000002"]
    assert got["invoices"][1]["balance"] == {"amount": "20.00", "currency": "EUR"}
    assert got["payment_status"] == "partial"
    assert not ctx.partial
    assert {name: rep.status for name, rep in ctx.sources.items()} == {
        "sales": "ok", "warehouse": "ok", "accounting": "ok"}
    assert ctx.redacted == []


@pytest.mark.parametrize(("shipped", "expected"), [
    ({}, "none"),
    ({"WH-000001": 5, "WH-000002": 1}, "complete"),
    ({"WH-000001": 6, "WH-000002": 2}, "complete"),          # more than ordered still completes
    ({"WH-000001": 3, "WH-000002": 1}, "partial"),           # covers the larger line of WH-000001, not the sum
    ({"WH-000001": 5}, "partial"),                           # WH-000002 not shipped yet
    ({"WH-000002": 1}, "partial"),
], ids=["nothing", "exact", "more", "one-line-of-two", "one-sku-of-two", "other-sku"])
async def test_fulfilment_compares_each_sku_with_its_sum_over_the_lines(shipped: dict[str, int],
                                                                       expected: str) -> None:
    """Per SKU: ordered = the sum over every line with that SKU, met when what shipped reaches it."""
    wh = warehouse(*(r.shipment(ORDER, sku, qty) for sku, qty in shipped.items()))
    got = await get_order(federation_over(wh, sales()), request_as("reader"), ORDER, TODAY)
    assert got["fulfilment"] == expected
    assert [ln["shipped_qty"] for ln in got["lines"]] == [
        shipped.get("WH-000001", 0), shipped.get("WH-000002", 0), shipped.get("WH-000001", 0), 0]


async def test_shipments_of_another_order_do_not_fulfil_this_one() -> None:
    """Shipments count for the order they reference only."""
    wh = warehouse(r.shipment(OTHER, "WH-000001", 9), r.shipment(OTHER, "WH-000002", 9))
    got = await get_order(federation_over(wh, sales()), request_as("reader"), ORDER, TODAY)
    assert got["fulfilment"] == "none"
    assert [ln["shipped_qty"] for ln in got["lines"]] == [0, 0, 0, 0]


async def test_an_order_of_service_lines_only_is_not_fulfilled() -> None:
    """Lines without a SKU ship nothing and are left out of fulfilment: nothing to ship is 'none'."""
    only_service = FakeSales(customers=[r.customer(7)], orders=[r.order(ORDER, 7)],
                             lines=[r.line(ORDER, 1, None, 2, "20.00")])
    got = await get_order(federation_over(warehouse(), only_service), request_as("reader"), ORDER, TODAY)
    assert got["lines"][0]["shipped_qty"] == 0
    assert got["fulfilment"] == "none"


@pytest.mark.parametrize(("invoices", "expected"), [
    ([], "unbilled"),
    ([("void", "100.00", "0.00")], "unbilled"),
    ([("paid", "50.00", "50.00"), ("void", "10.00", "0.00")], "paid"),
    ([("paid", "50.00", "50.00"), ("open", "30.00", "10.00")], "partial"),
    ([("paid", "50.00", "50.00"), ("open", "30.00", "0.00")], "open"),
    ([("open", "30.00", "0.00")], "open"),
], ids=["none", "void", "paid", "paid-and-part-paid", "paid-and-unpaid", "unpaid"])
async def test_payment_status_follows_the_orders_invoices(invoices: list[tuple[str, str, str]],
                                                          expected: str) -> None:
    """unbilled without a non-void invoice, paid when all are paid, partial when an open one is part paid."""
    acct = accounting(*(r.invoice(f"INV-{n:06d}", "C0000007", order_no=ORDER, status=status,  # type: ignore[arg-type]
                                  amount=amount, paid=paid)
                        for n, (status, amount, paid) in enumerate(invoices, 1)))
    got = await get_order(federation_over(warehouse(), sales(), acct), request_as("admin"), ORDER, TODAY)
    assert got["payment_status"] == expected
    assert [i["status"] for i in got["invoices"]] == [status for status, _, _ in invoices]


async def test_warehouse_down_leaves_shipments_null_and_marks_the_answer_partial() -> None:
    """A failed secondary source: its fields are null, the rest is whole, and the answer is partial."""
    wh = warehouse(r.shipment(ORDER, "WH-000001", 5))
    wh.fail(SourceUnavailable)
    acct = accounting(r.invoice("INV-000001", "C0000007", order_no=ORDER))
    ctx = request_as("finance")
    got = await get_order(federation_over(wh, sales(), acct), ctx, ORDER, TODAY)
    assert [ln["shipped_qty"] for ln in got["lines"]] == [None, None, None, None]
    assert got["fulfilment"] is None
    assert [i["invno"] for i in got["invoices"]] == ["INV-000001"]
    assert got["customer"]["name"] == "Ada Shop"
    assert ctx.partial
    assert ctx.sources["warehouse"].status == "unavailable"
    assert ctx.sources["warehouse"].error == "unreachable"
    assert ctx.sources["sales"].status == ctx.sources["accounting"].status == "ok"


async def test_accounting_timing_out_leaves_invoices_null_and_marks_the_answer_partial() -> None:
    acct = accounting(r.invoice("INV-000001", "C0000007", order_no=ORDER))
    acct.fail(SourceTimeout, "invoices_for_orders")
    ctx = request_as("finance")
    got = await get_order(federation_over(warehouse(r.shipment(ORDER, "WH-000002", 1)), sales(), acct),
                          ctx, ORDER, TODAY)
    assert got["invoices"] is None
    assert got["payment_status"] is None
    assert got["fulfilment"] == "partial"
    assert ctx.partial
    assert ctx.sources["accounting"].error == "timeout"


async def test_a_hanging_secondary_source_costs_its_timeout_not_the_request() -> None:
    """A source that would answer in 30 s is cut at the policy's timeout; the answer comes without it."""
    wh = warehouse()
    wh.slow(30.0, "shipped")
    ctx = request_as("reader")
    started = time.monotonic()
    got = await get_order(federation_over(wh, sales(), timeout=0.2, attempts=1), ctx, ORDER, TODAY)
    assert time.monotonic() - started < 2.0
    assert got["fulfilment"] is None
    assert ctx.sources["warehouse"].error == "timeout"
    assert ctx.partial


async def test_the_customer_failing_alone_nulls_its_name_only() -> None:
    """The customer is a secondary call to the primary source: its failure is partial, not a 503."""
    s = sales()
    s.fail(SourceUnavailable, "order_customer")
    ctx = request_as("reader")
    got = await get_order(federation_over(warehouse(), s), ctx, ORDER, TODAY)
    assert got["customer"] == {"id": 7, "name": None}
    assert len(got["lines"]) == 4
    assert ctx.partial
    assert ctx.sources["sales"].status == "unavailable"


async def test_the_primary_source_failing_is_primary_unavailable() -> None:
    """Sales is the order's primary source: without it there is no answer, and the error says retry in 5 s."""
    s = sales()
    s.fail(SourceUnavailable)
    with pytest.raises(PrimaryUnavailable) as failed:
        await get_order(federation_over(warehouse(), s), request_as("finance"), ORDER, TODAY)
    assert failed.value.source == "sales"
    assert failed.value.reason == "unreachable"
    assert failed.value.retry_after == 5


async def test_an_open_breaker_answers_at_once_and_says_when_to_retry() -> None:
    """After fail_max failures the primary is not called again until the reset; Retry-After is the reset."""
    s = sales()
    s.fail(SourceUnavailable)
    gw = federation_over(warehouse(), s, attempts=1, fail_max=2, reset=30.0)
    for _ in range(2):
        with pytest.raises(PrimaryUnavailable):
            await get_order(gw, request_as("reader"), ORDER, TODAY)
    called = s.calls_to("order")
    with pytest.raises(PrimaryUnavailable) as failed:
        await get_order(gw, request_as("reader"), ORDER, TODAY)
    assert failed.value.reason == "circuit open"
    assert failed.value.retry_after == 30
    assert s.calls_to("order") == called


async def test_a_transient_failure_is_retried_and_not_partial() -> None:
    """One failed attempt of a secondary source is retried within the request: the answer is whole."""
    wh = warehouse(r.shipment(ORDER, "WH-000002", 1))
    wh.fail(SourceUnavailable, "shipped", times=1)
    ctx = request_as("reader")
    got = await get_order(federation_over(wh, sales(), attempts=2), ctx, ORDER, TODAY)
    assert got["lines"][1]["shipped_qty"] == 1
    assert wh.calls_to("shipped") == 2
    assert not ctx.partial


async def test_a_bug_behind_a_secondary_source_is_raised_not_hidden_as_partial() -> None:
    """Only a source's own failure is optional: any other error surfaces (a 500), never null fields."""
    wh = warehouse()
    wh.fail(RuntimeError("a bug in our code"), "shipped")
    with pytest.raises(RuntimeError, match="a bug in our code"):
        await get_order(federation_over(wh, sales()), request_as("reader"), ORDER, TODAY)


async def test_an_unknown_order_is_not_found() -> None:
    with pytest.raises(NotFound):
        await get_order(federation_over(warehouse(), sales()), request_as("reader"), "SO-2025-999999", TODAY)


async def _order_with_sales_down() -> None:
    """Sales fails every call; the order's own call takes a moment longer than its lines' (a slower query)."""
    s = sales()
    s.fail(SourceUnavailable)
    s.slow(0.05, "order")
    try:
        await get_order(federation_over(warehouse(), s, attempts=1), request_as("reader"), ORDER, TODAY)
    except PrimaryUnavailable:
        return   # dropped here: a kept traceback would keep the request's tasks alive past the check
    raise AssertionError("the order was answered without Sales")


async def test_a_failed_order_leaves_no_failure_nobody_retrieved() -> None:
    """A 503 is one outage: no concurrent part of the request may be left to asyncio to log as an unretrieved
    task exception (with its traceback) once the request is gone."""
    loop = asyncio.get_running_loop()
    unretrieved: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context["message"]))
    try:
        await _order_with_sales_down()
        await asyncio.sleep(0)   # let the request's cancelled tasks finish
        gc.collect()   # asyncio reports an unretrieved task failure when the task is collected
    finally:
        loop.set_exception_handler(previous)
    assert unretrieved == []
