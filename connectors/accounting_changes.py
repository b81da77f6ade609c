"""Notices Accounting changes by range checksums (``connectors/_diff.py``): the package keeps no log
we may read and no timestamps, and its schema is not ours to change.

Statements run through a private ``AccountingConnector`` of one worker: its own connection, its
login, query and socket timeouts, and its way of abandoning a call stuck on a dead network (the
thread retired, the connection never reused), so a blackholed server costs one bounded round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pyodbc

from connectors._diff import (
    MAX_CHANGES,
    Dialect,
    Differ,
    MysqlDialect,
    Pending,
    PollingFeed,
    RowDelta,
    TableSpec,
    num,
    odbc_dialect,
    text,
)
from connectors.accounting import SOCKET_MARGIN, SOURCE, AccountingConnector
from federation.changes import Batch, Change, Ref, account_refs, order_refs, sku_refs
from federation.errors import SourceTimeout

TABLES = (
    TableSpec("ARCUST", (text("CUSTNO", 10),),
              (text("CUSTNM", 60), num("CRLIMIT"), text("CURRCD", 3), text("STATUS", 1)), refs=("CUSTNO",)),
    TableSpec("ARINVH", (text("INVNO", 12),),
              (text("CUSTNO", 10), text("ORDREF", 20), num("INVDT"), num("DUEDT"), text("CURRCD", 3),
               num("AMTCENTS"), num("TAXCENTS"), text("STATUS", 1)), refs=("ORDREF", "CUSTNO")),
    # A payment touches its invoice's order and account: read with it, so a payment of an invoice
    # not held yet (posted in the same round) still names them.
    TableSpec("ARPAYM", (text("PAYNO", 12),),
              (text("INVNO", 12), num("PAYDT"), num("AMTCENTS"), text("METHOD", 2)),
              refs=("INVNO", "H.ORDREF", "H.CUSTNO"), join="LEFT JOIN ARINVH H ON H.INVNO = T.INVNO"),
    TableSpec("ICITEM", (text("ITEMNO", 20),), (num("STDCOST"), num("LASTUPD")), refs=("ITEMNO",)),
)


class AccountingPoll(PollingFeed):
    """The ``ChangeFeed`` of Accounting, by polling: one bucket query per table per quiet round."""

    source = SOURCE

    def __init__(self, odbc: str, *, timeout: float = 2.0, login_timeout: float = 2.0,
                 max_changes: int = MAX_CHANGES, fingerprint: Literal["portable", "native"] = "portable") -> None:
        super().__init__()
        self._connector = AccountingConnector(odbc, max_workers=1, login_timeout=login_timeout, query_timeout=timeout)
        self._round_limit = login_timeout + timeout + SOCKET_MARGIN
        self._max_changes = max_changes
        # "native": CRC32 where the engine is MariaDB/MySQL (about 7x less database CPU a row, measured),
        # the portable ODBC arithmetic elsewhere.
        self._fingerprint = fingerprint

    async def start(self) -> None:
        await self._connector.open()
        started = time.monotonic()
        # Each statement is bounded by the connector; a full load takes what the tables' size needs.
        dbms = await self._connector.call(lambda cur: str(cur.connection.getinfo(pyodbc.SQL_DBMS_NAME)))
        differ = Differ(TABLES, self._dialect(dbms), self._fetch, fetch_many=self._fetch_many,
                        max_changes=self._max_changes)
        await differ.load()
        self._differ = differ
        self.round_s = time.monotonic() - started

    async def poll(self) -> Batch:
        differ = self._started()
        started = time.monotonic()
        # Each statement is bounded by the connector, and the whole round as one: ``timeout`` is what all
        # of a round's statements may take, so a server answering each just in time costs one round too.
        try:
            async with asyncio.timeout(self._round_limit):
                pending = await differ.diff()
        except TimeoutError as exc:
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        self.rounds += 1
        self.round_s = time.monotonic() - started
        return Batch(tuple(self._changes(differ, pending.deltas)), pending.complete, pending)

    async def ack(self, batch: Batch) -> None:
        if isinstance(batch.position, Pending):
            self._started().apply(batch.position)

    async def close(self) -> None:
        await self._connector.close()

    # -- plumbing ------------------------------------------------------------

    def _dialect(self, dbms: str) -> Dialect:
        if self._fingerprint == "native" and any(n in dbms.lower() for n in ("mariadb", "mysql")):
            return MysqlDialect("?")
        return odbc_dialect(dbms)

    def _started(self) -> Differ:
        if self._differ is None:
            raise RuntimeError("accounting: the change feed was not started")
        return self._differ

    async def _fetch(self, sql: str, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        def work(cur: pyodbc.Cursor) -> list[Any]:
            cur.execute(sql, *values)
            return list(cur.fetchall())

        self.queries += 1
        return await self._connector.call(work)

    async def _fetch_many(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Sequence[Sequence[Any]]]:
        """The statements in turn on one trip to the worker thread: under load every trip back to the event
        loop waits behind the requests queued there, and a round of eight of them took twenty times longer."""
        def work(cur: pyodbc.Cursor) -> list[Sequence[Sequence[Any]]]:
            found: list[Sequence[Sequence[Any]]] = []
            for sql, values in statements:
                cur.execute(sql, *values)
                found.append(list(cur.fetchall()))
            return found

        self.queries += len(statements)
        return await self._connector.call(work)

    def _changes(self, differ: Differ, deltas: Sequence[RowDelta]) -> list[Change]:
        out = []
        for delta in deltas:
            refs: set[Ref] = set()
            for image in (delta.before, delta.after):
                if image is not None:
                    refs |= _refs(differ, delta.table, image)
            out.append(Change(delta.table, frozenset(refs)))
        return out


def _refs(differ: Differ, table: str, image: Mapping[str, Any]) -> set[Ref]:
    if table == "ARCUST":
        return account_refs([image["CUSTNO"]])
    if table == "ARINVH":
        return order_refs([o for o in [image["ORDREF"]] if o is not None]) | account_refs([image["CUSTNO"]])
    if table == "ARPAYM":
        order, account = image["H.ORDREF"], image["H.CUSTNO"]
        if order is None and account is None and image["INVNO"] is not None:
            # The invoice is gone now (or was never there): what was held of it, if anything.
            held = differ.held("ARINVH", image["INVNO"])
            if held is not None:
                order, account = held["ORDREF"], held["CUSTNO"]
        return order_refs([o for o in [order] if o is not None]) | account_refs([account])
    return sku_refs([image["ITEMNO"]])
