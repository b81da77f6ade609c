"""Sales row images turned into the things they touch (``Ref``), for both Sales change feeds.

A row alone does not say everything its change touches: an order's status moves the sold counts of
the SKUs on its lines, a customer's name shows on each of their orders, a product's title on each
order that has it. What a row leaves out is looked up, batched: one statement per kind of lookup per
call (its IN list chunked), never one per row. The statements are plain SQL that MariaDB and SQLite
both accept, sent through the ``fetch`` the feed hands in.

Lookups read the tables as they are when the feed gets to them, not as they were at the change: a
row deleted since is simply not found, and the images themselves (both of them) still name what
they hold directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors._batch import chunked, unique
from federation.changes import Change, Ref, account_refs, customer_refs, order_refs, sku_refs

Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Sequence[Any]]]]

# Each takes an IN list of keys and answers (key, value) rows.
_SKUS_OF_ORDERS = ("SELECT l.order_no, p.sku FROM order_lines l JOIN products p ON p.id = l.product_id "
                   "WHERE l.order_no IN ({})")
_SKUS_OF_PRODUCTS = "SELECT id, sku FROM products WHERE id IN ({})"
_ORDERS_OF_CUSTOMERS = "SELECT customer_id, order_no FROM orders WHERE customer_id IN ({})"
# order_lines.product_id has no index of its own (only the foreign key's, where the server made one):
# this may scan order_lines, which is acceptable because products change rarely.
_ORDERS_OF_PRODUCTS = "SELECT DISTINCT product_id, order_no FROM order_lines WHERE product_id IN ({})"

TABLES = frozenset({"orders", "order_lines", "customers", "products"})


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row's change as a feed saw it: insert (``before`` None), update, or delete (``after`` None)."""

    table: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    committed_at: datetime | None = None

    def values(self, column: str) -> list[Any]:
        """The column's value in each image there is (old first), None where the image lacks it."""
        return [image.get(column) for image in (self.before, self.after) if image is not None]


def _order_key(value: object) -> str | None:
    if value is None:
        return None
    key = str(value).strip()
    return key or None


def _int_key(value: object) -> int | None:
    if value is None or isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


class SalesRefs:
    """Refs of Sales row changes; ``queries`` counts the statements sent through ``fetch``."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self.queries = 0

    async def refs(self, rows: Sequence[RowChange]) -> list[Change]:
        """One ``Change`` per row of a table Sales' answers are built from (others are left out), in order."""
        rows = [r for r in rows if r.table.lower() in TABLES]
        wanted: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            table = row.table.lower()
            if table == "orders":
                wanted["orders"] += [_order_key(v) for v in row.values("order_no")]
            elif table == "order_lines":
                wanted["products"] += [_int_key(v) for v in row.values("product_id")]
            elif table == "customers":
                wanted["customers"] += [_int_key(v) for v in row.values("id")]
            else:
                wanted["product_orders"] += [_int_key(v) for v in row.values("id")]

        skus_of_order = await self._lookup(_SKUS_OF_ORDERS, wanted["orders"], _order_key)
        sku_of_product = await self._lookup(_SKUS_OF_PRODUCTS, wanted["products"], _int_key)
        orders_of_customer = await self._lookup(_ORDERS_OF_CUSTOMERS, wanted["customers"], _int_key)
        orders_of_product = await self._lookup(_ORDERS_OF_PRODUCTS, wanted["product_orders"], _int_key)

        changes = []
        for row in rows:
            table = row.table.lower()
            refs: set[Ref]
            if table == "orders":
                order_nos = row.values("order_no")
                refs = order_refs(order_nos) | customer_refs(row.values("customer_id"))
                refs |= sku_refs(_found(skus_of_order, (_order_key(v) for v in order_nos)))
            elif table == "order_lines":
                refs = order_refs(row.values("order_no"))
                refs |= sku_refs(_found(sku_of_product, (_int_key(v) for v in row.values("product_id"))))
            elif table == "customers":
                ids = row.values("id")
                refs = customer_refs(ids) | account_refs(row.values("acct_no"))
                refs |= order_refs(_found(orders_of_customer, (_int_key(v) for v in ids)))
            else:
                refs = sku_refs(row.values("sku"))
                refs |= order_refs(_found(orders_of_product, (_int_key(v) for v in row.values("id"))))
            changes.append(Change(table, frozenset(refs), row.committed_at))
        return changes

    async def _lookup(self, sql: str, keys: Iterable[Any], key_of: Callable[[object], Hashable | None],
                      ) -> dict[Hashable, list[Any]]:
        """The values each key maps to, from ``sql`` run once per chunk of distinct keys."""
        found: dict[Hashable, list[Any]] = defaultdict(list)
        for chunk in chunked(unique(keys)):
            self.queries += 1
            for key, value in await self._fetch(sql.format(", ".join(["%s"] * len(chunk))), list(chunk)):
                found[key_of(key)].append(value)
        return found


def _found(found: Mapping[Hashable, list[Any]], keys: Iterable[Hashable | None]) -> list[Any]:
    return [value for key in keys if key is not None for value in found.get(key, ())]
