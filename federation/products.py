"""Products: warehouse items with stock, Sales list price and title, Accounting standard cost."""

from __future__ import annotations

from typing import Any

from federation.context import RequestContext
from federation.errors import NotFound
from federation.fanout import gather, nothing, optional
from federation.gateway import Gateway
from federation.model import money
from federation.paging import Page, page_of
from federation.queries import ItemFilter
from federation.records import Item, ItemStock, Product, ProductSales, StockLevel
from federation.tags import WAREHOUSE_LISTS, sku_tag, sku_tags

COST_FIELDS = ("std_cost",)


async def list_products(gw: Gateway, ctx: RequestContext, where: ItemFilter, after: str | None,
                        limit: int) -> Page[dict[str, Any]]:
    items: list[ItemStock] = await gw.primary(ctx, "warehouse", "items", where, after, limit + 1,
                                                  tags=(WAREHOUSE_LISTS,))
    kept, next_key = page_of(items, limit, lambda i: i.sku)
    skus = tuple(i.sku for i in kept)
    if not ctx.finance:
        ctx.redact(*COST_FIELDS)
    tags = sku_tags(skus)
    products, costs = await gather(
        optional(gw.ask(ctx, "sales", "products_by_sku", skus, tags=tags)) if skus else nothing(),
        optional(gw.ask(ctx, "accounting", "std_costs", skus, tags=tags)) if skus and ctx.finance else nothing(),
    )
    rows = []
    for item in kept:
        product: Product | None = products.get(item.sku) if products is not None else None
        rows.append({
            "sku": item.sku, "name": item.name, "unit": item.unit, "active": item.active,
            "on_hand": item.on_hand, "reserved": item.reserved, "available": item.available,
            "list_price": money(product.list_price) if product else None,
            "std_cost": money(costs.get(item.sku)) if costs is not None else None,
        })
    return Page(rows, next_key, limit)


async def get_product(gw: Gateway, ctx: RequestContext, sku: str) -> dict[str, Any]:
    skus = (sku,)
    tags = (sku_tag(sku),)
    if not ctx.finance:
        ctx.redact(*COST_FIELDS)
    item, levels, products, sales, costs = await gather(
        gw.primary(ctx, "warehouse", "item", sku, tags=tags),
        gw.primary(ctx, "warehouse", "stock_levels", sku, tags=tags),
        optional(gw.ask(ctx, "sales", "products_by_sku", skus, tags=tags)),
        optional(gw.ask(ctx, "sales", "product_sales", sku, tags=tags)),
        optional(gw.ask(ctx, "accounting", "std_costs", skus, tags=tags)) if ctx.finance else nothing(),
    )
    if item is None:
        raise NotFound("product", sku)
    return _product(item, levels, products, sales, costs)


def _product(item: Item, levels: list[StockLevel], products: dict[str, Product] | None,
             sales: ProductSales | None, costs: dict[str, Any] | None) -> dict[str, Any]:
    product = products.get(item.sku) if products is not None else None
    on_hand = sum(level.on_hand for level in levels)
    reserved = sum(level.reserved for level in levels)
    return {
        "sku": item.sku, "name": item.name,
        "sales_title": product.title if product else None,
        "description": item.description, "unit": item.unit, "weight_grams": item.weight_grams,
        "active": item.active,
        "stock": [{"location": lv.location, "on_hand": lv.on_hand, "reserved": lv.reserved,
                   "available": lv.available} for lv in sorted(levels, key=lambda lv: lv.location)],
        "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved,
        "list_price": money(product.list_price) if product else None,
        "std_cost": money(costs.get(item.sku)) if costs is not None else None,
        "sales": None if sales is None else {"units_sold": sales.units_sold, "orders": sales.orders,
                                             "last_ordered_at": sales.last_ordered_at},
    }
