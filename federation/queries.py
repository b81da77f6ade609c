"""Query parameters the connectors accept: filters and keyset positions.

Every list is keyset-paginated: ``after`` is the sort key of the last row of
the previous page (``None`` for the first page) and ``limit`` bounds the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from federation.records import InvoiceStatus, OrderStatus


@dataclass(frozen=True, slots=True)
class ItemFilter:
    q: str | None = None            # case-insensitive substring of name or SKU
    location: str | None = None     # sum stock at this location only; items without a row there are left out
    in_stock: bool | None = None    # available > 0 (True) or <= 0 (False)
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class CustomerFilter:
    q: str | None = None            # case-insensitive substring of the name
    country: str | None = None


@dataclass(frozen=True, slots=True)
class OrderFilter:
    customer_id: int | None = None
    status: OrderStatus | None = None
    since: datetime | None = None   # ordered_at >= since
    until: datetime | None = None   # ordered_at < until


@dataclass(frozen=True, slots=True)
class InvoiceFilter:
    acct_no: str | None = None
    status: InvoiceStatus | None = None
    overdue: bool | None = None
    today: date | None = None       # the UTC date "overdue" is judged against


@dataclass(frozen=True, slots=True)
class SoldItemsFilter:
    since: datetime | None = None
    until: datetime | None = None
    location: str | None = None     # orders.ship_from


# Keyset position of sold-items, ordered by units_sold descending then sku.
SoldItemsKey = tuple[int, str]
