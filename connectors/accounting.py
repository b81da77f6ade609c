"""Accounting connector: the receivables package read with plain ODBC SQL through pyodbc.

pyodbc blocks, so every call runs on the connector's own thread pool, one
reused connection per running thread (pyodbc's threadsafety is 1).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import pyodbc

from connectors._batch import chunked, unique
from connectors._deadline import GUARD_MARGIN
from connectors._paging import keyset_page
from connectors._values import ROW_ERRORS, cents, convert_rows, log, skipped_row, text_or_none, yyyymmdd
from federation.errors import ConnectorError, PoolExhausted, QueryFailed, SourceTimeout, SourceUnavailable
from federation.model import CENT
from federation.queries import InvoiceFilter
from federation.records import Account, AccountStatus, Invoice, InvoiceStatus, Money
from federation.spelling import canonical_sku, padded

T = TypeVar("T")
Row = Sequence[Any]
Work = Callable[[pyodbc.Cursor], T]

SOURCE = "accounting"

CUSTNO_WIDTH, INVNO_WIDTH, ORDREF_WIDTH, ITEMNO_WIDTH = 10, 12, 20, 20
COST_CURRENCY = "EUR"

_INVOICE_STATUS: dict[str, InvoiceStatus] = {"O": "open", "P": "paid", "V": "void"}
_INVOICE_CODE: dict[InvoiceStatus, str] = {v: k for k, v in _INVOICE_STATUS.items()}
_ACCOUNT_STATUS: dict[str, AccountStatus] = {"A": "active", "H": "on_hold", "X": "closed"}

# SQLSTATEs and native error numbers (MariaDB's ODBC driver puts "(NNNN)" in the message).
_TIMEOUT_STATES = frozenset({"HYT00", "HY008", "HY018"})
_TIMEOUT_NATIVE = frozenset({1317, 1969, 3024, 1205})
_GONE_NATIVE = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031, 5013, 5014})
_NATIVE_RE = re.compile(r"\((\d{4})\)")

# Paid per invoice, as a correlated subquery: it uses ARPAYM (INVNO) row by row
# and is accepted by every engine (a subquery inside SUM() is not).
_PAID = "COALESCE((SELECT SUM(P.AMTCENTS) FROM ARPAYM P WHERE P.INVNO = H.INVNO), 0)"
_OVERDUE = f"(H.STATUS = 'O' AND H.DUEDT > 0 AND H.DUEDT < ? AND H.AMTCENTS - {_PAID} > 0)"
_INVOICE_SELECT = ("SELECT H.INVNO, H.CUSTNO, H.ORDREF, H.INVDT, H.DUEDT, H.CURRCD, H.AMTCENTS, H.TAXCENTS, "
                   f"H.STATUS, {_PAID} FROM ARINVH H")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _accounts_sql(n: int) -> str:
    return ("SELECT C.CUSTNO, C.CUSTNM, C.CRLIMIT, C.CURRCD, C.STATUS, B.OPENBAL, B.OVERBAL, B.OPENCNT "
            "FROM ARCUST C LEFT JOIN ("
            "SELECT I.CUSTNO, SUM(I.BAL) AS OPENBAL, "
            "SUM(CASE WHEN I.BAL > 0 AND I.DUEDT > 0 AND I.DUEDT < ? THEN I.BAL ELSE 0 END) AS OVERBAL, "
            "COUNT(*) AS OPENCNT FROM ("
            f"SELECT H.CUSTNO, H.DUEDT, H.AMTCENTS - {_PAID} AS BAL FROM ARINVH H "
            f"WHERE H.STATUS = 'O' AND H.CUSTNO IN ({_marks(n)})"
            ") I GROUP BY I.CUSTNO"
            f") B ON B.CUSTNO = C.CUSTNO WHERE C.CUSTNO IN ({_marks(n)})")


def _invoices_query(where: InvoiceFilter, day: int, after: str | None, limit: int) -> tuple[str, list[Any]]:
    conds: list[str] = []
    params: list[Any] = []
    if after is not None:
        conds.append("H.INVNO > ?")
        params.append(padded(after.strip(), INVNO_WIDTH))
    if where.acct_no is not None:
        conds.append("H.CUSTNO = ?")
        params.append(padded(where.acct_no.strip(), CUSTNO_WIDTH))
    if where.status is not None:
        conds.append("H.STATUS = ?")
        params.append(_INVOICE_CODE[where.status])
    if where.overdue is not None:
        conds.append(_OVERDUE if where.overdue else f"NOT {_OVERDUE}")
        params.append(day)
    # limit is an int; the row-limiting clause does not take a parameter on every engine
    sql = (_INVOICE_SELECT + (f" WHERE {' AND '.join(conds)}" if conds else "")
           + f" ORDER BY H.INVNO OFFSET 0 ROWS FETCH NEXT {int(limit)} ROWS ONLY")
    return sql, params


def today_int(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


class _Running:
    """The statement a worker thread is running, so a late caller can cancel it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cursor: pyodbc.Cursor | None = None
        self.cancelled = False

    def cancel(self) -> None:
        # Under the lock: the worker cannot close the cursor while SQLCancel uses it.
        with self.lock:
            self.cancelled = True
            if self.cursor is not None:
                try:
                    self.cursor.cancel()
                except pyodbc.Error:
                    log.warning("%s: could not cancel a running statement", SOURCE)


class _Session:
    """A connection with the one cursor reused on it, so a repeated statement stays prepared."""

    def __init__(self, conn: pyodbc.Connection) -> None:
        self.conn = conn
        self.cursor = conn.cursor()

    def close(self) -> None:
        with contextlib.suppress(pyodbc.Error):
            self.cursor.close()
        _close_quietly(self.conn)


class AccountingConnector:
    """Reads accounts, invoices, payments and item costs; aggregates are computed by the database."""

    name = SOURCE

    def __init__(self, odbc: str, *, max_workers: int = 4, login_timeout: float, query_timeout: float) -> None:
        if max_workers < 1:
            raise ValueError("accounting: max_workers must be at least 1")
        self._odbc = odbc
        self._max_workers = max_workers
        self._login_timeout = login_timeout
        self._query_timeout = query_timeout
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._canceller: concurrent.futures.ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._idle: list[_Session] = []
        self._connections = 0
        self._busy = 0
        self._waiting = 0

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Start the worker threads; connections are made on first use, so a down source does not stop start-up."""
        if self._executor is not None:
            return
        # This connector keeps its own connections; the driver manager's pool would hide them
        # from pool_state and hand out connections the server may have dropped.
        pyodbc.pooling = False
        self._executor = concurrent.futures.ThreadPoolExecutor(self._max_workers, thread_name_prefix="bizfed-acct")
        self._canceller = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bizfed-acct-cancel")
        self._slots = asyncio.Semaphore(self._max_workers)

    async def close(self) -> None:
        executor, canceller = self._executor, self._canceller
        self._executor = self._canceller = self._slots = None
        if executor is None:
            return
        # Threads may be inside a blocking driver call: wait for them off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
        if canceller is not None:
            canceller.shutdown(wait=False)
        with self._lock:
            idle, self._idle = self._idle, []
            self._connections -= len(idle)
        for session in idle:
            session.close()

    async def ping(self) -> None:
        def work(cur: pyodbc.Cursor) -> None:
            cur.execute("SELECT 1")
            cur.fetchall()

        await self._call(work)

    def pool_state(self) -> dict[str, int]:
        with self._lock:
            return {"max": self._max_workers, "size": self._connections, "in_use": self._busy,
                    "idle": len(self._idle), "waiting": self._waiting}

    # -- queries -----------------------------------------------------------

    async def accounts(self, acct_nos: Sequence[str], today: date) -> dict[str, Account]:
        keys = [padded(k, CUSTNO_WIDTH) for k in unique(text_or_none(a) for a in acct_nos) if len(k) <= CUSTNO_WIDTH]
        day = today_int(today)

        def statement(chunk: Sequence[str]) -> tuple[str, list[Any]]:
            return _accounts_sql(len(chunk)), [day, *chunk, *chunk]

        rows = await self._fetch_chunked(keys, statement)
        return {a.acct_no: a for a in convert_rows(rows, _account, source=SOURCE, what="account")}

    async def invoices(self, where: InvoiceFilter, after: str | None, limit: int) -> list[Invoice]:
        day = today_int(where.today or datetime.now(UTC).date())

        async def fetch(after_invno: str | None, n: int) -> list[Row]:
            sql, params = _invoices_query(where, day, after_invno, n)

            def work(cur: pyodbc.Cursor) -> list[Row]:
                cur.execute(sql, *params)
                return list(cur.fetchmany(n))

            return await self._call(work)

        return await keyset_page(fetch, lambda row: str(row[0]), _InvoiceReader(day).read, after, limit)

    async def invoices_for_orders(self, order_nos: Sequence[str], today: date) -> dict[str, list[Invoice]]:
        wanted = [o for o in unique(text_or_none(o) for o in order_nos) if len(o) <= ORDREF_WIDTH]
        keys = [padded(o, ORDREF_WIDTH) for o in wanted]
        day = today_int(today)

        rows = await self._fetch_chunked(keys, lambda chunk: (
            f"{_INVOICE_SELECT} WHERE H.ORDREF IN ({_marks(len(chunk))}) ORDER BY H.INVNO", list(chunk)))
        found: dict[str, list[Invoice]] = {o: [] for o in wanted}
        for invoice in _InvoiceReader(day).read(rows):
            if invoice.order_no is not None:
                found.setdefault(invoice.order_no, []).append(invoice)
        return found

    async def std_costs(self, skus: Sequence[str]) -> dict[str, Money]:
        keys = [padded(s, ITEMNO_WIDTH) for s in unique(canonical_sku(s) for s in skus) if len(s) <= ITEMNO_WIDTH]

        rows = await self._fetch_chunked(keys, lambda chunk: (
            f"SELECT ITEMNO, STDCOST FROM ICITEM WHERE ITEMNO IN ({_marks(len(chunk))})", list(chunk)))
        return dict(convert_rows(rows, _std_cost, source=SOURCE, what="item cost"))

    # -- plumbing ----------------------------------------------------------

    def _connect(self) -> pyodbc.Connection:
        """A new connection (in a worker thread); the seam tests wrap to count statements."""
        conn = pyodbc.connect(self._odbc, autocommit=True, timeout=max(1, math.ceil(self._login_timeout)))
        # Honoured by drivers that implement SQL_ATTR_QUERY_TIMEOUT; _call cancels the rest.
        conn.timeout = max(1, math.ceil(self._query_timeout))
        if "maodbc" in str(conn.getinfo(pyodbc.SQL_DRIVER_NAME)).lower():
            # MariaDB Connector/ODBC 3.1 garbles text exchanged as UTF-16 (pyodbc's default): a
            # character whose UTF-16 low byte is D8-DB (Ø, Ù, many CJK) loses the character after it.
            # As UTF-8, the connection's own charset, every code point round-trips.
            conn.setencoding(encoding="utf-8")
            conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
            conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
        return conn

    def _checkout(self, *, fresh: bool = False) -> tuple[_Session, bool]:
        """A session for this thread, and whether it was reused from the idle list."""
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop(), True
            self._connections += 1
        try:
            return _Session(self._connect()), False
        except pyodbc.Error as exc:
            with self._lock:
                self._connections -= 1
            raise SourceUnavailable(SOURCE, "cannot connect") from exc
        except BaseException:
            with self._lock:
                self._connections -= 1
            raise

    def _checkin(self, session: _Session, *, keep: bool) -> None:
        with self._lock:
            if keep and self._executor is not None:
                self._idle.append(session)
                return
            self._connections -= 1
        session.close()

    def _in_thread(self, work: Work[T], running: _Running) -> T:
        with self._lock:
            self._busy += 1
        try:
            session, reused = self._checkout()
            try:
                return self._attempt(session, work, running)
            except SourceUnavailable:
                if not reused or running.cancelled:
                    raise
            # The server dropped an idle connection (restart, wait_timeout). Every statement
            # here is a read, so one retry on a fresh connection is safe.
            session, _ = self._checkout(fresh=True)
            return self._attempt(session, work, running)
        finally:
            with self._lock:
                self._busy -= 1

    def _attempt(self, session: _Session, work: Work[T], running: _Running) -> T:
        ok = False
        try:
            with running.lock:
                running.cursor = session.cursor
            try:
                if running.cancelled:
                    raise SourceTimeout(SOURCE, "no answer in time")
                result = work(session.cursor)
            finally:
                with running.lock:
                    running.cursor = None
            ok = True
            return result
        except pyodbc.Error as exc:
            raise _classify(exc, cancelled=running.cancelled) from exc
        finally:
            # after any failure the session starts afresh: a cancelled or broken cursor is not worth reviving
            self._checkin(session, keep=ok)

    async def _fetch_chunked(self, keys: list[str],
                             statement: Callable[[Sequence[str]], tuple[str, list[Any]]]) -> list[Row]:
        """The rows of ``statement(chunk)`` (SQL and its parameters) for each chunk of ``keys``, in one call."""
        if not keys:
            return []

        def work(cur: pyodbc.Cursor) -> list[Row]:
            rows: list[Row] = []
            for chunk in chunked(keys):
                sql, parameters = statement(chunk)
                cur.execute(sql, *parameters)
                rows.extend(cur.fetchall())
            return rows

        return await self._call(work)

    async def _call(self, work: Work[T]) -> T:
        executor, slots, canceller = self._executor, self._slots, self._canceller
        if executor is None or slots is None or canceller is None:
            raise SourceUnavailable(SOURCE, "connector is not open")
        if slots.locked():
            self._waiting += 1
            try:
                async with asyncio.timeout(self._login_timeout):
                    await slots.acquire()
            except TimeoutError as exc:
                raise PoolExhausted(SOURCE, "no worker free in time") from exc
            finally:
                self._waiting -= 1
        else:
            await slots.acquire()  # a worker is free: taken at once, no deadline to arm
        loop = asyncio.get_running_loop()
        running = _Running()
        try:
            future = executor.submit(self._in_thread, work, running)
        except RuntimeError:
            slots.release()
            raise SourceUnavailable(SOURCE, "connector is closing") from None
        # The slot is the thread, not this coroutine: it is free only when the thread is. One hop
        # back to the loop frees it and hands over the outcome; a hop for each made the worker and
        # the loop trade the GIL back and forth at the end of every call.
        outcome: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(lambda done: _hand_back(loop, slots, done, outcome))
        try:
            async with asyncio.timeout(self._login_timeout + self._query_timeout + GUARD_MARGIN):
                return await outcome
        except TimeoutError as exc:
            _abandon(canceller, running)
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        except asyncio.CancelledError:
            _abandon(canceller, running)
            raise


def _abandon(canceller: concurrent.futures.ThreadPoolExecutor, running: _Running) -> None:
    """Nobody waits for this call any more (its outcome future is cancelled): stop its statement, off the loop."""
    with contextlib.suppress(RuntimeError):  # the connector is closing; its threads finish on their own
        canceller.submit(running.cancel)


def _hand_back(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore, done: concurrent.futures.Future[T],
               outcome: asyncio.Future[T]) -> None:
    """In the worker thread, as a call ends: free its slot and settle its outcome, on the loop."""
    # RuntimeError: the loop is gone (shutdown), and so is anyone waiting for the slot or the outcome
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, slots, done, outcome)


def _settle(slots: asyncio.Semaphore, done: concurrent.futures.Future[T], outcome: asyncio.Future[T]) -> None:
    slots.release()
    if outcome.done():  # cancelled: the caller timed out or was cancelled, and the outcome is dropped
        return
    if done.cancelled():
        outcome.cancel()
    elif (exc := done.exception()) is not None:
        outcome.set_exception(exc)
    else:
        outcome.set_result(done.result())


def _close_quietly(conn: pyodbc.Connection) -> None:
    with contextlib.suppress(pyodbc.Error):
        conn.close()


def _classify(exc: pyodbc.Error, *, cancelled: bool) -> ConnectorError:
    state = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    found = _NATIVE_RE.findall(str(exc.args[1])) if len(exc.args) > 1 else []
    native = int(found[-1]) if found else None
    if cancelled or state in _TIMEOUT_STATES or native in _TIMEOUT_NATIVE:
        return SourceTimeout(SOURCE, "query timed out")
    if state.startswith("08") or native in _GONE_NATIVE:
        return SourceUnavailable(SOURCE, "connection lost")
    return QueryFailed(SOURCE, "query rejected")


def _account(row: Row) -> Account:
    custno, name, crlimit, currcd, status, open_bal, overdue_bal, open_count = row
    acct_no = str.strip(custno)
    if not acct_no:
        raise ValueError("blank CUSTNO")
    currency = str.strip(currcd)
    code = str.strip(status or "").upper()
    mapped = _ACCOUNT_STATUS.get(code)
    if mapped is None:
        log.warning("%s: account %s has unknown status %r", SOURCE, acct_no, code)
    return Account(acct_no, str.strip(name), mapped, currency, cents(crlimit or 0), cents(open_bal or 0),
                   cents(overdue_bal or 0), int(open_count or 0))


_UNSEEN: Any = object()  # a date not read yet (None is a date read as none)
_ZERO = cents(0)


class _InvoiceReader:
    """Builds invoices from rows; a page repeats few dates, so each is read once."""

    def __init__(self, today: int) -> None:
        self.today = today
        self.dates: dict[Any, date | None] = {}

    def date(self, value: Any, invno: str) -> date | None:
        try:
            return self.dates[value]
        except KeyError:
            pass
        try:
            day = yyyymmdd(value)
        except ValueError:
            log.warning("%s: invoice %s (and maybe others) has an impossible date %s; reported as none",
                        SOURCE, invno, value)
            day = None
        self.dates[value] = day
        return day

    def read(self, rows: Sequence[Row]) -> list[Invoice]:
        """Rows of ``_INVOICE_SELECT`` as invoices, the unreadable ones skipped and reported.

        One loop with the per-row steps written out: this is most of the cost of a bulk read beyond
        the driver's own. The cents columns are BIGINT and paid a SUM, so the driver hands over ints
        and Decimals, which ``CENT *`` scales exactly as they are (the same as ``cents``); anything
        else raises and the row is skipped. A zero amount is the shared zero.
        """
        out: list[Invoice] = []
        append = out.append
        today, dates, date_of = self.today, self.dates, self.date
        for row in rows:
            try:
                invno, custno, ordref, invdt, duedt, currcd, amount, tax, status, paid = row
                number = str.strip(invno)
                if not number:
                    raise ValueError("blank INVNO")
                mapped = _INVOICE_STATUS.get(status)
                if mapped is None:
                    code = str.strip(status or "").upper()
                    mapped = _INVOICE_STATUS.get(code)
                    if mapped is None:
                        log.warning("%s: invoice %s has unknown status %r", SOURCE, number, code)
                total = CENT * amount if amount else _ZERO
                settled = CENT * paid if paid else _ZERO
                if mapped == "open":
                    balance = total - settled
                    overdue = balance > _ZERO and 0 < duedt < today
                else:
                    balance, overdue = _ZERO, False
                issued = dates.get(invdt, _UNSEEN)
                if issued is _UNSEEN:
                    issued = date_of(invdt, number)
                due = dates.get(duedt, _UNSEEN)
                if due is _UNSEEN:
                    due = date_of(duedt, number)
                append(Invoice(number, str.strip(custno), str.strip(ordref) or None, issued, due, str.strip(currcd),
                               total, CENT * tax if tax else _ZERO, settled, balance, mapped, overdue))
            except ROW_ERRORS as exc:
                skipped_row(SOURCE, "invoice", exc)
        return out


def _std_cost(row: Row) -> tuple[str, Money] | None:
    itemno, stdcost = row
    sku = canonical_sku(itemno)
    return (sku, Money(cents(stdcost), COST_CURRENCY)) if sku else None
