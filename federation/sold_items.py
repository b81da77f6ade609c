"""Sold items: units sold per SKU in a period (Sales), with warehouse names and current stock."""

from __future__ import annotations

from typing import Any

from federation.context import RequestContext
from federation.fanout import gather, optional
from federation.gateway import Gateway
from federation.paging import Page, page_of
from federation.queries import SoldItemsFilter, SoldItemsKey
from federation.records import SoldItem, StockTotal
from federation.tags import SALES_LISTS, sku_tags


async def list_sold_items(gw: Gateway, ctx: RequestContext, where: SoldItemsFilter, after: SoldItemsKey | None,
                          limit: int) -> Page[dict[str, Any]]:
    sold: list[SoldItem] = await gw.primary(ctx, "sales", "sold_items", where, after, limit + 1,
                                            tags=(SALES_LISTS,))
    kept, next_key = page_of(sold, limit, lambda s: (s.units_sold, s.sku))
    skus = tuple(s.sku for s in kept)
    names, totals = await gather(
        optional(gw.ask(ctx, "warehouse", "item_names", skus, tags=sku_tags(skus))),
        optional(gw.ask(ctx, "warehouse", "stock_totals", skus, tags=sku_tags(skus))),
    ) if skus else ({}, {})
    rows = []
    for s in kept:
        known = names is not None and s.sku in names
        total: StockTotal | None = totals.get(s.sku) if totals is not None else None
        # An item the warehouse knows but holds no stock rows for has zero stock; an unknown SKU has none.
        on_hand = (total.on_hand if total else 0) if known and totals is not None else None
        available = (total.available if total else 0) if known and totals is not None else None
        rows.append({"sku": s.sku, "name": names.get(s.sku) if names is not None else None,
                     "units_sold": s.units_sold, "on_hand": on_hand, "available": available})
    return Page(rows, next_key, limit)
