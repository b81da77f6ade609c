"""Sales connector: the ``sales`` MariaDB database through SQLAlchemy 2 Core on an async engine (asyncmy)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    CHAR,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    TypeDecorator,
    and_,
    event,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import Executable, Select

from connectors._batch import LIKE_ESCAPE, chunked, contains_pattern, unique
from connectors._deadline import GUARD_MARGIN
from connectors._paging import keyset_page
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
from federation.errors import ConnectorError, PoolExhausted, QueryFailed, SourceTimeout, SourceUnavailable
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

SOURCE = "sales"
_ORDER_STATUSES: dict[str, OrderStatus] = {
    "draft": "draft", "confirmed": "confirmed", "shipped": "shipped",
    "delivered": "delivered", "cancelled": "cancelled",
}
_NOT_SOLD = ("cancelled", "draft")
_ZERO = Decimal("0.00")

# create_engine(skip_autocommit_rollback=) is SQLAlchemy 2.0.43 and later
_CAN_SKIP_AUTOCOMMIT_ROLLBACK = "skip_autocommit_rollback" in inspect.signature(DefaultDialect.__init__).parameters

# MySQL/MariaDB error numbers that mean "too slow" and "connection gone".
_TIMEOUT_CODES = frozenset({1317, 1969, 3024, 1205})
_GONE_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})


class UtcDateTime(TypeDecorator[datetime]):
    """A naive-UTC DATETIME column; binds aware times as naive UTC.

    Results are left raw: rows are read with ``_values.utc`` so that one unreadable value (a zero
    date the legacy server accepts outside strict mode) skips a row, not the whole list.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value


metadata = MetaData()

customers = Table(
    "customers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254)),
    Column("country", CHAR(2)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("acct_no", String(10)),
    Index("customers_acct_no_idx", "acct_no"),
)

products = Table(
    "products", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("title", String(200), nullable=False),
    Column("sku", String(20)),
    Column("list_price", Numeric(12, 2), nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Index("products_sku_idx", "sku"),
)

orders = Table(
    "orders", metadata,
    Column("order_no", String(20), primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    # an ENUM in MariaDB; read as text so that a stray value skips a row instead of failing the list
    Column("status", String(9), nullable=False),
    Column("ordered_at", UtcDateTime(), nullable=False),
    Column("ship_from", String(8)),
    Column("currency", CHAR(3), nullable=False),
    Index("orders_customer_id_idx", "customer_id"),
    Index("orders_ordered_at_idx", "ordered_at"),
)

order_lines = Table(
    "order_lines", metadata,
    Column("order_no", String(20), ForeignKey("orders.order_no"), nullable=False),
    Column("line_no", SmallInteger, nullable=False),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
    Column("discount_pct", Numeric(5, 2), nullable=False, server_default="0"),
    PrimaryKeyConstraint("order_no", "line_no"),
)

_CUSTOMER_COLS = (customers.c.id, customers.c.name, customers.c.email, customers.c.country,
                  customers.c.created_at, customers.c.acct_no)
_ORDER_COLS = (orders.c.order_no, orders.c.customer_id, orders.c.status, orders.c.ordered_at,
               orders.c.ship_from, orders.c.currency)
_ORDERS_BY_NO = select(*_ORDER_COLS).order_by(orders.c.order_no)

# MariaDB's DECIMAL arithmetic is exact, so the database sums the line totals itself: the product is
# exact, and ROUND of an exact value rounds half away from zero, as ROUND_HALF_UP does, so each rounded
# line, and their sum, is the Decimal line_total gives. "× 0.01", not "/ 100": a quotient keeps only
# div_precision_increment more digits.
_SQL_LINE_TOTAL = func.round(
    order_lines.c.qty * order_lines.c.unit_price * (literal_column("100") - order_lines.c.discount_pct)
    * literal_column("0.01"), literal_column("2"))


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
        self._in_use = 0
        self._waiting = 0

    @property
    def engine(self) -> AsyncEngine | None:
        """The engine while open, for instrumentation (e.g. counting statements)."""
        return self._engine

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Create the engine; connections are made lazily, so a down source does not stop start-up."""
        if self._engine is not None:
            return
        options: dict[str, Any] = {
            "pool_pre_ping": True, "pool_size": self._pool_size, "max_overflow": 0,
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

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # /*M! ... */ runs on MariaDB only; MySQL has no max_statement_time and keeps just the user variable
            cursor.execute(f"SET @bizfed_connector = 1 /*M!, SESSION max_statement_time = "
                           f"{max(0.001, self._query_timeout):.3f} */")
        finally:
            cursor.close()

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def ping(self) -> None:
        await self._fetch(select(literal(1)))

    def pool_state(self) -> dict[str, int]:
        state = {"max": self._pool_size, "size": 0, "in_use": self._in_use, "idle": 0, "waiting": self._waiting}
        pool = self._engine.pool if self._engine is not None else None
        if isinstance(pool, QueuePool):
            state.update(size=pool.checkedin() + pool.checkedout(), idle=pool.checkedin())
        return state

    # -- customers ---------------------------------------------------------

    async def customers(self, where: CustomerFilter, after: int | None, limit: int) -> list[Customer]:
        base = select(*_CUSTOMER_COLS).order_by(customers.c.id)
        if where.q:
            pattern = func.lower(literal(contains_pattern(where.q), String))
            base = base.where(func.lower(customers.c.name).like(pattern, escape=LIKE_ESCAPE))
        if where.country is not None:
            base = base.where(customers.c.country == where.country.strip())

        async def fetch(after_id: int | None, n: int) -> Rows:
            stmt = base.limit(n) if after_id is None else base.where(customers.c.id > after_id).limit(n)
            return await self._fetch(stmt)

        return await keyset_page(fetch, lambda row: int(row[0]), _customers, after, limit)

    async def customer(self, customer_id: int) -> Customer | None:
        stmt = select(*_CUSTOMER_COLS).where(customers.c.id == customer_id)
        found = convert_rows(await self._fetch(stmt), _customer, source=SOURCE, what="customer")
        return found[0] if found else None

    async def order_customer(self, order_no: str) -> Customer | None:
        """The customer who placed ``order_no``, found by the order number alone (no wait for the order)."""
        stmt = (select(*_CUSTOMER_COLS)
                .select_from(orders.join(customers, customers.c.id == orders.c.customer_id))
                .where(orders.c.order_no == order_no.strip()))
        found = convert_rows(await self._fetch(stmt), _customer, source=SOURCE, what="customer")
        return found[0] if found else None

    async def customers_by_acct(self, acct_nos: Sequence[str]) -> dict[str, Customer]:
        keys = unique(text_or_none(a) for a in acct_nos)
        rows = await self._fetch_chunked(
            keys, lambda chunk: select(*_CUSTOMER_COLS).where(customers.c.acct_no.in_(chunk)).order_by(customers.c.id))
        found: dict[str, Customer] = {}
        for customer in convert_rows(rows, _customer, source=SOURCE, what="customer"):
            if customer.acct_no is not None:
                found.setdefault(customer.acct_no, customer)
        return found

    async def order_stats(self, customer_ids: Sequence[int]) -> dict[int, OrderStats]:
        keys = unique(customer_ids)
        rows = await self._fetch_chunked(
            keys, lambda chunk: select(orders.c.customer_id, func.count(), func.max(orders.c.ordered_at))
            .where(orders.c.customer_id.in_(chunk)).group_by(orders.c.customer_id))
        stats = {k: OrderStats(0, None) for k in keys}
        for customer_id, count, last in rows:
            stats[int(customer_id)] = OrderStats(int(count), utc(last))
        return stats

    # -- orders ------------------------------------------------------------

    async def orders(self, where: OrderFilter, after: str | None, limit: int) -> list[Order]:
        stmt = _ORDERS_BY_NO
        if where.customer_id is not None:
            stmt = stmt.where(orders.c.customer_id == where.customer_id)
        if where.status is not None:
            stmt = stmt.where(orders.c.status == where.status)
        if where.since is not None:
            stmt = stmt.where(orders.c.ordered_at >= where.since)
        if where.until is not None:
            stmt = stmt.where(orders.c.ordered_at < where.until)

        async def fetch(after_no: str | None, n: int) -> list[tuple[Any, Decimal | None]]:
            page = stmt.limit(n) if after_no is None else stmt.where(orders.c.order_no > after_no).limit(n)
            return await self._orders_with_totals(page)

        return await keyset_page(fetch, lambda pair: str(pair[0][0]), _orders, after, limit)

    async def order(self, order_no: str) -> Order | None:
        heads = await self._orders_with_totals(select(*_ORDER_COLS).where(orders.c.order_no == order_no.strip()))
        found = _orders(heads)
        return found[0] if found else None

    async def _orders_with_totals(self, stmt: Executable) -> list[tuple[Any, Decimal | None]]:
        """Each order row of ``stmt`` with its total, from ONE batched lines query for the whole page."""

        async def work(conn: AsyncConnection) -> tuple[Rows, dict[str, Decimal | None]]:
            heads = (await conn.execute(stmt)).all()
            nos = [h[0] for h in heads]
            sums: list[Any] = []
            for chunk in chunked(nos):
                sums.extend((await conn.execute(_totals_query(chunk))).all())
            return heads, _totals(sums)

        heads, totals = await self._run(work)
        return [(head, totals.get(head[0], _ZERO)) for head in heads]

    async def order_lines(self, order_no: str) -> list[OrderLine]:
        stmt = (select(order_lines.c.order_no, order_lines.c.line_no, order_lines.c.product_id, products.c.sku,
                       products.c.title, order_lines.c.qty, order_lines.c.unit_price, order_lines.c.discount_pct,
                       orders.c.currency)
                .select_from(order_lines.join(orders, orders.c.order_no == order_lines.c.order_no)
                             .outerjoin(products, products.c.id == order_lines.c.product_id))
                .where(order_lines.c.order_no == order_no.strip())
                .order_by(order_lines.c.line_no))
        return convert_rows(await self._fetch(stmt), _order_line, source=SOURCE, what="order line")

    # -- products ----------------------------------------------------------

    async def products_by_sku(self, skus: Sequence[str]) -> dict[str, Product]:
        keys = [sales_sku(k) for k in unique(canonical_sku(s) for s in skus)]
        rows = await self._fetch_chunked(
            keys, lambda chunk: select(products.c.id, products.c.title, products.c.sku, products.c.list_price,
                                       products.c.currency).where(products.c.sku.in_(chunk)).order_by(products.c.id))
        found: dict[str, Product] = {}
        for product in convert_rows(rows, _product, source=SOURCE, what="product"):
            if product.sku is not None:
                found.setdefault(product.sku, product)
        return found

    async def product_sales(self, sku: str) -> ProductSales:
        key = canonical_sku(sku)
        if key is None:
            return ProductSales(0, 0, None)
        stmt = (select(func.sum(order_lines.c.qty), func.count(orders.c.order_no.distinct()),
                       func.max(orders.c.ordered_at))
                .select_from(_sold_lines())
                .where(products.c.sku == sales_sku(key), orders.c.status.not_in(_NOT_SOLD)))
        rows = await self._fetch(stmt)
        units, count, last = rows[0] if rows else (None, 0, None)
        return ProductSales(int(units or 0), int(count or 0), utc(last))

    async def sold_items(self, where: SoldItemsFilter, after: SoldItemsKey | None, limit: int) -> list[SoldItem]:
        sku = func.upper(func.trim(products.c.sku))
        grouped = (select(sku.label("sku"), func.sum(order_lines.c.qty).label("units_sold"))
                   .select_from(_sold_lines())
                   .where(products.c.sku.is_not(None), func.trim(products.c.sku) != "",
                          orders.c.status.not_in(_NOT_SOLD))
                   .group_by(sku))
        if where.since is not None:
            grouped = grouped.where(orders.c.ordered_at >= where.since)
        if where.until is not None:
            grouped = grouped.where(orders.c.ordered_at < where.until)
        if where.location is not None:
            grouped = grouped.where(orders.c.ship_from == where.location.strip())
        # The keyset compares the aggregates by name, which MySQL allows only outside the grouping query.
        ranked = grouped.subquery("ranked")
        stmt = select(ranked.c.sku, ranked.c.units_sold).order_by(ranked.c.units_sold.desc(), ranked.c.sku.asc())

        async def fetch(after_key: SoldItemsKey | None, n: int) -> Rows:
            page = stmt.limit(n)
            if after_key is not None:
                after_units, after_sku = after_key
                page = page.where(or_(ranked.c.units_sold < after_units,
                                      and_(ranked.c.units_sold == after_units, ranked.c.sku > after_sku)))
            return await self._fetch(page)

        return await keyset_page(fetch, lambda row: (int(row[1]), str(row[0])), _sold_items, after, limit)

    # -- plumbing ----------------------------------------------------------

    async def _fetch(self, stmt: Executable) -> Rows:
        async def work(conn: AsyncConnection) -> Rows:
            return (await conn.execute(stmt)).all()

        return await self._run(work)

    async def _fetch_chunked(self, keys: Sequence[Any], build: Callable[[Sequence[Any]], Executable]) -> Rows:
        """One statement per chunk of keys, all on one connection."""
        if not keys:
            return []

        async def work(conn: AsyncConnection) -> Rows:
            rows: list[Any] = []
            for chunk in chunked(keys):
                rows.extend((await conn.execute(build(chunk))).all())
            return rows

        return await self._run(work)

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        engine = self._engine
        if engine is None:
            raise SourceUnavailable(SOURCE, "connector is not open")
        connected = False
        self._waiting += 1
        try:
            async with asyncio.timeout(self._connect_timeout + self._query_timeout + GUARD_MARGIN):
                async with engine.connect() as conn:
                    connected = True
                    self._waiting -= 1
                    self._in_use += 1
                    try:
                        return await work(conn)
                    finally:
                        self._in_use -= 1
        except ConnectorError:
            raise
        except TimeoutError as exc:
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        except sa_exc.TimeoutError as exc:
            raise PoolExhausted(SOURCE, "no connection free in time") from exc
        except sa_exc.DBAPIError as exc:
            raise _classify(exc, connected=connected) from exc
        except OSError as exc:
            raise SourceUnavailable(SOURCE, "connection failed") from exc
        except sa_exc.SQLAlchemyError as exc:
            raise QueryFailed(SOURCE, "query rejected") from exc
        finally:
            if not connected:
                self._waiting -= 1


def _classify(exc: sa_exc.DBAPIError, *, connected: bool) -> ConnectorError:
    if not connected or exc.connection_invalidated:
        return SourceUnavailable(SOURCE, "connection failed")
    args = getattr(exc.orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code in _TIMEOUT_CODES:
        return SourceTimeout(SOURCE, "query timed out")
    if code in _GONE_CODES:
        return SourceUnavailable(SOURCE, "connection lost")
    return QueryFailed(SOURCE, "query rejected")


def _sold_lines() -> Any:
    return (order_lines.join(orders, orders.c.order_no == order_lines.c.order_no)
            .join(products, products.c.id == order_lines.c.product_id))


def _customer(row: Any) -> Customer | None:
    id_, name, email, country, created_at, acct_no = row
    created = utc(created_at)
    if created is None:
        log.warning("%s: customer %s has an unreadable created_at; skipped", SOURCE, id_)
        return None
    return Customer(int(id_), name, text_or_none(email), text_or_none(country), created, text_or_none(acct_no))


def _totals_query(order_nos: Sequence[str]) -> Select[Any]:
    """The batched statement behind the totals of some orders: each order's rounded lines summed in SQL."""
    return (select(order_lines.c.order_no, func.sum(_SQL_LINE_TOTAL))
            .where(order_lines.c.order_no.in_(order_nos)).group_by(order_lines.c.order_no))


def _totals(rows: Rows) -> dict[str, Decimal | None]:
    """order_no -> its total, from the rows of ``_totals_query``."""
    return {row[0]: row[1] for row in rows}  # dict(rows) takes twice as long with SQLAlchemy rows


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
