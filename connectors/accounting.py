"""Accounting connector: the receivables package read with plain ODBC SQL through pyodbc.

pyodbc blocks, so every call runs on one of the connector's worker threads, on a
connection no other thread uses meanwhile (pyodbc's threadsafety is 1).

Nothing may wedge it: the driver gets socket timeouts, so a call on a dead network
ends; and a call past its deadline frees its worker slot at once, its thread left
to end alone (and replaced) and its connection closed, never reused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import pyodbc

from connectors._batch import chunked, unique
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

SOCKET_MARGIN = 1.0   # seconds a call may outlast its login and query timeouts before it is given up on
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

# MariaDB Connector/ODBC's socket timeouts, in whole seconds. Its login timeout attribute bounds the TCP
# connect but not the handshake, and without a read timeout a call on a connection whose peer went silent
# never returns (verified with odbc-mariadb 3.1.15; ReadTimeout and the like are ignored). Others ignore them.
_SOCKET_OPTIONS = ("CONN_TIMEOUT", "READ_TIMEOUT", "WRITE_TIMEOUT")

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


def socket_options(odbc: str, *, login_timeout: float, query_timeout: float) -> str:
    """``odbc`` with the driver's connect, read and write timeouts added, unless it sets them itself.

    A read or write waits at most just past a call's time (the policy's attempt timeout, which cancels
    the statement first): the socket timeout only ends a thread whose network has died.
    """
    given = {part.partition("=")[0].strip().upper() for part in odbc.split(";")}
    rw = math.ceil(login_timeout + query_timeout + SOCKET_MARGIN) + 1
    values = {"CONN_TIMEOUT": max(1, math.ceil(login_timeout)), "READ_TIMEOUT": rw, "WRITE_TIMEOUT": rw}
    extra = [f"{key}={values[key]}" for key in _SOCKET_OPTIONS if key not in given]
    return ";".join([odbc.rstrip(";"), *extra]) if extra else odbc


class _Running:
    """One call: the statement its worker thread is running, so a late caller can cancel it.

    ``thread`` and ``finished`` are set by the worker and ``cancelled`` by the loop, under ``lock``;
    ``slot_freed`` is only used on the loop.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cursor: pyodbc.Cursor | None = None
        self.cancelled = False
        self.thread: threading.Thread | None = None
        self.finished = False
        self.slot_freed = False

    def cancel(self) -> None:
        # Under the lock: the worker cannot close the cursor while SQLCancel uses it.
        with self.lock:
            self.cancelled = True
            if self.cursor is not None:
                try:
                    self.cursor.cancel()
                except pyodbc.Error:
                    log.warning("%s: could not cancel a running statement", SOURCE)


class _Workers:
    """``size`` worker threads taking calls in turn, and room for ``spare`` retired ones.

    A thread whose call nobody waits for any more is retired: it ends once that call returns (the
    socket timeouts see to it) and a new thread takes its place at once. With ``spare`` threads
    retired already, no more are, and a stuck call keeps its slot until it returns: threads stay
    bounded by ``size + spare`` whatever the network does.
    """

    def __init__(self, size: int, spare: int, name: str) -> None:
        self._spare = spare
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live: set[threading.Thread] = set()
        self._retired: set[threading.Thread] = set()
        self._closed = False
        self._started = 0
        with self._lock:
            for _ in range(size):
                self._spawn()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on a worker; RuntimeError once closing."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn()
            except BaseException as exc:  # handed to whoever waits on the future, like an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)

        with self._lock:
            if self._closed:
                raise RuntimeError("accounting workers are closed")
            self._jobs.put(job)
        return future

    def retire(self, thread: threading.Thread) -> bool:
        """Let ``thread`` finish its call alone and start another in its place; False if it cannot be spared."""
        with self._lock:
            if self._closed or thread not in self._live or len(self._retired) >= self._spare:
                return False
            self._live.discard(thread)
            self._retired.add(thread)
            self._spawn()
            return True

    def close(self, timeout: float) -> None:
        """Stop the threads once the calls queued are done, waiting up to ``timeout`` for them (blocks)."""
        with self._lock:
            self._closed = True
            live = list(self._live)
            for _ in live:
                self._jobs.put(None)
        until = time.monotonic() + timeout
        for thread in live:
            thread.join(max(0.0, until - time.monotonic()))

    def _spawn(self) -> None:
        self._started += 1
        # Daemon threads: one retired in a call that never returns must not hold up the process's exit.
        thread = threading.Thread(target=self._run, name=f"{self._name}-{self._started}", daemon=True)
        self._live.add(thread)
        thread.start()

    def _run(self) -> None:
        me = threading.current_thread()
        while (job := self._jobs.get()) is not None:
            job()
            with self._lock:
                if me in self._retired:
                    self._retired.discard(me)
                    return
        with self._lock:
            self._live.discard(me)


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
        self._odbc_timed = socket_options(odbc, login_timeout=login_timeout, query_timeout=query_timeout)
        self._workers: _Workers | None = None
        self._canceller: concurrent.futures.ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._idle: list[_Session] = []
        self._connections = 0
        self._in_use = 0      # worker slots taken (on the loop): a retired thread's call no longer holds one
        self._waiting = 0

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Start the worker threads; connections are made on first use, so a down source does not stop start-up."""
        if self._workers is not None:
            return
        # This connector keeps its own connections; the driver manager's pool would hide them
        # from pool_state and hand out connections the server may have dropped.
        pyodbc.pooling = False
        self._workers = _Workers(self._max_workers, self._max_workers, "bizfed-acct")
        self._canceller = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bizfed-acct-cancel")
        self._slots = asyncio.Semaphore(self._max_workers)

    async def close(self) -> None:
        workers, canceller = self._workers, self._canceller
        self._workers = self._canceller = self._slots = None
        if workers is None:
            return
        # Threads may be inside a blocking driver call: wait for them off the event loop, as long as
        # the socket timeouts let a call take.
        bound = self._login_timeout + 2 * (self._query_timeout + SOCKET_MARGIN) + 2
        await asyncio.get_running_loop().run_in_executor(None, workers.close, bound)
        if canceller is not None:
            canceller.shutdown(wait=False)
        self._drop_idle()

    async def ping(self) -> None:
        def work(cur: pyodbc.Cursor) -> None:
            cur.execute("SELECT 1")
            cur.fetchall()

        await self.call(work)

    def pool_state(self) -> dict[str, int]:
        with self._lock:
            return {"max": self._max_workers, "size": self._connections, "in_use": self._in_use,
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

            return await self.call(work)

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
        conn = pyodbc.connect(self._odbc_timed, autocommit=True, timeout=max(1, math.ceil(self._login_timeout)))
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

    def _checkout(self) -> _Session:
        """A session for this thread: an idle one, or a new connection."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._connections += 1
        try:
            return _Session(self._connect())
        except pyodbc.Error as exc:
            with self._lock:
                self._connections -= 1
            raise SourceUnavailable(SOURCE, "cannot connect") from exc
        except BaseException:
            with self._lock:
                self._connections -= 1
            raise

    def _drop_idle(self) -> None:
        with self._lock:
            dropped, self._idle = self._idle, []
            self._connections -= len(dropped)
        for session in dropped:
            session.close()

    def _checkin(self, session: _Session, *, keep: bool) -> None:
        with self._lock:
            if keep and self._workers is not None:
                self._idle.append(session)
                return
            self._connections -= 1
        session.close()

    def _in_thread(self, work: Work[T], running: _Running) -> T:
        with running.lock:
            running.thread = threading.current_thread()
        try:
            if running.cancelled:  # given up on before it started
                raise SourceTimeout(SOURCE, "no answer in time")
            session = self._checkout()
            try:
                return self._attempt(session, work, running)
            except SourceUnavailable:
                # A server that dropped this connection (a restart, wait_timeout) has most likely
                # dropped the idle ones too. The call fails as transient: the policy retries it.
                self._drop_idle()
                raise
        finally:
            with running.lock:
                running.finished = True

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
            # After any failure the session starts afresh: a cancelled or broken cursor is not worth
            # reviving. Nor is the connection of a call given up on: its socket may be dead.
            self._checkin(session, keep=ok and not running.cancelled)

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

        return await self.call(work)

    async def call(self, work: Work[T]) -> T:
        """``work(cursor)`` on a worker thread, bounded as every query of the connector (the change feed's too)."""
        workers, slots, canceller = self._workers, self._slots, self._canceller
        if workers is None or slots is None or canceller is None:
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
        self._in_use += 1
        loop = asyncio.get_running_loop()
        running = _Running()
        try:
            future = workers.submit(lambda: self._in_thread(work, running))
        except RuntimeError:
            self._free(running, slots)
            raise SourceUnavailable(SOURCE, "connector is closing") from None
        # The slot is the thread, not this coroutine: it is free when the thread is, or when the thread
        # is retired. One hop back to the loop frees it and hands over the outcome; a hop for each made
        # the worker and the loop trade the GIL back and forth at the end of every call.
        outcome: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(lambda done: _hand_back(loop, lambda: self._free(running, slots), done, outcome))
        # ODBC drivers may ignore the query timeout attribute (MariaDB's does), so unlike the other
        # connectors this one times its statements itself: past the limit it cancels the statement and
        # retires the thread, as it does when the policy gives up on the call first.
        try:
            async with asyncio.timeout(self._login_timeout + self._query_timeout + SOCKET_MARGIN):
                return await outcome
        except TimeoutError as exc:
            self._give_up(running, slots, workers, canceller)
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        except asyncio.CancelledError:
            self._give_up(running, slots, workers, canceller)
            raise

    def _free(self, running: _Running, slots: asyncio.Semaphore) -> None:
        """Give the call's worker slot back, once (on the loop)."""
        if not running.slot_freed:
            running.slot_freed = True
            self._in_use -= 1
            slots.release()

    def _give_up(self, running: _Running, slots: asyncio.Semaphore, workers: _Workers,
                 canceller: concurrent.futures.ThreadPoolExecutor) -> None:
        """Nobody waits for this call any more: free its slot now if its thread can be spared, and stop
        its statement. Its connection is closed when the thread is done with it."""
        with running.lock:
            running.cancelled = True
            thread, finished = running.thread, running.finished
        if finished:
            return  # its outcome is on its way to the loop, and frees the slot
        # A call not started yet sees it is cancelled and returns at once; one started has its thread retired.
        if thread is None or workers.retire(thread):
            self._free(running, slots)
        _abandon(canceller, running)


def _abandon(canceller: concurrent.futures.ThreadPoolExecutor, running: _Running) -> None:
    """Stop the statement of a call nobody waits for any more, off the loop."""
    with contextlib.suppress(RuntimeError):  # the connector is closing; its threads finish on their own
        canceller.submit(running.cancel)


def _hand_back(loop: asyncio.AbstractEventLoop, free: Callable[[], None], done: concurrent.futures.Future[T],
               outcome: asyncio.Future[T]) -> None:
    """In the worker thread, as a call ends: free its slot and settle its outcome, on the loop."""
    # RuntimeError: the loop is gone (shutdown), and so is anyone waiting for the slot or the outcome
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, free, done, outcome)


def _settle(free: Callable[[], None], done: concurrent.futures.Future[T], outcome: asyncio.Future[T]) -> None:
    free()
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
