"""An in-memory Sales: customers, orders, order lines and products, read as ``connectors/sales.py`` reads the
MariaDB database (customers by id, orders by order number, sold items by units then SKU).

As in the database, amounts are derived, not stored: a line's total is qty × unit price less its discount
(rounded half-up to cents) in its order's currency, and an order's total is the sum of its lines' totals;
the ``total`` given on an ``Order`` or ``OrderLine`` record is not used.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from connectors._batch import unique
from connectors._values import line_total, text_or_none
from federation.queries import CustomerFilter, OrderFilter, SoldItemsFilter, SoldItemsKey
from federation.records import Customer, Money, Order, OrderLine, OrderStats, Product, ProductSales, SoldItem
from federation.spelling import canonical_sku
from tests.fakes.source import FakeSource

NOT_SOLD = ("draft", "cancelled")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


class FakeSales(FakeSource):
    """The ``Sales`` port over lists of the core's records; change the rows at will between calls."""

    name = "sales"

    def __init__(self, *, customers: Iterable[Customer] = (), orders: Iterable[Order] = (),
                 lines: Iterable[OrderLine] = (), products: Iterable[Product] = ()) -> None:
        super().__init__()
        self.customer_rows: dict[int, Customer] = {c.id: c for c in customers}
        self.order_rows: dict[str, Order] = {o.order_no: o for o in orders}
        self.line_rows: list[OrderLine] = list(lines)
        self.product_rows: list[Product] = list(products)
        for sku in [*(ln.sku for ln in self.line_rows), *(p.sku for p in self.product_rows)]:
            if sku is not None and canonical_sku(sku) != sku:
                raise ValueError(f"a fake holds canonical SKUs (WH-000123), not {sku!r}")

    # -- customers ------------------------------------------------------------

    async def customers(self, where: CustomerFilter, after: int | None, limit: int) -> list[Customer]:
        async with self._call("customers"):
            q = folded(where.q) if where.q else None
            country = where.country.strip() if where.country is not None else None
            found = [c for _, c in sorted(self.customer_rows.items())
                     if (after is None or c.id > after) and (q is None or q in folded(c.name))
                     and (country is None or c.country == country)]
            return found[:max(limit, 0)]

    async def customer(self, customer_id: int) -> Customer | None:
        async with self._call("customer"):
            return self.customer_rows.get(customer_id)

    async def order_customer(self, order_no: str) -> Customer | None:
        async with self._call("order_customer"):
            order = self.order_rows.get(order_no.strip())
            return self.customer_rows.get(order.customer_id) if order else None

    async def customers_by_acct(self, acct_nos: Sequence[str]) -> dict[str, Customer]:
        async with self._call("customers_by_acct"):
            keys = set(unique(text_or_none(a) for a in acct_nos))
            found: dict[str, Customer] = {}
            for _, c in sorted(self.customer_rows.items()):
                if c.acct_no is not None and c.acct_no in keys:
                    found.setdefault(c.acct_no, c)   # the lowest id of an account shared by several
            return found

    async def order_stats(self, customer_ids: Sequence[int]) -> dict[int, OrderStats]:
        async with self._call("order_stats"):
            stats = {k: OrderStats(0, None) for k in unique(customer_ids)}
            for o in self.order_rows.values():
                seen = stats.get(o.customer_id)
                if seen is not None:
                    last = o.ordered_at if seen.last_ordered_at is None else max(seen.last_ordered_at, o.ordered_at)
                    stats[o.customer_id] = OrderStats(seen.count + 1, last)
            return stats

    # -- orders ---------------------------------------------------------------

    async def orders(self, where: OrderFilter, after: str | None, limit: int) -> list[Order]:
        async with self._call("orders"):
            found = [self._priced(o) for no, o in sorted(self.order_rows.items())
                     if (after is None or no > after)
                     and (where.customer_id is None or o.customer_id == where.customer_id)
                     and (where.status is None or o.status == where.status)
                     and (where.since is None or o.ordered_at >= where.since)
                     and (where.until is None or o.ordered_at < where.until)]
            return found[:max(limit, 0)]

    async def order(self, order_no: str) -> Order | None:
        async with self._call("order"):
            order = self.order_rows.get(order_no.strip())
            return self._priced(order) if order else None

    async def order_lines(self, order_no: str) -> list[OrderLine]:
        async with self._call("order_lines"):
            order = self.order_rows.get(order_no.strip())
            return [] if order is None else self._lines_of(order)

    def _lines_of(self, order: Order) -> list[OrderLine]:
        lines = sorted((ln for ln in self.line_rows if ln.order_no == order.order_no), key=lambda ln: ln.line_no)
        out = []
        for ln in lines:
            price, discount = ln.unit_price.amount, ln.discount_pct
            out.append(replace(ln, unit_price=Money(price.quantize(CENT), order.currency),
                               discount_pct=discount.quantize(CENT),
                               total=Money(line_total(ln.qty, price, discount), order.currency)))
        return out

    def _priced(self, order: Order) -> Order:
        return replace(order, total=sum((ln.total.amount for ln in self._lines_of(order)), ZERO))

    # -- products -------------------------------------------------------------

    async def products_by_sku(self, skus: Sequence[str]) -> dict[str, Product]:
        async with self._call("products_by_sku"):
            keys = set(unique(canonical_sku(s) for s in skus))
            found: dict[str, Product] = {}
            for p in sorted(self.product_rows, key=lambda p: p.id):
                if p.sku is not None and p.sku in keys:
                    found.setdefault(p.sku, p)   # the lowest id of a SKU listed twice
            return found

    async def product_sales(self, sku: str) -> ProductSales:
        async with self._call("product_sales"):
            key = canonical_sku(sku)
            units, orders, last = 0, set[str](), None
            for ln, o in self._sold_lines():
                if key is not None and ln.sku == key:
                    units += ln.qty
                    orders.add(o.order_no)
                    last = o.ordered_at if last is None else max(last, o.ordered_at)
            return ProductSales(units, len(orders), last)

    async def sold_items(self, where: SoldItemsFilter, after: SoldItemsKey | None, limit: int) -> list[SoldItem]:
        async with self._call("sold_items"):
            location = where.location.strip() if where.location is not None else None
            units: dict[str, int] = {}
            for ln, o in self._sold_lines():
                if ln.sku is None or not _within(o.ordered_at, where.since, where.until):
                    continue
                if location is not None and o.ship_from != location:
                    continue
                units[ln.sku] = units.get(ln.sku, 0) + ln.qty
            ranked = sorted(units.items(), key=lambda su: (-su[1], su[0]))
            if after is not None:
                after_units, after_sku = after
                ranked = [(s, u) for s, u in ranked if u < after_units or (u == after_units and s > after_sku)]
            return [SoldItem(s, u) for s, u in ranked[:max(limit, 0)]]

    def _sold_lines(self) -> Iterable[tuple[OrderLine, Order]]:
        """Lines of orders that count as sold (neither draft nor cancelled), with their order."""
        for ln in self.line_rows:
            order = self.order_rows.get(ln.order_no)
            if order is not None and order.status not in NOT_SOLD:
                yield ln, order


def folded(text: str) -> str:
    """``text`` as Sales' collation (MariaDB's utf8mb4_general_ci) compares it, character by character: without
    case or accents (``Käthe`` is ``KATHE``), ß as S; letters that do not decompose (ø, æ, ł) stay themselves."""
    out = []
    for char in text:
        base = unicodedata.normalize("NFD", char)[0]
        upper = "S" if base == "ß" else base.upper()
        out.append(upper if len(upper) == 1 else base)
    return "".join(out)


def _within(when: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or when >= since) and (until is None or when < until)
