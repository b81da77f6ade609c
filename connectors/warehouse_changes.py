"""Notices Warehouse changes by watermark polling, without touching the business's schema.

New ``movements`` rows (by id) and ``stock``/``items`` rows whose ``updated_at``
moved are reported as the SKUs and order numbers they affect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import psycopg

from connectors._postgres import Connection, abandonable
from federation.errors import SourceTimeout, SourceUnavailable
from federation.watcher import Changes, Watermark

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]

# Rows can commit after rows with higher ids or later timestamps; re-reading a
# short overlap catches them, at the price of invalidating some keys twice.
ID_OVERLAP = 1000
TIME_OVERLAP = timedelta(seconds=5)
MAX_ROWS = 50_000
ROUND_MARGIN = 1.0   # seconds a round may take beyond the statement timeout before it is given up on


class WarehouseChanges:
    """One polling connection of its own, so watching never competes with request traffic."""

    def __init__(self, dsn: str, *, timeout: float = 2.0) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._conn: Conn | None = None
        self._seen: set[tuple[str, object]] = set()

    async def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = await Connection.connect(
                    self._dsn, autocommit=True, connect_timeout=max(1, int(self._timeout)),
                    options=f"-c statement_timeout={int(self._timeout * 1000)}")
            except psycopg.Error as exc:
                raise SourceUnavailable("warehouse", "unreachable") from exc
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _round(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """``work`` on the watcher's connection, bounded in time: a server that stopped answering (the
        statement timeout never reaches it) costs one round, not the watcher, and a new connection."""
        conn = await self._connection()
        try:
            async with asyncio.timeout(self._timeout + ROUND_MARGIN):
                return await abandonable(conn, work(conn))
        except TimeoutError as exc:
            await self.close()
            raise SourceTimeout("warehouse", "no answer in time") from exc
        except psycopg.Error as exc:
            await self.close()
            raise SourceUnavailable("warehouse", "unreachable") from exc

    async def current(self) -> Watermark:
        """Where the warehouse is now: changes are reported from here on."""
        async def work(conn: Conn) -> tuple[Any, ...] | None:
            # 'epoch' for an empty table: psycopg cannot load '-infinity' as a datetime
            cur = await conn.execute(
                "SELECT (SELECT coalesce(max(id), 0) FROM movements), "
                "(SELECT coalesce(max(updated_at), 'epoch') FROM stock), "
                "(SELECT coalesce(max(updated_at), 'epoch') FROM items)")
            return await cur.fetchone()

        row = await self._round(work)
        assert row is not None
        mark = Watermark(int(row[0]), row[1], row[2])
        # Remember the overlap window's rows now, so the first poll reports only what comes after.
        await self.since(mark)
        return mark

    async def since(self, mark: Watermark) -> Changes:
        """What changed after ``mark`` (with a small overlap), and the new watermark."""
        async def work(conn: Conn) -> tuple[list[Any], list[Any], list[Any]]:
            moves = await (await conn.execute(
                "SELECT id, sku, reference FROM movements WHERE id > %s ORDER BY id LIMIT %s",
                (max(0, mark.movement_id - ID_OVERLAP), MAX_ROWS))).fetchall()
            stock = await (await conn.execute(
                "SELECT sku, updated_at FROM stock WHERE updated_at > %s LIMIT %s",
                (mark.stock_at - TIME_OVERLAP, MAX_ROWS))).fetchall()
            items = await (await conn.execute(
                "SELECT sku, updated_at FROM items WHERE updated_at > %s LIMIT %s",
                (mark.items_at - TIME_OVERLAP, MAX_ROWS))).fetchall()
            return moves, stock, items

        moves, stock, items = await self._round(work)
        skus: set[str] = set()
        orders: set[str] = set()
        seen: set[tuple[str, object]] = set()
        for move_id, sku, reference in moves:
            seen.add(("m", move_id))
            if ("m", move_id) not in self._seen:
                skus.add(str(sku).strip().upper())
                if reference:
                    orders.add(str(reference).strip())
        for table, rows in (("s", stock), ("i", items)):
            for sku, updated in rows:
                seen.add((table + str(sku), updated))
                if (table + str(sku), updated) not in self._seen:
                    skus.add(str(sku).strip().upper())
        self._seen = seen
        new_mark = Watermark(
            max([mark.movement_id, *(m[0] for m in moves)]),
            max([mark.stock_at, *(u for _, u in stock)]),
            max([mark.items_at, *(u for _, u in items)]),
        )
        return Changes(new_mark, frozenset(skus), frozenset(orders))
