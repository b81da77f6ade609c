"""The read-through cache's rules as the federation sees them: hits spare the sources, a failed source is
stood in for by a value within its stale-if-error window (labelled stale, not partial), and nothing else."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from federation.context import RequestContext
from federation.errors import PrimaryUnavailable, SourceUnavailable
from federation.orders import get_order
from federation.products import list_products
from federation.queries import ItemFilter
from federation.tags import order_tag
from tests.fakes import FakeCache, FakeSales, FakeWarehouse, ManualClock, federation_over, request_as
from tests.fakes import rows as r

TODAY = date(2025, 3, 1)
ORDER = "SO-2025-000001"
TTL, SWR, STALE_IF_ERROR = 10.0, 20.0, 100.0


def shop() -> tuple[FakeWarehouse, FakeSales]:
    wh = FakeWarehouse(items=[r.item("WH-000001")], shipments=[r.shipment(ORDER, "WH-000001", 2)])
    sales = FakeSales(customers=[r.customer(7)], orders=[r.order(ORDER, 7)],
                      lines=[r.line(ORDER, 1, "WH-000001", 5)])
    return wh, sales


def cache(clock: ManualClock, swr: float = 0.0) -> FakeCache:
    return FakeCache(TTL, swr, STALE_IF_ERROR, clock=clock)


async def test_a_fresh_entry_is_a_hit_and_the_source_is_not_asked() -> None:
    wh, sales = shop()
    clock = ManualClock()
    gw = federation_over(wh, sales, cache=cache(clock))
    await get_order(gw, request_as("reader"), ORDER, TODAY)
    asked = len(wh.calls) + len(sales.calls)
    clock.advance(TTL / 2)
    ctx = request_as("reader")
    got = await get_order(gw, ctx, ORDER, TODAY)
    assert got["lines"][0]["shipped_qty"] == 2
    assert len(wh.calls) + len(sales.calls) == asked
    assert {rep.cache for rep in ctx.sources.values()} == {"hit"}
    assert ctx.sources["warehouse"].age_s == TTL / 2


async def _order_with_warehouse_failing(age: float) -> tuple[RequestContext, dict[str, Any]]:
    """The order read once, then again ``age`` seconds later with the Warehouse failing."""
    wh, sales = shop()
    clock = ManualClock()
    gw = federation_over(wh, sales, cache=cache(clock))
    await get_order(gw, request_as("reader"), ORDER, TODAY)
    wh.fail(SourceUnavailable)
    clock.advance(age)
    ctx = request_as("reader")
    return ctx, await get_order(gw, ctx, ORDER, TODAY)


async def test_a_failed_secondary_source_is_stood_in_for_by_its_stale_value() -> None:
    """Within stale-if-error, a failing source's last value is served, labelled stale with the reason."""
    ctx, got = await _order_with_warehouse_failing(TTL + STALE_IF_ERROR / 2)
    assert got["lines"][0]["shipped_qty"] == 2
    assert got["fulfilment"] == "partial"
    assert ctx.sources["warehouse"].status == "stale"
    assert ctx.sources["warehouse"].cache == "stale"
    assert ctx.sources["warehouse"].error == "unreachable"
    assert not ctx.partial


async def test_past_stale_if_error_a_failed_secondary_source_is_null_and_partial() -> None:
    ctx, got = await _order_with_warehouse_failing(TTL + STALE_IF_ERROR + 1)
    assert got["lines"][0]["shipped_qty"] is None
    assert ctx.sources["warehouse"].status == "unavailable"
    assert ctx.partial


async def test_a_failed_primary_source_with_a_stale_value_still_answers() -> None:
    """Something cached for the primary source is an answer (stale), not a 503."""
    wh, sales = shop()
    clock = ManualClock()
    gw = federation_over(wh, sales, cache=cache(clock))
    await list_products(gw, request_as("reader"), ItemFilter(), None, 10)
    wh.fail(SourceUnavailable)
    clock.advance(TTL + 1)
    ctx = request_as("reader")
    page = await list_products(gw, ctx, ItemFilter(), None, 10)
    assert [row["sku"] for row in page.rows] == ["WH-000001"]
    assert ctx.sources["warehouse"].status == "stale"


async def test_a_failed_primary_source_with_nothing_cached_is_primary_unavailable() -> None:
    wh, sales = shop()
    wh.fail(SourceUnavailable)
    gw = federation_over(wh, sales, cache=cache(ManualClock()))
    with pytest.raises(PrimaryUnavailable) as failed:
        await list_products(gw, request_as("reader"), ItemFilter(), None, 10)
    assert failed.value.source == "warehouse"


async def test_revalidating_a_healthy_source_is_ok_and_refreshes_the_entry() -> None:
    """Past its ttl but within stale-while-revalidate, the value is served (status ok) and refreshed behind."""
    wh, sales = shop()
    clock = ManualClock()
    store = cache(clock, swr=SWR)
    gw = federation_over(wh, sales, cache=store)
    await get_order(gw, request_as("reader"), ORDER, TODAY)
    wh.shipment_rows.append(r.shipment(ORDER, "WH-000001", 3))
    clock.advance(TTL + 1)
    ctx = request_as("reader")
    got = await get_order(gw, ctx, ORDER, TODAY)
    assert got["lines"][0]["shipped_qty"] == 2          # the old value, at once
    assert ctx.sources["warehouse"].cache == "stale"
    assert ctx.sources["warehouse"].status == "ok"
    assert not ctx.partial
    await store.settle()
    again = request_as("reader")
    got = await get_order(gw, again, ORDER, TODAY)
    assert got["lines"][0]["shipped_qty"] == 5          # the refreshed value
    assert again.sources["warehouse"].cache == "hit"


async def test_revalidating_a_failing_source_is_labelled_stale_with_its_error() -> None:
    """Served while revalidating and the source is failing right now: stale for that reason, not ok."""
    wh, sales = shop()
    clock = ManualClock()
    store = cache(clock, swr=SWR)
    gw = federation_over(wh, sales, cache=store)
    await get_order(gw, request_as("reader"), ORDER, TODAY)
    wh.fail(SourceUnavailable)
    clock.advance(TTL + 1)
    await get_order(gw, request_as("reader"), ORDER, TODAY)   # starts a refresh, which fails
    await store.settle()
    ctx = request_as("reader")
    got = await get_order(gw, ctx, ORDER, TODAY)
    assert got["lines"][0]["shipped_qty"] == 2
    assert ctx.sources["warehouse"].status == "stale"
    assert ctx.sources["warehouse"].error == "unreachable"


async def test_an_orders_answers_are_tagged_with_its_number() -> None:
    """Dropping the order number's tag (as the warehouse watcher does on a shipment) drops its cached parts."""
    wh, sales = shop()
    store = cache(ManualClock())
    gw = federation_over(wh, sales, cache=store)
    await get_order(gw, request_as("reader"), ORDER, TODAY)
    wh.shipment_rows.append(r.shipment(ORDER, "WH-000001", 3))
    assert await store.invalidate_tags([order_tag(ORDER)]) >= 4   # order, lines, customer, shipped
    ctx = request_as("reader")
    got = await get_order(gw, ctx, ORDER, TODAY)
    assert got["lines"][0]["shipped_qty"] == 5
    assert ctx.sources["warehouse"].cache == "miss"
