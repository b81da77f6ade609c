"""Warehouse connector: the PostgreSQL ``warehouse`` database read through a psycopg 3 async pool."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from connectors._batch import LIKE_ESCAPE, chunked, contains_pattern, unique
from connectors._paging import keyset_page
from connectors._postgres import Connection, abandonable
from connectors._values import ROW_ERRORS, convert_rows, skipped_row, utc
from federation.errors import ConnectorError, PoolExhausted, QueryFailed, SourceTimeout, SourceUnavailable
from federation.queries import ItemFilter
from federation.records import Item, ItemStock, Location, StockLevel, StockTotal
from federation.spelling import canonical_sku

T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]
Params = dict[str, Any]

RECONNECT_FACTOR = 2   # connect timeouts the pool's background reconnection may go on for
SOURCE = "warehouse"

_LOCATIONS = "SELECT code, name, city, country, timezone FROM locations ORDER BY code"
_ITEM = ("SELECT sku, name, description, unit, weight_grams, active, updated_at "
         "FROM items WHERE sku = %(sku)s")
_STOCK_LEVELS = ("SELECT sku, location_code, on_hand, reserved FROM stock "
                 "WHERE sku = %(sku)s ORDER BY location_code")
_STOCK_TOTALS = ("SELECT i.sku, COALESCE(SUM(s.on_hand), 0), COALESCE(SUM(s.reserved), 0) "
                 "FROM items i LEFT JOIN stock s ON s.sku = i.sku "
                 "WHERE i.sku = ANY(%(skus)s) GROUP BY i.sku")
_ITEM_NAMES = "SELECT sku, name FROM items WHERE sku = ANY(%(skus)s)"
_SHIPPED = ("SELECT reference, sku, -SUM(qty) FROM movements "
            "WHERE kind = 'shipment' AND reference = ANY(%(refs)s) GROUP BY reference, sku")


class WarehouseConnector:
    """Reads locations, items, stock and shipments; every statement bound, every call bounded in time."""

    name = SOURCE

    def __init__(self, dsn: str, *, pool_min: int = 1, pool_max: int = 10, query_timeout: float,
                 connect_timeout: float, max_waiting: int = 100) -> None:
        if not 0 <= pool_min <= pool_max or pool_max < 1:
            raise ValueError("warehouse: need 0 <= pool_min <= pool_max and pool_max >= 1")
        if max_waiting < 1:
            raise ValueError("warehouse: max_waiting must be at least 1")
        try:
            info = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.Error:
            raise ValueError("warehouse: the connection string is malformed") from None
        self._dsn = dsn
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._query_timeout = query_timeout
        self._connect_timeout = connect_timeout
        self._connect_kwargs = self._session_kwargs(info)
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._in_use = 0
        # The callers a call may queue behind, bounded here rather than by psycopg_pool's max_waiting:
        # the pool drops a waiter that timed out only when a connection comes for it, so while none
        # can be made its queue fills with callers long gone and refuses everyone, for good once it
        # has stopped trying to connect.
        self._callers = asyncio.Semaphore(pool_max + max_waiting)
        self._admitted = 0   # calls past that bound: holding a connection or waiting for one

    def _session_kwargs(self, info: dict[str, Any]) -> dict[str, Any]:
        options = [str(info["options"])] if info.get("options") else []
        options += [f"-c statement_timeout={max(1, round(self._query_timeout * 1000))}", "-c TimeZone=UTC"]
        return {
            "options": " ".join(options),
            # libpq takes whole seconds and treats anything below 2 as 2
            "connect_timeout": max(2, math.ceil(self._connect_timeout)),
            "application_name": info.get("application_name") or "bizfed",
            "autocommit": True,
        }

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Start the pool without waiting for it: an unreachable warehouse must not stop start-up."""
        if self._pool is not None:
            return
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._dsn, connection_class=Connection, kwargs=self._connect_kwargs,
            min_size=self._pool_min, max_size=self._pool_max,
            open=False, timeout=self._connect_timeout, max_waiting=0, name=SOURCE,
            # psycopg_pool retries a failed connect with doubling delays for up to this long, so after a
            # long outage its next try could come minutes late. Giving up early instead, it connects
            # again as soon as a call wants a connection: the pool heals with the first call after.
            reconnect_timeout=RECONNECT_FACTOR * self._connect_timeout)
        await pool.open(wait=False)
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(timeout=self._connect_timeout)

    async def ping(self) -> None:
        """``SELECT 1`` through the pool; cancelled, it ends at once whatever the server does (``abandonable``)."""
        async def work(conn: Conn) -> None:
            await _select_one(conn)

        await self._run(work)

    def pool_state(self) -> dict[str, int]:
        state = {"max": self._pool_max, "size": 0, "in_use": self._in_use, "idle": 0, "waiting": 0}
        if self._pool is not None:
            stats = self._pool.get_stats()
            # the pool's own count of waiting requests holds callers that timed out long ago
            state.update(size=stats.get("pool_size", 0), idle=stats.get("pool_available", 0),
                         waiting=self._admitted - self._in_use)
        return state

    # -- queries -----------------------------------------------------------

    async def locations(self) -> list[Location]:
        rows = await self._fetch(_LOCATIONS, {})
        return convert_rows(rows, _location, source=SOURCE, what="location")

    async def items(self, where: ItemFilter, after: str | None, limit: int) -> list[ItemStock]:
        async def fetch(after_sku: str | None, n: int) -> list[tuple[Any, ...]]:
            return await self._fetch(*_items_query(where, after_sku, n))

        return await keyset_page(fetch, lambda row: str(row[0]), _item_stocks, after, limit)

    async def item(self, sku: str) -> Item | None:
        key = canonical_sku(sku)
        if key is None:
            return None
        rows = await self._fetch(_ITEM, {"sku": key})
        found = convert_rows(rows, _item, source=SOURCE, what="item")
        return found[0] if found else None

    async def stock_levels(self, sku: str) -> list[StockLevel]:
        key = canonical_sku(sku)
        if key is None:
            return []
        rows = await self._fetch(_STOCK_LEVELS, {"sku": key})
        return convert_rows(rows, _stock_level, source=SOURCE, what="stock")

    async def stock_totals(self, skus: Sequence[str]) -> dict[str, StockTotal]:
        rows = await self._fetch_chunked(_STOCK_TOTALS, "skus", unique(canonical_sku(s) for s in skus))
        totals = convert_rows(rows, _stock_total, source=SOURCE, what="stock")
        return {t.sku: t for t in totals}

    async def item_names(self, skus: Sequence[str]) -> dict[str, str]:
        rows = await self._fetch_chunked(_ITEM_NAMES, "skus", unique(canonical_sku(s) for s in skus))
        return dict(convert_rows(rows, _sku_name, source=SOURCE, what="item"))

    async def shipped(self, order_nos: Sequence[str]) -> dict[tuple[str, str], int]:
        refs = unique(o.strip() or None for o in order_nos)
        rows = await self._fetch_chunked(_SHIPPED, "refs", refs)
        shipped: dict[tuple[str, str], int] = {}
        for key, qty in convert_rows(rows, _shipment, source=SOURCE, what="movement"):
            # two spellings of one SKU are one SKU
            shipped[key] = shipped.get(key, 0) + qty
        return shipped

    # -- plumbing ----------------------------------------------------------

    async def _fetch(self, query: str, params: Params) -> list[tuple[Any, ...]]:
        async def work(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

        return await self._run(work)

    async def _fetch_chunked(self, query: str, name: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """One statement per chunk of keys (``= ANY(%(name)s)``), all on one connection."""
        if not keys:
            return []

        async def work(conn: Conn) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = []
            for chunk in chunked(keys):
                cur = await conn.execute(query, {name: list(chunk)})
                rows.extend(await cur.fetchall())
            return rows

        return await self._run(work)

    async def _run(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise SourceUnavailable(SOURCE, "connector is not open")
        if self._callers.locked():
            raise PoolExhausted(SOURCE, "too many requests waiting for a connection")
        try:
            async with self._callers:
                self._admitted += 1
                try:
                    return await self._attempt(pool, work)
                finally:
                    self._admitted -= 1
        except ConnectorError:
            raise
        except _ConnectionLost as exc:
            # A server that dropped this connection (a restart, an idle timeout) has most likely
            # dropped the idle ones too: weed them out, so that the policy's retry, the one retry
            # layer, finds a live one.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._connect_timeout):
                    await pool.check()
            raise SourceUnavailable(SOURCE, "connection lost") from exc.__cause__
        except PoolTimeout as exc:
            # A full pool is local overload; one that cannot fill is the source being down.
            if self._in_use >= self._pool_max:
                raise PoolExhausted(SOURCE, "no connection free in time") from exc
            raise SourceUnavailable(SOURCE, "cannot connect") from exc
        except pg_errors.QueryCanceled as exc:
            raise SourceTimeout(SOURCE, "query timed out") from exc
        except TimeoutError as exc:
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
            raise SourceUnavailable(SOURCE, "connection failed") from exc
        except psycopg.Error as exc:
            raise QueryFailed(SOURCE, "query rejected") from exc

    async def _attempt(self, pool: AsyncConnectionPool[Conn], work: Callable[[Conn], Awaitable[T]]) -> T:
        # No timer here: the policy bounds every attempt, and a call it gives up on is cancelled.
        async with pool.connection() as conn:
            self._in_use += 1
            try:
                return await abandonable(conn, work(conn))
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if conn.broken and not isinstance(exc, pg_errors.QueryCanceled):
                    raise _ConnectionLost from exc
                raise
            finally:
                self._in_use -= 1


class _ConnectionLost(Exception):
    """The connection broke under a statement (the pool replaces it)."""


async def _select_one(conn: Conn) -> None:
    # Never prepared: one short message, the same every time, and no server-side statement to keep.
    cur = await conn.execute("SELECT 1", prepare=False)
    await cur.fetchall()


def _items_query(where: ItemFilter, after: str | None, limit: int) -> tuple[str, Params]:
    params: Params = {"limit": limit}
    if where.location is not None:
        # an inner join: items without a stock row at that location are left out
        join = "JOIN stock s ON s.sku = i.sku AND s.location_code = %(location)s"
        params["location"] = where.location.strip()
    else:
        join = "LEFT JOIN stock s ON s.sku = i.sku"
    conds: list[str] = []
    if after is not None:
        # repeated on stock so the merge join starts both index scans at the keyset position
        join += " AND s.sku > %(after)s"
        conds.append("i.sku > %(after)s")
        params["after"] = after
    if where.q:
        # lower(name) is the expression the items index is built on
        conds.append(f"(lower(i.name) LIKE lower(%(q)s) ESCAPE '{LIKE_ESCAPE}' "
                     f"OR lower(i.sku) LIKE lower(%(q)s) ESCAPE '{LIKE_ESCAPE}')")
        params["q"] = contains_pattern(where.q)
    if where.active is not None:
        conds.append("i.active = %(active)s")
        params["active"] = where.active
    having = ""
    if where.in_stock is not None:
        available = "COALESCE(SUM(s.on_hand), 0) - COALESCE(SUM(s.reserved), 0)"
        having = f" HAVING {available} {'>' if where.in_stock else '<='} 0"
    query = ("SELECT i.sku, i.name, i.unit, i.active, COALESCE(SUM(s.on_hand), 0), COALESCE(SUM(s.reserved), 0) "
             f"FROM items i {join}"
             + (f" WHERE {' AND '.join(conds)}" if conds else "")
             + f" GROUP BY i.sku{having} ORDER BY i.sku LIMIT %(limit)s")
    return query, params


def _sku(raw: str) -> str:
    sku = canonical_sku(raw)
    if sku is None:
        raise ValueError("blank sku")
    return sku


def _location(row: tuple[Any, ...]) -> Location:
    code, name, city, country, timezone = row
    return Location(str.strip(code), name, city, str.strip(country), str.strip(timezone))


def _item_stocks(rows: Sequence[tuple[Any, ...]]) -> list[ItemStock]:
    """Rows of ``_items_query`` as records, the unreadable ones skipped (a bulk read's loop: ``_sku`` inline).

    The sums are COALESCEd bigints, so psycopg hands over ints: checking the type costs less than
    converting, which was a fifth of this loop.
    """
    out: list[ItemStock] = []
    append = out.append
    for row in rows:
        try:
            sku, name, unit, active, on_hand, reserved = row
            key = str.strip(sku).upper() if sku is not None else None
            if not key:
                raise ValueError("blank sku")
            if type(on_hand) is not int or type(reserved) is not int:
                raise ValueError("stock is not a whole number")
            append(ItemStock(key, name, str.strip(unit), bool(active), on_hand, reserved))
        except ROW_ERRORS as exc:
            skipped_row(SOURCE, "item", exc)
    return out


def _item(row: tuple[Any, ...]) -> Item:
    sku, name, description, unit, weight_grams, active, updated_at = row
    when = utc(updated_at)
    if when is None:
        raise ValueError("unreadable updated_at")
    return Item(_sku(sku), name, description, str.strip(unit), weight_grams, bool(active), when)


def _stock_level(row: tuple[Any, ...]) -> StockLevel:
    sku, location, on_hand, reserved = row
    return StockLevel(_sku(sku), str.strip(location), int(on_hand), int(reserved))


def _stock_total(row: tuple[Any, ...]) -> StockTotal:
    sku, on_hand, reserved = row
    return StockTotal(_sku(sku), int(on_hand), int(reserved))


def _sku_name(row: tuple[Any, ...]) -> tuple[str, str]:
    sku, name = row
    return _sku(sku), name


def _shipment(row: tuple[Any, ...]) -> tuple[tuple[str, str], int]:
    reference, sku, qty = row
    return (str.strip(reference), _sku(sku)), int(qty)
