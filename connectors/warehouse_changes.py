"""Notices Warehouse changes by watermark polling, without touching the business's schema.

New ``movements`` rows (by id) and ``stock``/``items`` rows whose ``updated_at`` moved are reported as
the SKUs and order numbers they affect. What a watermark cannot see: a deleted ``items`` row (the
business never deletes items) and a deleted ``stock`` row, noticed only as the table's row count
falling (the batch is then incomplete); a delete and an insert in the same round cancel out. A row
written with an ``updated_at`` older than the overlap is missed too.

``WatchConnection`` is the watchers' own connection (this feed's and ``warehouse_log``'s): each round
on it is bounded in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from connectors._postgres import Connection, abandonable
from federation.changes import Batch, Change, Mode, Ref, order_refs, sku_refs
from federation.errors import QueryFailed, SourceTimeout, SourceUnavailable

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]
SOURCE = "warehouse"

# Rows can commit after rows with higher ids or later timestamps; re-reading a
# short overlap catches them, at the price of reading some rows twice (``_seen`` keeps them unreported).
ID_OVERLAP = 1000
TIME_OVERLAP = timedelta(seconds=5)
MAX_ROWS = 50_000
ROUND_MARGIN = 1.0   # seconds a round may take beyond the statement timeout before it is given up on


class WatchConnection:
    """One connection of a watcher's own, so watching never competes with request traffic.

    ``round`` runs some statements on it, bounded in time: a server that stopped answering (the
    statement timeout never reaches it) costs one round and a new connection, never the watcher.
    """

    def __init__(self, dsn: str, *, timeout: float, application_name: str) -> None:
        self._dsn = dsn
        self.timeout = timeout
        self._application_name = application_name
        self._conn: Conn | None = None
        self.queries = 0
        self.backend_pids: list[int] = []   # of the connections made so far, newest last

    async def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = await Connection.connect(
                    self._dsn, autocommit=True, connect_timeout=max(1, int(self.timeout)),
                    application_name=self._application_name,
                    options=f"-c statement_timeout={int(self.timeout * 1000)}")
            except psycopg.Error as exc:
                raise SourceUnavailable(SOURCE, "unreachable") from exc
            self.backend_pids = [*self.backend_pids[-9:], self._conn.info.backend_pid]
        return self._conn

    async def execute(self, conn: Conn, query: str | psycopg.sql.Composed,
                      params: Sequence[Any] | None = None) -> psycopg.AsyncCursor[tuple[Any, ...]]:
        """``query`` on ``conn``, counted in ``queries``."""
        self.queries += 1
        return await conn.execute(query, params)

    async def round(self, work: Callable[[Conn], Awaitable[T]], *, bound: float | None = None) -> T:
        """``work`` on the connection, given up on after ``bound`` (default: the statement timeout) and a margin."""
        conn = await self._connection()
        try:
            async with asyncio.timeout((bound or self.timeout) + ROUND_MARGIN):
                return await abandonable(conn, work(conn))
        except TimeoutError as exc:
            await self.close()
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        except pg_errors.QueryCanceled as exc:
            raise SourceTimeout(SOURCE, "change query timed out") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            await self.close()
            raise SourceUnavailable(SOURCE, "connection lost") from exc
        except psycopg.Error as exc:
            raise QueryFailed(SOURCE, "change query rejected") from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


@dataclass(frozen=True, slots=True)
class Watermark:
    """How far the poll has read: the newest movement id and the newest ``updated_at`` of stock and items."""

    movement_id: int
    stock_at: datetime
    items_at: datetime


@dataclass(frozen=True, slots=True)
class _Mark:
    """Where polling stands: the watermark, the overlap's rows already reported, the stock row count."""

    watermark: Watermark
    seen: frozenset[tuple[object, ...]]
    stock_rows: int | None


# One statement, one snapshot: new movements by id, stock and items by updated_at, and stock's row count.
_SINCE = """
(SELECT 'm', id, sku, reference, NULL::text, NULL::timestamptz
   FROM movements WHERE id > %s ORDER BY id LIMIT %s)
UNION ALL
(SELECT 's', NULL::bigint, sku, NULL, location_code, updated_at FROM stock WHERE updated_at > %s LIMIT %s)
UNION ALL
(SELECT 'i', NULL::bigint, sku, NULL, NULL, updated_at FROM items WHERE updated_at > %s LIMIT %s)
"""
_STOCK_COUNT = "UNION ALL SELECT 'c', count(*), NULL, NULL, NULL, NULL FROM stock"
_CURRENT = ("SELECT (SELECT coalesce(max(id), 0) FROM movements), "
            "(SELECT coalesce(max(updated_at), 'epoch') FROM stock), "
            "(SELECT coalesce(max(updated_at), 'epoch') FROM items)")


@dataclass(slots=True)
class _Read:
    """One round's rows, sorted out."""

    changes: list[Change]
    seen: set[tuple[object, ...]]
    watermark: Watermark
    stock_rows: int | None
    overflow: bool   # some table gave MAX_ROWS rows: more may be behind them


class WarehousePoll:
    """The Warehouse's changes by watermark polling (``ChangeFeed``, mode "poll").

    Each round is one statement (two at ``start``). ``count_stock`` adds a count of ``stock`` to it,
    to notice deleted stock rows.
    """

    source = SOURCE

    def __init__(self, dsn: str, *, timeout: float = 2.0, count_stock: bool = True) -> None:
        self._watch = WatchConnection(dsn, timeout=timeout, application_name="bizfed-warehouse-poll")
        self._count_stock = count_stock
        self._acked: _Mark | None = None
        self._rows_held = 0

    @property
    def mode(self) -> Mode:
        return "poll"

    @property
    def queries(self) -> int:
        return self._watch.queries

    def details(self) -> dict[str, object]:
        mark = self._acked
        return {
            "tables": ["movements", "stock", "items"],
            "movement_id": mark.watermark.movement_id if mark else None,
            "stock_at": mark.watermark.stock_at.isoformat() if mark else None,
            "items_at": mark.watermark.items_at.isoformat() if mark else None,
            "stock_rows": mark.stock_rows if mark else None,
            "rows_held": self._rows_held,
        }

    async def start(self) -> None:
        watermark = await self._current()
        read = await self._read(watermark, frozenset())
        # The overlap window's rows are remembered now, so the first poll reports only what comes after.
        self._acked = _Mark(read.watermark, frozenset(read.seen), read.stock_rows)
        self._rows_held = len(read.seen)

    async def poll(self) -> Batch:
        mark = self._acked
        if mark is None:
            raise RuntimeError("WarehousePoll.poll before start")
        read = await self._read(mark.watermark, mark.seen)
        self._rows_held = len(read.seen)
        deleted = (mark.stock_rows is not None and read.stock_rows is not None
                   and read.stock_rows < mark.stock_rows)
        if read.overflow:
            # Too much to hold: carry on from where the warehouse is now, and say nothing is known.
            watermark = await self._current()
            after = await self._read(watermark, frozenset())
            return Batch((), complete=False, position=_Mark(after.watermark, frozenset(after.seen), after.stock_rows))
        position = _Mark(read.watermark, frozenset(read.seen), read.stock_rows)
        return Batch(tuple(read.changes), complete=not deleted, position=position)

    async def ack(self, batch: Batch) -> None:
        if isinstance(batch.position, _Mark):
            self._acked = batch.position

    async def close(self) -> None:
        await self._watch.close()

    async def _current(self) -> Watermark:
        async def work(conn: Conn) -> tuple[Any, ...] | None:
            # 'epoch' for an empty table: psycopg cannot load '-infinity' as a datetime
            return await (await self._watch.execute(conn, _CURRENT)).fetchone()

        row = await self._watch.round(work)
        assert row is not None
        return Watermark(int(row[0]), row[1], row[2])

    async def _read(self, mark: Watermark, seen: frozenset[tuple[object, ...]]) -> _Read:
        return await read_since(self._watch, mark, seen, count_stock=self._count_stock)


async def read_since(watch: WatchConnection, mark: Watermark, seen: frozenset[tuple[object, ...]], *,
                     count_stock: bool) -> _Read:
    """What changed after ``mark`` (with the overlap), each row not in ``seen`` reported once."""
    params = (max(0, mark.movement_id - ID_OVERLAP), MAX_ROWS, mark.stock_at - TIME_OVERLAP, MAX_ROWS,
              mark.items_at - TIME_OVERLAP, MAX_ROWS)
    query = _SINCE + _STOCK_COUNT if count_stock else _SINCE

    async def work(conn: Conn) -> list[tuple[Any, ...]]:
        return await (await watch.execute(conn, query, params)).fetchall()

    rows = await watch.round(work)
    changes: list[Change] = []
    now_seen: set[tuple[object, ...]] = set()
    counts = {"m": 0, "s": 0, "i": 0}
    stock_rows: int | None = None
    movement_id, stock_at, items_at = mark.movement_id, mark.stock_at, mark.items_at
    for kind, ident, sku, reference, location, updated in rows:
        if kind == "c":
            stock_rows = int(ident)
            continue
        counts[kind] += 1
        key: tuple[object, ...]
        if kind == "m":
            key, table = ("m", ident), "movements"
            refs: set[Ref] = sku_refs([sku]) | order_refs([reference] if reference is not None else [])
            movement_id = max(movement_id, int(ident))
        elif kind == "s":
            key, table, refs = ("s", sku, location, updated), "stock", sku_refs([sku])
            stock_at = max(stock_at, updated)
        else:
            key, table, refs = ("i", sku, updated), "items", sku_refs([sku])
            items_at = max(items_at, updated)
        now_seen.add(key)
        if key not in seen:
            changes.append(Change(table, frozenset(refs)))
    return _Read(changes, now_seen, Watermark(movement_id, stock_at, items_at), stock_rows,
                 overflow=max(counts.values()) >= MAX_ROWS)
