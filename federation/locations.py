"""GET /v1/locations: the warehouse sites."""

from __future__ import annotations

from typing import Any

from federation.context import RequestContext
from federation.gateway import Gateway
from federation.paging import Page, page_of
from federation.tags import WAREHOUSE_LISTS


async def list_locations(gw: Gateway, ctx: RequestContext, after: str | None, limit: int) -> Page[dict[str, Any]]:
    locations = await gw.primary(ctx, "warehouse", "locations", tags=(WAREHOUSE_LISTS,))
    rows = [loc for loc in sorted(locations, key=lambda loc: loc.code) if after is None or loc.code > after]
    kept, next_key = page_of(rows, limit, lambda loc: loc.code)
    return Page([{"code": loc.code, "name": loc.name, "city": loc.city, "country": loc.country,
                  "timezone": loc.timezone} for loc in kept], next_key, limit)
