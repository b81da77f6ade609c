"""The ports: what the federation layer needs from each legacy system.

The connectors in ``connectors/`` implement these structurally; unit tests
of the federation logic use hand-written fakes of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

from federation.queries import (
    CustomerFilter,
    InvoiceFilter,
    ItemFilter,
    OrderFilter,
    SoldItemsFilter,
    SoldItemsKey,
)
from federation.records import (
    Account,
    Customer,
    Invoice,
    Item,
    ItemStock,
    Location,
    Money,
    Order,
    OrderLine,
    OrderStats,
    Product,
    ProductSales,
    SoldItem,
    StockLevel,
    StockTotal,
)


class Source(Protocol):
    name: str

    async def ping(self) -> None:
        """Raise a ConnectorError unless the source answers a trivial query."""

    def pool_state(self) -> dict[str, int]:
        """Sizes of the connector's pool: size, in use, waiting (what applies)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class Warehouse(Source, Protocol):
    async def locations(self) -> list[Location]: ...

    async def items(self, where: ItemFilter, after: str | None, limit: int) -> list[ItemStock]: ...

    async def item(self, sku: str) -> Item | None: ...

    async def stock_levels(self, sku: str) -> list[StockLevel]: ...

    async def stock_totals(self, skus: Sequence[str]) -> dict[str, StockTotal]:
        """Totals over all locations for the SKUs that exist in the warehouse."""

    async def item_names(self, skus: Sequence[str]) -> dict[str, str]: ...

    async def shipped(self, order_nos: Sequence[str]) -> dict[tuple[str, str], int]:
        """(order_no, sku) -> units shipped (positive), from shipment movements."""


class Sales(Source, Protocol):
    async def customers(self, where: CustomerFilter, after: int | None, limit: int) -> list[Customer]: ...

    async def customer(self, customer_id: int) -> Customer | None: ...

    async def order_customer(self, order_no: str) -> Customer | None:
        """The customer of one order, by order number, so it can be asked alongside the order."""

    async def customers_by_acct(self, acct_nos: Sequence[str]) -> dict[str, Customer]:
        """acct_no -> the customer with that account (lowest id when several)."""

    async def order_stats(self, customer_ids: Sequence[int]) -> dict[int, OrderStats]: ...

    async def orders(self, where: OrderFilter, after: str | None, limit: int) -> list[Order]: ...

    async def order(self, order_no: str) -> Order | None: ...

    async def order_lines(self, order_no: str) -> list[OrderLine]: ...

    async def products_by_sku(self, skus: Sequence[str]) -> dict[str, Product]:
        """Canonical SKU -> the Sales product with that SKU (lowest id when several)."""

    async def product_sales(self, sku: str) -> ProductSales:
        """Units and orders of non-draft, non-cancelled orders for one SKU."""

    async def sold_items(self, where: SoldItemsFilter, after: SoldItemsKey | None, limit: int) -> list[SoldItem]: ...


class Accounting(Source, Protocol):
    async def accounts(self, acct_nos: Sequence[str], today: date) -> dict[str, Account]: ...

    async def invoices(self, where: InvoiceFilter, after: str | None, limit: int) -> list[Invoice]: ...

    async def invoices_for_orders(self, order_nos: Sequence[str], today: date) -> dict[str, list[Invoice]]: ...

    async def std_costs(self, skus: Sequence[str]) -> dict[str, Money]: ...
