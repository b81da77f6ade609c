"""An in-memory Warehouse: locations, items, stock rows and shipments, read as ``connectors/warehouse.py`` reads
the PostgreSQL database (items and stock by canonical SKU, lists in SKU order, keyset after a SKU)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connectors._batch import unique
from federation.queries import ItemFilter
from federation.records import Item, ItemStock, Location, StockLevel, StockTotal
from federation.spelling import canonical_sku
from tests.fakes.source import FakeSource


@dataclass(slots=True)
class Shipment:
    """``qty`` units of ``sku`` shipped for order ``order_no`` (a shipment movement; the legacy table
    stores it as a negative quantity, which the connector turns positive)."""

    order_no: str
    sku: str
    qty: int


def _canonical(sku: str) -> str:
    if canonical_sku(sku) != sku:
        raise ValueError(f"a fake holds canonical SKUs (WH-000123), not {sku!r}")
    return sku


class FakeWarehouse(FakeSource):
    """The ``Warehouse`` port over lists of the core's records; change the rows at will between calls."""

    name = "warehouse"

    def __init__(self, *, locations: Iterable[Location] = (), items: Iterable[Item] = (),
                 stock: Iterable[StockLevel] = (), shipments: Iterable[Shipment] = ()) -> None:
        super().__init__()
        self.location_rows: list[Location] = list(locations)
        self.item_rows: dict[str, Item] = {_canonical(i.sku): i for i in items}
        self.stock_rows: list[StockLevel] = [s for s in stock if _canonical(s.sku)]
        self.shipment_rows: list[Shipment] = [s for s in shipments if _canonical(s.sku)]

    async def locations(self) -> list[Location]:
        async with self._call("locations"):
            return sorted(self.location_rows, key=lambda loc: loc.code)

    async def items(self, where: ItemFilter, after: str | None, limit: int) -> list[ItemStock]:
        async with self._call("items"):
            location = where.location.strip() if where.location is not None else None
            q = where.q.lower() if where.q else None
            out: list[ItemStock] = []
            for sku in sorted(self.item_rows):
                if len(out) >= limit:
                    break
                item = self.item_rows[sku]
                if after is not None and sku <= after:
                    continue
                levels = [s for s in self.stock_rows if s.sku == sku and (location is None or s.location == location)]
                # at one location an item needs a stock row there; over all of them it needs none
                if location is not None and not levels:
                    continue
                if q is not None and q not in item.name.lower() and q not in sku.lower():
                    continue
                if where.active is not None and item.active != where.active:
                    continue
                on_hand, reserved = sum(s.on_hand for s in levels), sum(s.reserved for s in levels)
                if where.in_stock is not None and (on_hand - reserved > 0) != where.in_stock:
                    continue
                out.append(ItemStock(sku, item.name, item.unit, item.active, on_hand, reserved))
            return out

    async def item(self, sku: str) -> Item | None:
        async with self._call("item"):
            key = canonical_sku(sku)
            return self.item_rows.get(key) if key else None

    async def stock_levels(self, sku: str) -> list[StockLevel]:
        async with self._call("stock_levels"):
            key = canonical_sku(sku)
            return sorted((s for s in self.stock_rows if s.sku == key), key=lambda s: s.location)

    async def stock_totals(self, skus: Sequence[str]) -> dict[str, StockTotal]:
        async with self._call("stock_totals"):
            totals: dict[str, StockTotal] = {}
            for key in unique(canonical_sku(s) for s in skus):
                if key in self.item_rows:
                    levels = [s for s in self.stock_rows if s.sku == key]
                    totals[key] = StockTotal(key, sum(s.on_hand for s in levels), sum(s.reserved for s in levels))
            return totals

    async def item_names(self, skus: Sequence[str]) -> dict[str, str]:
        async with self._call("item_names"):
            keys = unique(canonical_sku(s) for s in skus)
            return {k: self.item_rows[k].name for k in keys if k in self.item_rows}

    async def shipped(self, order_nos: Sequence[str]) -> dict[tuple[str, str], int]:
        async with self._call("shipped"):
            refs = set(unique(o.strip() or None for o in order_nos))
            shipped: dict[tuple[str, str], int] = {}
            for s in self.shipment_rows:
                if s.order_no in refs:
                    shipped[(s.order_no, s.sku)] = shipped.get((s.order_no, s.sku), 0) + s.qty
            return shipped
