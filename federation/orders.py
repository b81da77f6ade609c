"""Orders: Sales orders and lines, shipped quantities from the Warehouse, invoices from Accounting."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from federation.context import RequestContext
from federation.errors import NotFound
from federation.fanout import abandon, optional
from federation.gateway import Gateway
from federation.model import amount_in, fulfilment, invoice_in_order, money, payment_status
from federation.paging import Page, page_of
from federation.queries import OrderFilter
from federation.records import Customer, Invoice, Order, OrderLine
from federation.tags import SALES_LISTS, order_tag

INVOICE_FIELDS = ("invoices", "payment_status")


def order_row(o: Order) -> dict[str, Any]:
    return {"order_no": o.order_no, "customer_id": o.customer_id, "status": o.status,
            "ordered_at": o.ordered_at, "ship_from": o.ship_from, "total": amount_in(o.total, o.currency)}


async def list_orders(gw: Gateway, ctx: RequestContext, where: OrderFilter, after: str | None,
                      limit: int) -> Page[dict[str, Any]]:
    orders: list[Order] = await gw.primary(ctx, "sales", "orders", where, after, limit + 1,
                                            tags=(SALES_LISTS,))
    kept, next_key = page_of(orders, limit, lambda o: o.order_no)
    return Page([order_row(o) for o in kept], next_key, limit)


async def get_order(gw: Gateway, ctx: RequestContext, order_no: str, today: date) -> dict[str, Any]:
    tags = (order_tag(order_no),)
    nos = (order_no,)
    # Everything keyed by the order number starts at once, the customer too: the cost is the slowest call.
    # Tasks of the calls themselves, made optional only when awaited: a task cancelled before it ran
    # then leaves no coroutine behind that was never awaited.
    lines_t = asyncio.ensure_future(gw.primary(ctx, "sales", "order_lines", order_no, tags=tags))
    customer_t = asyncio.ensure_future(gw.ask(ctx, "sales", "order_customer", order_no, tags=tags))
    shipped_t = asyncio.ensure_future(gw.ask(ctx, "warehouse", "shipped", nos, tags=tags))
    invoices_t = (asyncio.ensure_future(gw.ask(ctx, "accounting", "invoices_for_orders", nos, today, tags=tags))
                  if ctx.finance else None)
    pending = [t for t in (lines_t, customer_t, shipped_t, invoices_t) if t is not None]
    try:
        order: Order | None = await gw.primary(ctx, "sales", "order", order_no, tags=tags)
        if order is None:
            raise NotFound("order", order_no)
        customer: Customer | None = await optional(customer_t)
        lines: list[OrderLine] = await lines_t
        shipped: dict[tuple[str, str], int] | None = await optional(shipped_t)
        invoices: dict[str, list[Invoice]] | None = await optional(invoices_t) if invoices_t else None
    finally:
        abandon(pending)
    if not ctx.finance:
        ctx.redact(*INVOICE_FIELDS)
    line_rows = []
    ordered: dict[str, int] = {}
    shipped_by_sku: dict[str, int] = {}
    for line in sorted(lines, key=lambda ln: ln.line_no):
        shipped_qty: int | None
        if shipped is None:
            shipped_qty = None
        elif line.sku is None:
            shipped_qty = 0
        else:
            shipped_qty = shipped.get((order.order_no, line.sku), 0)
            ordered[line.sku] = ordered.get(line.sku, 0) + line.qty
            shipped_by_sku[line.sku] = shipped_qty
        line_rows.append({"line_no": line.line_no, "product_id": line.product_id, "sku": line.sku,
                          "title": line.title, "qty": line.qty, "unit_price": money(line.unit_price),
                          "discount_pct": str(line.discount_pct), "total": money(line.total),
                          "shipped_qty": shipped_qty})
    order_invoices = invoices.get(order.order_no, []) if invoices is not None else None
    return {
        **order_row(order),
        "customer": {"id": order.customer_id, "name": customer.name if customer else None},
        "lines": line_rows,
        "fulfilment": fulfilment(ordered, shipped_by_sku) if shipped is not None else None,
        "invoices": ([invoice_in_order(i) for i in sorted(order_invoices, key=lambda i: i.invno)]
                     if order_invoices is not None else None),
        "payment_status": payment_status(order_invoices) if order_invoices is not None else None,
    }
