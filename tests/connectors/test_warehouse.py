"""Warehouse connector against hand-written rows in a fresh PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from connectors.warehouse import WarehouseConnector
from deploy.legacy.schema import LegacyTargets
from federation.queries import ItemFilter
from federation.records import Item, ItemStock, Location, StockLevel, StockTotal

LOCATIONS = [("BCN1", "Barcelona", "Barcelona", "ES", "Europe/Madrid"),
             ("NYC1", "New York", "New York", "US", "America/New_York"),
             ("SGP1", "Singapore", "Singapore", "SG", "Asia/Singapore")]
ITEMS = [  # sku, name, description, unit, weight, active, updated_at
    ("WH-000001", "Tornillo Ñandú", None, "EA", None, True, "2024-03-01 12:00:00+02"),
    ("WH-000002", "Kabel 'Über' 3m", "apostrophes 'inside'", "M", 250, True, "2024-03-01 00:00:00+00"),
    ("WH-000003", "東京ボルト", "inactive", "BOX", 1000, False, "2024-03-01 00:00:00+00"),
    ("WH-000004", "No stock anywhere", None, "KG", None, True, "2024-03-01 00:00:00+00"),
    ("WH-000005", "All reserved", None, "EA", None, True, "2024-03-01 00:00:00+00"),
    ("WH-000006", "100%_pure", None, "EA", None, True, "2024-03-01 00:00:00+00"),
    ("   ", "garbage: a blank SKU", None, "EA", None, True, "2024-03-01 00:00:00+00"),
]
VALID = [row[0] for row in ITEMS if row[0].strip()]
STOCK = [("WH-000001", "BCN1", 10, 2), ("WH-000001", "NYC1", 5, 0), ("WH-000002", "NYC1", 3, 1),
         ("WH-000003", "SGP1", 0, 0), ("WH-000005", "BCN1", 5, 5)]
MOVEMENTS = [  # sku, location, qty, kind, reference
    ("WH-000001", "BCN1", -2, "shipment", "SO-2024-000001"),
    ("WH-000001", "NYC1", -1, "shipment", "SO-2024-000001"),
    ("WH-000002", "NYC1", -3, "shipment", "SO-2024-000001"),
    ("WH-000001", "BCN1", 10, "receipt", "SO-2024-000001"),
    ("WH-000001", "BCN1", -4, "shipment", "SO-2024-000009"),
    ("WH-000001", "BCN1", 1, "adjustment", None),
    ("WH-000002", "NYC1", -7, "transfer", "SO-2024-000009"),
]
ALL = ItemFilter()


@pytest.fixture(name="rows", scope="module", autouse=True)
def _rows(empty_legacy: LegacyTargets) -> None:
    with psycopg.connect(empty_legacy.warehouse_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO locations VALUES (%s, %s, %s, %s, %s)", LOCATIONS)
        cur.executemany("INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s)", ITEMS)
        cur.executemany("INSERT INTO stock VALUES (%s, %s, %s, %s, now())", STOCK)
        cur.executemany("INSERT INTO movements (sku, location_code, qty, kind, reference, moved_at) "
                        "VALUES (%s, %s, %s, %s, %s, now())", MOVEMENTS)


def skus(items: list[ItemStock]) -> list[str]:
    return [i.sku for i in items]


async def test_locations_in_code_order(warehouse: WarehouseConnector) -> None:
    """Locations come back complete and ordered by code."""
    assert await warehouse.locations() == [Location(*row) for row in LOCATIONS]


async def test_items_without_filter_list_every_item_with_summed_stock(warehouse: WarehouseConnector) -> None:
    """The unfiltered list has every readable item, active or not, with stock summed over locations (0 without rows)."""
    items = await warehouse.items(ALL, None, 50)
    assert skus(items) == VALID
    by_sku = {i.sku: i for i in items}
    assert by_sku["WH-000001"] == ItemStock("WH-000001", "Tornillo Ñandú", "EA", True, 15, 2)
    assert by_sku["WH-000001"].available == 13
    assert (by_sku["WH-000004"].on_hand, by_sku["WH-000004"].reserved) == (0, 0)
    assert not by_sku["WH-000003"].active


async def test_items_keyset_pages_concatenate_to_the_full_list(warehouse: WarehouseConnector) -> None:
    """Pages of two walk the full list once, in order; the unreadable row is skipped without shortening a page."""
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await warehouse.items(ALL, after, 2)
        seen += skus(page)
        if len(page) < 2:
            break
        after = page[-1].sku
    assert seen == VALID


async def test_items_at_a_location_sum_that_location_only(warehouse: WarehouseConnector) -> None:
    """With a location, stock is that location's and items without a stock row there are left out."""
    items = await warehouse.items(ItemFilter(location="BCN1"), None, 50)
    assert items == [ItemStock("WH-000001", "Tornillo Ñandú", "EA", True, 10, 2),
                     ItemStock("WH-000005", "All reserved", "EA", True, 5, 5)]


@pytest.mark.parametrize(("where", "expected"), [
    (ItemFilter(in_stock=True), ["WH-000001", "WH-000002"]),
    (ItemFilter(in_stock=False), ["WH-000003", "WH-000004", "WH-000005", "WH-000006"]),
    (ItemFilter(in_stock=True, location="NYC1"), ["WH-000001", "WH-000002"]),
    (ItemFilter(active=False), ["WH-000003"]),
    (ItemFilter(active=True, in_stock=False), ["WH-000004", "WH-000005", "WH-000006"]),
    (ItemFilter(q="ñANDÚ"), ["WH-000001"]),
    (ItemFilter(q="'über'"), ["WH-000002"]),
    (ItemFilter(q="東京"), ["WH-000003"]),
    (ItemFilter(q="wh-00000"), VALID),
    (ItemFilter(q="000004"), ["WH-000004"]),
    (ItemFilter(q="%"), ["WH-000006"]),
    (ItemFilter(q="_"), ["WH-000006"]),
    (ItemFilter(q="nothing like this"), []),
])
async def test_item_filters(warehouse: WarehouseConnector, where: ItemFilter, expected: list[str]) -> None:
    """in_stock means available > 0; q is a case-insensitive substring of name or SKU with wildcards literal."""
    assert skus(await warehouse.items(where, None, 50)) == expected


async def test_item_accepts_any_spelling_and_reports_aware_utc(warehouse: WarehouseConnector) -> None:
    """An item is found by any spelling of its SKU; its timestamptz comes back as aware UTC."""
    item = await warehouse.item("  wh-000001 ")
    assert item == Item("WH-000001", "Tornillo Ñandú", None, "EA", None, True,
                        datetime(2024, 3, 1, 10, 0, tzinfo=UTC))
    assert item is not None
    assert item.updated_at.tzinfo is UTC
    assert await warehouse.item("WH-999999") is None
    assert await warehouse.item("   ") is None


async def test_stock_levels_one_entry_per_stock_row(warehouse: WarehouseConnector) -> None:
    """Stock levels list the item's stock rows by location; an item without rows has none."""
    assert await warehouse.stock_levels("wh-000001") == [StockLevel("WH-000001", "BCN1", 10, 2),
                                                         StockLevel("WH-000001", "NYC1", 5, 0)]
    assert await warehouse.stock_levels("WH-000004") == []


async def test_stock_totals_for_known_skus_only(warehouse: WarehouseConnector) -> None:
    """Totals cover SKUs the warehouse has (zeros without stock rows); unknown SKUs are absent."""
    totals = await warehouse.stock_totals(["WH-000001", "wh-000004", "WH-999999", "WH-000001"])
    assert totals == {"WH-000001": StockTotal("WH-000001", 15, 2), "WH-000004": StockTotal("WH-000004", 0, 0)}
    assert await warehouse.stock_totals([]) == {}


async def test_item_names_by_canonical_sku(warehouse: WarehouseConnector) -> None:
    """Names come keyed by canonical SKU, keeping non-Latin text and apostrophes intact."""
    assert await warehouse.item_names(["wh-000003", "WH-000002", "WH-424242"]) == {
        "WH-000003": "東京ボルト", "WH-000002": "Kabel 'Über' 3m"}


async def test_shipped_counts_shipment_movements_only(warehouse: WarehouseConnector) -> None:
    """Shipped = minus the summed qty of shipment movements per (order, SKU); receipts and transfers don't count."""
    assert await warehouse.shipped(["SO-2024-000001", "SO-2024-000009", "SO-2024-404404"]) == {
        ("SO-2024-000001", "WH-000001"): 3,
        ("SO-2024-000001", "WH-000002"): 3,
        ("SO-2024-000009", "WH-000001"): 4,
    }
    assert await warehouse.shipped([]) == {}


def _calls(dsn: str, fragment: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                           "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                           "AND query LIKE %s", (f"%{fragment}%",)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(("n", "statements"), [(500, 1), (501, 2)])
async def test_batched_lookup_is_one_statement_per_500_keys(warehouse: WarehouseConnector,
                                                            empty_legacy: LegacyTargets, n: int,
                                                            statements: int) -> None:
    """A 500-key lookup is one statement on the server (pg_stat_statements); 501 keys take two."""
    keys = ["WH-000001", *(f"WH-{900000 + i}" for i in range(n - 1))]
    before = _calls(empty_legacy.warehouse_dsn, "FROM items WHERE sku = ANY")
    names = await warehouse.item_names(keys)
    assert names == {"WH-000001": "Tornillo Ñandú"}
    assert _calls(empty_legacy.warehouse_dsn, "FROM items WHERE sku = ANY") - before == statements
