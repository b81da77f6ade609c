"""Sales connector: the ``sales`` MariaDB database, on connections made by a SQLAlchemy async engine (asyncmy)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connectors._batch import LIKE_ESCAPE, chunked, contains_pattern, unique
from connectors._held import HeldConnections, close_held
from connectors._paging import keyset_page
from connectors._sales_errors import SOURCE, driver_errors, keeps_connection
from connectors._values import (
    ROW_ERRORS,
    convert_rows,
    decimal,
    line_total,
    log,
    money_amount,
    skipped_row,
    text_or_none,
    utc,
)
from federation.errors import SourceUnavailable
from federation.model import CENT
from federation.queries import CustomerFilter, OrderFilter, SoldItemsFilter, SoldItemsKey
from federation.records import (
    Customer,
    Money,
    Order,
    OrderLine,
    OrderStats,
    OrderStatus,
    Product,
    ProductSales,
    SoldItem,
)
from federation.spelling import canonical_sku, sales_sku

T = TypeVar("T")
Rows = Sequence[Any]
Statement = tuple[str, Sequence[Any]]   # the driver's own parameterised SQL (%s marks) and its values

_ORDER_STATUSES: dict[str, OrderStatus] = {
    "draft": "draft", "confirmed": "confirmed", "shipped": "shipped",
    "delivered": "delivered", "cancelled": "cancelled",
}
_ZERO = Decimal("0.00")
MAX_IDLE = 300.0   # seconds a held connection may sit idle before it is remade: well inside wait_timeout

# create_engine(skip_autocommit_rollback=) is SQLAlchemy 2.0.43 and later
_CAN_SKIP_AUTOCOMMIT_ROLLBACK = "skip_autocommit_rollback" in inspect.signature(DefaultDialect.__init__).parameters


# The statements, written for MariaDB as the Sales schema has it. They are plain
# text with the driver's %s marks, sent as they are: building and compiling SQLAlchemy expressions on
# every call cost more than the queries themselves.
_CUSTOMER = "SELECT id, name, email, country, created_at, acct_no FROM customers"
_ORDER = "SELECT order_no, customer_id, status, ordered_at, ship_from, currency FROM orders"
_CUSTOMER_OF_ORDER = ("SELECT c.id, c.name, c.email, c.country, c.created_at, c.acct_no "
                      "FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.order_no = %s")
_ORDER_STATS = ("SELECT customer_id, COUNT(*), MAX(ordered_at) FROM orders WHERE customer_id IN ({}) "
                "GROUP BY customer_id")
_ORDER_LINES = ("SELECT l.order_no, l.line_no, l.product_id, p.sku, p.title, l.qty, l.unit_price, l.discount_pct, "
                "o.currency FROM order_lines l JOIN orders o ON o.order_no = l.order_no "
                "LEFT JOIN products p ON p.id = l.product_id WHERE l.order_no = %s ORDER BY l.line_no")
_PRODUCTS_BY_SKU = "SELECT id, title, sku, list_price, currency FROM products WHERE sku IN ({}) ORDER BY id"
_SOLD_LINES = ("FROM order_lines l JOIN orders o ON o.order_no = l.order_no JOIN products p ON p.id = l.product_id "
               "WHERE o.status NOT IN ('cancelled', 'draft')")
_PRODUCT_SALES = f"SELECT SUM(l.qty), COUNT(DISTINCT o.order_no), MAX(o.ordered_at) {_SOLD_LINES} AND p.sku = %s"
# The keyset compares the aggregates by name, which MySQL allows only outside the grouping query.
_SOLD_ITEMS = ("SELECT sku, units_sold FROM (SELECT UPPER(TRIM(p.sku)) AS sku, SUM(l.qty) AS units_sold "
               f"{_SOLD_LINES} AND p.sku IS NOT NULL AND TRIM(p.sku) != ''{{}} GROUP BY UPPER(TRIM(p.sku))) AS ranked")
# MariaDB's DECIMAL arithmetic is exact, so the database sums the line totals itself: the product is
# exact, and ROUND of an exact value rounds half away from zero, as ROUND_HALF_UP does, so each rounded
# line, and their sum, is the Decimal line_total gives. "× 0.01", not "/ 100": a quotient keeps only
# div_precision_increment more digits.
_ORDER_TOTALS = ("SELECT order_no, SUM(ROUND(qty * unit_price * (100 - discount_pct) * 0.01, 2)) "
                 "FROM order_lines WHERE order_no IN ({}) GROUP BY order_no")


@functools.lru_cache(maxsize=64)
def _marks(n: int) -> str:
    """``%s, %s, ...``: the placeholders of an IN list of ``n`` values."""
    return ", ".join(["%s"] * n)


def _where(conditions: Sequence[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def _naive_utc(value: datetime) -> datetime:
    """DATETIME columns hold naive UTC; an aware bound value is turned to it."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


class SalesConnector:
    """Reads customers, products and orders; order totals are summed by MariaDB in exact DECIMAL arithmetic."""

    name = SOURCE

    def __init__(self, url: str, *, pool_size: int, query_timeout: float, connect_timeout: float) -> None:
        if pool_size < 1:
            raise ValueError("sales: pool_size must be at least 1")
        try:
            self._url = make_url(url)
        except sa_exc.ArgumentError:
            raise ValueError("sales: the database URL is malformed") from None
        self._pool_size = pool_size
        self._query_timeout = query_timeout
        self._connect_timeout = connect_timeout
        self._engine: AsyncEngine | None = None
        self._held: HeldConnections | None = None
        self.on_statement: Callable[[str], None] | None = None   # told each statement sent: tests, tracing

    @property
    def engine(self) -> AsyncEngine | None:
        """The engine while open: it makes the connections, and tests write their rows through it."""
        return self._engine

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Create the engine; connections are made lazily, so a down source does not stop start-up."""
        if self._engine is not None:
            return
        options: dict[str, Any] = {
            # The held connections are lent by HeldConnections; the engine's pool only has to make
            # them, so it allows one more than we hold, for the tests' own writes.
            "pool_size": self._pool_size + 1, "max_overflow": 0,
            "pool_timeout": self._connect_timeout, "connect_args": {"connect_timeout": self._connect_timeout},
            # Reads only: without a transaction there is nothing to roll back when a connection
            # returns to the pool, which saves a round trip per call.
            "isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None,
        }
        if _CAN_SKIP_AUTOCOMMIT_ROLLBACK:
            # ... and another: closing a Connection still sends ROLLBACK unless told not to
            options["skip_autocommit_rollback"] = True
        engine = create_async_engine(self._url, **options)
        event.listen(engine.sync_engine, "connect", self._on_connect)
        self._engine = engine
        self._held = HeldConnections(SOURCE, engine, self._pool_size, max_idle=MAX_IDLE, keeps=keeps_connection)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # /*M! ... */ runs on MariaDB only; MySQL has no max_statement_time and keeps just the user variable
            cursor.execute(f"SET @bizfed_connector = 1 /*M!, SESSION max_statement_time = "
                           f"{max(0.001, self._query_timeout):.3f} */")
        finally:
            cursor.close()

    async def close(self) -> None:
        engine, held = self._engine, self._held
        self._engine = self._held = None
        await close_held(held, engine)

    async def ping(self) -> None:
        await self._fetch("SELECT 1", ())

    def pool_state(self) -> dict[str, int]:
        held = self._held
        if held is None:
            return {"max": self._pool_size, "size": 0, "in_use": 0, "idle": 0, "waiting": 0}
        return {"max": held.size, "size": held.lent + held.idle, "in_use": held.lent, "idle": held.idle,
                "waiting": held.waiting}

    # -- customers ---------------------------------------------------------

    async def customers(self, where: CustomerFilter, after: int | None, limit: int) -> list[Customer]:
        conditions: list[str] = []
        values: list[Any] = []
        if where.q:
            conditions.append(f"LOWER(name) LIKE LOWER(%s) ESCAPE '{LIKE_ESCAPE}'")
            values.append(contains_pattern(where.q))
        if where.country is not None:
            conditions.append("country = %s")
            values.append(where.country.strip())

        async def fetch(after_id: int | None, n: int) -> Rows:
            keyset = [] if after_id is None else ["id > %s"]
            sql = f"{_CUSTOMER}{_where(conditions + keyset)} ORDER BY id LIMIT %s"
            return await self._fetch(sql, [*values, *([] if after_id is None else [after_id]), n])

        return await keyset_page(fetch, lambda row: int(row[0]), _customers, after, limit)

    async def customer(self, customer_id: int) -> Customer | None:
        found = _customers(await self._fetch(f"{_CUSTOMER} WHERE id = %s", (customer_id,)))
        return found[0] if found else None

    async def order_customer(self, order_no: str) -> Customer | None:
        """The customer who placed ``order_no``, found by the order number alone (no wait for the order)."""
        found = _customers(await self._fetch(_CUSTOMER_OF_ORDER, (order_no.strip(),)))
        return found[0] if found else None

    async def customers_by_acct(self, acct_nos: Sequence[str]) -> dict[str, Customer]:
        keys = unique(text_or_none(a) for a in acct_nos)
        rows = await self._fetch_chunked(
            keys, lambda chunk: (f"{_CUSTOMER} WHERE acct_no IN ({_marks(len(chunk))}) ORDER BY id", chunk))
        found: dict[str, Customer] = {}
        for customer in _customers(rows):
            if customer.acct_no is not None:
                found.setdefault(customer.acct_no, customer)
        return found

    async def order_stats(self, customer_ids: Sequence[int]) -> dict[int, OrderStats]:
        keys = unique(customer_ids)
        rows = await self._fetch_chunked(keys, lambda chunk: (_ORDER_STATS.format(_marks(len(chunk))), chunk))
        stats = {k: OrderStats(0, None) for k in keys}
        for customer_id, count, last in rows:
            stats[int(customer_id)] = OrderStats(int(count), utc(last))
        return stats

    # -- orders ------------------------------------------------------------

    async def orders(self, where: OrderFilter, after: str | None, limit: int) -> list[Order]:
        conditions: list[str] = []
        values: list[Any] = []
        for condition, value in (("customer_id = %s", where.customer_id), ("status = %s", where.status),
                                 ("ordered_at >= %s", where.since), ("ordered_at < %s", where.until)):
            if value is not None:
                conditions.append(condition)
                values.append(_naive_utc(value) if isinstance(value, datetime) else value)

        async def fetch(after_no: str | None, n: int) -> list[tuple[Any, Decimal | None]]:
            keyset = [] if after_no is None else ["order_no > %s"]
            sql = f"{_ORDER}{_where(conditions + keyset)} ORDER BY order_no LIMIT %s"
            return await self._orders_with_totals((sql, [*values, *([] if after_no is None else [after_no]), n]))

        return await keyset_page(fetch, lambda pair: str(pair[0][0]), _orders, after, limit)

    async def order(self, order_no: str) -> Order | None:
        found = _orders(await self._orders_with_totals((f"{_ORDER} WHERE order_no = %s", (order_no.strip(),))))
        return found[0] if found else None

    async def _orders_with_totals(self, heads_query: Statement) -> list[tuple[Any, Decimal | None]]:
        """Each order row of ``heads_query`` with its total, from ONE batched lines query for the whole page."""

        async def work(cur: Any) -> tuple[Rows, dict[str, Decimal | None]]:
            heads = await self._execute(cur, *heads_query)
            nos = [h[0] for h in heads]
            sums: list[Any] = []
            for chunk in chunked(nos):
                sums.extend(await self._execute(cur, _ORDER_TOTALS.format(_marks(len(chunk))), chunk))
            return heads, {row[0]: row[1] for row in sums}

        heads, totals = await self._run(work)
        return [(head, totals.get(head[0], _ZERO)) for head in heads]

    async def order_lines(self, order_no: str) -> list[OrderLine]:
        rows = await self._fetch(_ORDER_LINES, (order_no.strip(),))
        return convert_rows(rows, _order_line, source=SOURCE, what="order line")

    # -- products ----------------------------------------------------------

    async def products_by_sku(self, skus: Sequence[str]) -> dict[str, Product]:
        keys = [sales_sku(k) for k in unique(canonical_sku(s) for s in skus)]
        rows = await self._fetch_chunked(keys, lambda chunk: (_PRODUCTS_BY_SKU.format(_marks(len(chunk))), chunk))
        found: dict[str, Product] = {}
        for product in convert_rows(rows, _product, source=SOURCE, what="product"):
            if product.sku is not None:
                found.setdefault(product.sku, product)
        return found

    async def product_sales(self, sku: str) -> ProductSales:
        key = canonical_sku(sku)
        if key is None:
            return ProductSales(0, 0, None)
        rows = await self._fetch(_PRODUCT_SALES, (sales_sku(key),))
        units, count, last = rows[0] if rows else (None, 0, None)
        return ProductSales(int(units or 0), int(count or 0), utc(last))

    async def sold_items(self, where: SoldItemsFilter, after: SoldItemsKey | None, limit: int) -> list[SoldItem]:
        conditions: list[str] = []
        values: list[Any] = []
        for condition, value in (("o.ordered_at >= %s", where.since), ("o.ordered_at < %s", where.until),
                                 ("o.ship_from = %s", where.location.strip() if where.location is not None else None)):
            if value is not None:
                conditions.append(f" AND {condition}")
                values.append(_naive_utc(value) if isinstance(value, datetime) else value)
        ranked = _SOLD_ITEMS.format("".join(conditions))

        async def fetch(after_key: SoldItemsKey | None, n: int) -> Rows:
            if after_key is None:
                return await self._fetch(f"{ranked} ORDER BY units_sold DESC, sku ASC LIMIT %s", [*values, n])
            after_units, after_sku = after_key
            sql = (f"{ranked} WHERE units_sold < %s OR units_sold = %s AND sku > %s "
                   "ORDER BY units_sold DESC, sku ASC LIMIT %s")
            return await self._fetch(sql, [*values, after_units, after_units, after_sku, n])

        return await keyset_page(fetch, lambda row: (int(row[1]), str(row[0])), _sold_items, after, limit)

    # -- plumbing ----------------------------------------------------------

    async def _execute(self, cur: Any, sql: str, values: Sequence[Any]) -> Rows:
        if self.on_statement is not None:
            self.on_statement(sql)
        await cur.execute(sql, values)
        rows: Rows = await cur.fetchall()
        return rows

    async def _fetch(self, sql: str, values: Sequence[Any]) -> Rows:
        async def work(cur: Any) -> Rows:
            return await self._execute(cur, sql, values)

        return await self._run(work)

    async def _fetch_chunked(self, keys: Sequence[Any], statement: Callable[[Sequence[Any]], Statement]) -> Rows:
        """One statement per chunk of keys, all on one connection."""
        if not keys:
            return []

        async def work(cur: Any) -> Rows:
            rows: list[Any] = []
            for chunk in chunked(keys):
                rows.extend(await self._execute(cur, *statement(chunk)))
            return rows

        return await self._run(work)

    async def _run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        held = self._held
        if held is None:
            raise SourceUnavailable(SOURCE, "connector is not open")
        # No timer here: the policy bounds every attempt, and a call it gives up on is cancelled.
        # Making a connection raises only SourceUnavailable (HeldConnections._make), so a socket
        # error below comes from a connection that was working.
        with driver_errors():
            async with held.lease(self._connect_timeout) as conn, conn.cursor() as cur:
                return await work(cur)


def _customer(row: Any) -> Customer | None:
    id_, name, email, country, created_at, acct_no = row
    created = utc(created_at)
    if created is None:
        log.warning("%s: customer %s has an unreadable created_at; skipped", SOURCE, id_)
        return None
    return Customer(int(id_), name, text_or_none(email), text_or_none(country), created, text_or_none(acct_no))


def _customers(rows: Rows) -> list[Customer]:
    return convert_rows(rows, _customer, source=SOURCE, what="customer")


def _orders(pairs: Sequence[tuple[Any, Decimal | None]]) -> list[Order]:
    """(order row, total) pairs as records, the unreadable ones skipped; inline, as a bulk read runs it per row."""
    out: list[Order] = []
    append = out.append
    for pair in pairs:
        try:
            row, total = pair
            order_no, customer_id, status, ordered_at, ship_from, currency = row
            if type(ordered_at) is datetime and ordered_at.tzinfo is None:
                # utc()'s common case, without the call
                when: datetime | None = datetime.combine(ordered_at, ordered_at.time(), UTC)
            else:
                when = utc(ordered_at)
            state = _ORDER_STATUSES.get(status)
            if state is None and isinstance(status, str):
                state = _ORDER_STATUSES.get(str.strip(status).lower())
            if when is None or state is None or total is None:
                log.warning("%s: order %s has an unreadable ordered_at, status or line; skipped", SOURCE, order_no)
                continue
            currency = str.strip(currency)
            customer = int(customer_id)
            ship = (str.strip(ship_from) or None) if ship_from is not None else None  # text_or_none
            append(Order(order_no, customer, state, when, ship, currency, total))
        except ROW_ERRORS as exc:
            skipped_row(SOURCE, "order", exc)
    return out


def _order_line(row: Any) -> OrderLine:
    order_no, line_no, product_id, sku, title, qty, unit_price, discount_pct, currency = row
    if title is None:
        log.warning("%s: order %s line %s names a missing product %s", SOURCE, order_no, line_no, product_id)
    price, discount = decimal(unit_price), decimal(discount_pct)
    currency = str.strip(currency)
    return OrderLine(order_no, int(line_no), int(product_id), canonical_sku(sku), title or "", int(qty),
                     Money(price.quantize(CENT), currency), discount.quantize(CENT),
                     Money(line_total(int(qty), price, discount), currency))


def _product(row: Any) -> Product:
    id_, title, sku, list_price, currency = row
    return Product(int(id_), title, canonical_sku(sku), Money(money_amount(list_price), str.strip(currency)))


def _sold_items(rows: Rows) -> list[SoldItem]:
    return convert_rows(rows, _sold_item, source=SOURCE, what="sold item")


def _sold_item(row: Any) -> SoldItem | None:
    sku, units = row
    key = canonical_sku(sku)
    return SoldItem(key, int(units)) if key else None
