"""Notices Sales changes by range checksums (``connectors/_diff.py``), where its binlog cannot be read.

The feed has an engine of its own (one connection, held by ``HeldConnections``), so watching never
competes with request traffic. The fingerprint is the engine's: CRC32 on MariaDB/MySQL, character
arithmetic on SQLite. Row changes become ``Change`` values through ``SalesRefs``, which looks up what a
row leaves out (the SKUs on an order, the orders of a customer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connectors._diff import (
    MAX_CHANGES,
    Column,
    Dialect,
    Differ,
    MysqlDialect,
    Pending,
    PollingFeed,
    TableSpec,
    num,
    sqlite_dialect,
    text,
)
from connectors._held import HeldConnections, close_held
from connectors._sales_errors import SOURCE, driver_errors, keeps_connection
from connectors.sales_refs import RowChange, SalesRefs
from federation.changes import Batch
from federation.errors import SourceTimeout, SourceUnavailable

ROUND_MARGIN = 1.0   # seconds a round may take beyond its statement timeout before it is given up on
MAX_IDLE = 300.0



def _time(name: str) -> Column:
    return Column(name, "time")


def _decimal(name: str) -> Column:
    return Column(name, "decimal")


TABLES = (
    TableSpec("customers", (num("id"),),
              (text("name", 200), text("email", 254), text("country", 2), _time("created_at"), text("acct_no", 10)),
              refs=("id", "acct_no")),
    TableSpec("products", (num("id"),),
              (text("title", 200), text("sku", 20), _decimal("list_price"), text("currency", 3)),
              refs=("id", "sku")),
    TableSpec("orders", (text("order_no", 20),),
              (num("customer_id"), text("status", 9), _time("ordered_at"), text("ship_from", 8), text("currency", 3)),
              refs=("order_no", "customer_id")),
    TableSpec("order_lines", (text("order_no", 20), num("line_no")),
              (num("product_id"), num("qty"), _decimal("unit_price"), _decimal("discount_pct")),
              refs=("order_no", "product_id")),
)


class SalesPoll(PollingFeed):
    """The ``ChangeFeed`` of Sales, by polling: one bucket query per table per quiet round."""

    source = SOURCE

    def __init__(self, url: str, *, timeout: float = 2.0, connect_timeout: float = 2.0,
                 max_changes: int = MAX_CHANGES) -> None:
        try:
            self._url = make_url(url)
        except sa_exc.ArgumentError:
            raise ValueError("sales: the database URL is malformed") from None
        self._backend = self._url.get_backend_name()
        if self._backend not in ("mysql", "mariadb", "sqlite"):
            raise ValueError(f"sales: no polling fingerprint for {self._backend} databases")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_changes = max_changes
        super().__init__()
        self._engine: AsyncEngine | None = None
        self._held: HeldConnections | None = None
        self._refs_mark = "%s"

    async def start(self) -> None:
        self._open()
        started = time.monotonic()
        differ = Differ(TABLES, self._dialect(), self._fetch, max_changes=self._max_changes)
        await differ.load()
        self._differ = differ
        self.round_s = time.monotonic() - started

    async def poll(self) -> Batch:
        differ = self._differ
        if differ is None:
            raise RuntimeError("sales: the change feed was not started")
        started = time.monotonic()
        try:
            # A server that stops answering costs this round and the connection (dropped by the lease).
            async with asyncio.timeout(self._timeout + ROUND_MARGIN):
                pending = await differ.diff()
                rows = [RowChange(d.table, d.before, d.after) for d in pending.deltas]
                changes = await SalesRefs(self._fetch_refs).refs(rows) if rows else []
        except TimeoutError as exc:
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        self.rounds += 1
        self.round_s = time.monotonic() - started
        return Batch(tuple(changes), pending.complete, pending)

    async def ack(self, batch: Batch) -> None:
        if isinstance(batch.position, Pending) and self._differ is not None:
            self._differ.apply(batch.position)

    async def close(self) -> None:
        engine, held = self._engine, self._held
        self._engine = self._held = None
        await close_held(held, engine)

    # -- plumbing ------------------------------------------------------------

    def _open(self) -> None:
        if self._engine is not None:
            return
        options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
        if self._backend != "sqlite":
            options |= {"pool_size": 1, "max_overflow": 0, "pool_timeout": self._connect_timeout,
                        "connect_args": {"connect_timeout": self._connect_timeout}}
        engine = create_async_engine(self._url, **options)
        if self._backend != "sqlite":
            event.listen(engine.sync_engine, "connect", self._on_connect)
        self._engine = engine
        self._held = HeldConnections(SOURCE, engine, 1, max_idle=MAX_IDLE, keeps=keeps_connection)

    def _dialect(self) -> Dialect:
        assert self._engine is not None
        paramstyle = self._engine.dialect.paramstyle
        mark = "?" if paramstyle == "qmark" else "%s"
        self._refs_mark = mark
        return sqlite_dialect(mark) if self._backend == "sqlite" else MysqlDialect(mark)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # MariaDB ends a statement past the round's time itself (MySQL keeps only the variable).
            cursor.execute(f"SET @bizfed_watcher = 1 /*M!, SESSION max_statement_time = {self._timeout:.3f} */")
        finally:
            cursor.close()

    async def _fetch_refs(self, sql: str, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        # SalesRefs writes %s marks; a qmark driver (SQLite) wants ?
        return await self._fetch(sql if self._refs_mark == "%s" else sql.replace("%s", "?"), values)

    async def _fetch(self, sql: str, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        held = self._held
        if held is None:
            raise SourceUnavailable(SOURCE, "change feed is not open")
        self.queries += 1
        # Each statement bounded (asyncmy has no read timeout): a full load too costs a bounded wait.
        with driver_errors():
            async with (asyncio.timeout(self._timeout + ROUND_MARGIN), held.lease(self._connect_timeout) as conn,
                        conn.cursor() as cur):
                await cur.execute(sql, tuple(values) if values else None)
                rows: Sequence[Sequence[Any]] = await cur.fetchall()
                return rows
