"""Sales changes read from MariaDB's row binlog, as a replica would, without touching the schema.

A worker thread holds one binlog dump connection (``mysql-replication``'s ``BinLogStreamReader``,
blocking, with server heartbeats) and collects whole transactions, each ending at its Xid (or the
``COMMIT``/DDL query of a non-transactional one), into ``held``. ``poll`` hands out what is held past
the acknowledged position; ``ack`` forgets it. When the stream fails, the next ``poll`` says so, drops
what was held and starts a new stream at the acknowledged position, so nothing is lost. Setup and
grants: docs/change-capture-sales.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncmy
import pymysql
from asyncmy import errors as asyncmy_errors
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import HeartbeatLogEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent
from sqlalchemy.engine import make_url

from connectors.sales_refs import TABLES, RowChange, SalesRefs
from federation.changes import Batch, Change, LogUnavailable, Mode
from federation.errors import ConnectorError, QueryFailed, SourceTimeout, SourceUnavailable

SOURCE = "sales"
MARGIN = 1.0   # seconds a round may take beyond its timeout before it is given up on
# Replicas usually number themselves from 1 upwards; a random id in the top half of the 32-bit range
# is all but sure to clash with none of them, nor with another bizfed replica watching the same server.
SERVER_ID_RANGE = (0x8000_0000, 0xFFFF_FFFF)

_ACCESS_DENIED = frozenset({1044, 1045, 1142, 1227})
_LOG_PURGED = 1236   # ER_MASTER_FATAL_ERROR_READING_BINLOG: the file asked for is gone
_GONE = frozenset({1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})


@dataclass(frozen=True, slots=True)
class Position:
    """Where the binlog was read to: after the last whole transaction seen (``seq`` numbers them)."""

    file: str
    pos: int
    seq: int = 0


@dataclass(slots=True)
class _Txn:
    seq: int
    rows: list[RowChange]
    changes: list[Change] | None = None   # the rows' refs, looked up once, on the first poll


@dataclass(slots=True)
class _State:
    """What the stream thread and the event loop share; guarded by ``SalesLog._lock``."""

    generation: int = 0           # a thread of an older generation was given up on: it touches nothing
    acked: Position = Position("", 0)
    read_to: Position = Position("", 0)
    held: deque[_Txn] = field(default_factory=deque)
    held_rows: int = 0
    lost_at: int | None = None    # seq up to which changes went untold (log purged, too much held)
    failure: BaseException | None = None
    heard_at: float = 0.0         # monotonic time the stream last said anything (event or heartbeat)
    stream_thread_id: int | None = None


class _Counted(pymysql.connections.Connection):  # type: ignore[misc]
    """A pymysql connection that tells its feed of every statement it sends and, for a stream of
    ``generation``, of every packet it reads: the reader drops the events of other tables inside
    ``fetchone``, and a long run of them must not look like a silent server."""

    def __init__(self, *args: Any, feed: SalesLog, generation: int | None = None, **kwargs: Any) -> None:
        self._feed = feed
        self._generation = generation
        super().__init__(*args, **kwargs)

    def query(self, sql: Any, unbuffered: bool = False) -> int:
        self._feed._count(1)
        return int(super().query(sql, unbuffered))

    def _read_packet(self, *args: Any, **kwargs: Any) -> Any:
        packet = super()._read_packet(*args, **kwargs)
        state = self._feed._state
        if self._generation is not None and state.generation == self._generation:
            state.heard_at = time.monotonic()   # one float stored: no lock needed for a liveness hint
        return packet


class SalesLog:
    """Sales' change feed from its binlog; ``server_id`` must be unique among the server's replicas."""

    source = SOURCE

    def __init__(self, url: str, *, server_id: int | None = None, timeout: float = 2.0,
                 heartbeat: float = 1.0, max_held_rows: int = 100_000) -> None:
        self._url = make_url(url)
        self.server_id = server_id if server_id is not None else random.SystemRandom().randint(*SERVER_ID_RANGE)
        self._timeout = timeout
        self._heartbeat = heartbeat
        self._max_held_rows = max_held_rows
        self._lock = threading.Lock()
        self._state = _State()
        self._thread: threading.Thread | None = None
        self._names_from_metadata = True
        self._refs_conn: Any = None
        self._refs = SalesRefs(self._fetch)
        self.queries = 0

    @property
    def mode(self) -> Mode:
        return "log"

    def details(self) -> dict[str, object]:
        with self._lock:
            state = self._state
            return {"file": state.acked.file, "pos": state.acked.pos, "server_id": self.server_id,
                    "read_to": f"{state.read_to.file}:{state.read_to.pos}", "transactions_held": len(state.held),
                    "rows_held": state.held_rows, "connection_id": state.stream_thread_id,
                    "column_names": "binlog" if self._names_from_metadata else "information_schema"}

    def _count(self, n: int) -> None:
        with self._lock:
            self.queries += n

    # -- connections ---------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        url = self._url
        return {"host": url.host or "localhost", "port": url.port or 3306, "user": url.username or "root",
                "password": url.password or "", "connect_timeout": max(1, round(self._timeout)),
                "read_timeout": max(1, round(self._timeout + 2 * self._heartbeat)),
                "write_timeout": max(1, round(self._timeout))}

    def _connect(self, generation: int | None = None, **kwargs: Any) -> _Counted:
        conn = _Counted(feed=self, generation=generation, **kwargs)
        if "cursorclass" not in kwargs:   # the reader's own control connection has a DictCursor
            with self._lock:
                self._state.stream_thread_id = conn.thread_id()
        return conn

    def _reader(self, start: Position, *, blocking: bool, generation: int | None = None) -> BinLogStreamReader:
        database = self._url.database
        streams = 0

        def connect(**kwargs: Any) -> _Counted:
            # The reader reconnects by itself after a lost connection, from the last event it read,
            # possibly mid-transaction. A new reader at the acknowledged position is sure; this is not.
            nonlocal streams
            if "cursorclass" not in kwargs:
                streams += 1
                if streams > 1:
                    raise SourceUnavailable(SOURCE, "the binlog stream was cut")
                return self._connect(generation, **kwargs)
            return self._connect(**kwargs)

        return BinLogStreamReader(
            connection_settings=self._settings(), server_id=self.server_id, resume_stream=True,
            log_file=start.file, log_pos=start.pos, blocking=blocking, only_schemas=[database],
            only_tables=sorted(TABLES),
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent,
                         HeartbeatLogEvent],
            slave_heartbeat=self._heartbeat if blocking else None, pymysql_wrapper=connect,
            enable_logging=False, use_column_name_cache=not self._names_from_metadata)

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._url.get_backend_name().startswith(("mysql", "mariadb")):
            raise LogUnavailable(SOURCE, "Sales is not on MySQL/MariaDB here: there is no binlog to read")
        try:
            async with asyncio.timeout(3 * self._timeout + MARGIN):
                here = await asyncio.to_thread(self._check)
        except TimeoutError as exc:
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        with self._lock:
            self._state.acked = self._state.read_to = here
        self._spawn(here)

    def _check(self) -> Position:
        """The server's current binlog position, once the settings and grants the feed needs are seen."""
        settings = self._settings()
        try:
            conn = _Counted(feed=self, **settings)
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in _ACCESS_DENIED:
                raise LogUnavailable(SOURCE, "the Sales user may not log in") from exc
            raise SourceUnavailable(SOURCE, "unreachable") from exc
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image")
                log_bin, fmt, image = cur.fetchone()
                if not int(log_bin):
                    raise LogUnavailable(SOURCE, "binary logging is off on the Sales server (log_bin)")
                if str(fmt).upper() != "ROW":
                    raise LogUnavailable(SOURCE, f"binlog_format is {fmt} on the Sales server; ROW is needed")
                if str(image).upper() != "FULL":
                    raise LogUnavailable(SOURCE, f"binlog_row_image is {image} on the Sales server; FULL is needed")
                cur.execute("SHOW VARIABLES LIKE 'binlog_row_metadata'")
                metadata = cur.fetchone()
                self._names_from_metadata = metadata is not None and str(metadata[1]).upper() == "FULL"
                try:
                    cur.execute("SHOW MASTER STATUS")
                except pymysql.err.MySQLError as exc:
                    if exc.args and exc.args[0] in _ACCESS_DENIED:
                        raise LogUnavailable(SOURCE, "the Sales user lacks BINLOG MONITOR (REPLICATION CLIENT "
                                                     "before MariaDB 10.5) to see the binlog position") from exc
                    raise
                status = cur.fetchone()
                if status is None:
                    raise LogUnavailable(SOURCE, "binary logging is off on the Sales server (log_bin)")
                here = Position(str(status[0]), int(status[1]))
        except pymysql.err.MySQLError as exc:
            raise _error(exc) from exc
        finally:
            conn.close()
        self._test_read(here)
        return here

    def _test_read(self, here: Position) -> None:
        """Open the dump at ``here`` and read to its end: proves REPLICATION SLAVE is granted."""
        reader = self._reader(here, blocking=False)
        try:
            self._count(1)
            reader.fetchone()
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] in _ACCESS_DENIED:
                raise LogUnavailable(SOURCE, "the Sales user lacks REPLICATION SLAVE to read the binlog") from exc
            raise _error(exc) from exc
        finally:
            reader.close()
            with self._lock:
                self._state.stream_thread_id = None

    # -- the stream thread ---------------------------------------------------------------------

    def _spawn(self, start: Position) -> None:
        with self._lock:
            self._state.generation += 1
            self._state.failure = None
            self._state.stream_thread_id = None
            self._state.heard_at = time.monotonic()
            generation = self._state.generation
        self._thread = threading.Thread(target=self._stream, args=(generation, start),
                                        name=f"sales-binlog-{generation}", daemon=True)
        self._thread.start()

    def _current(self, generation: int) -> bool:
        with self._lock:
            return self._state.generation == generation

    def _stream(self, generation: int, start: Position) -> None:
        try:
            while self._current(generation):
                try:
                    self._follow(generation, start)
                    raise SourceUnavailable(SOURCE, "the binlog stream ended")
                except pymysql.err.OperationalError as exc:
                    if not (exc.args and exc.args[0] == _LOG_PURGED):
                        raise
                # The acknowledged file was purged: say so once, and carry on from the current position.
                start = self._master_position()
                with self._lock:
                    if self._state.generation == generation:
                        self._state.held.clear()
                        self._state.held_rows = 0
                        self._state.read_to = Position(start.file, start.pos, self._state.read_to.seq + 1)
                        self._state.lost_at = self._state.read_to.seq
        except BaseException as exc:  # the event loop raises it in the next poll
            with self._lock:
                if self._state.generation == generation:
                    self._state.failure = exc

    def _master_position(self) -> Position:
        conn = _Counted(feed=self, **self._settings())
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")
                status = cur.fetchone()
        finally:
            conn.close()
        if status is None:
            raise SourceUnavailable(SOURCE, "binary logging was turned off")
        return Position(str(status[0]), int(status[1]))

    def _follow(self, generation: int, start: Position) -> None:
        reader = self._reader(start, blocking=True, generation=generation)
        self._count(1)   # the dump request itself
        rows: list[RowChange] = []
        overflow = False   # the open transaction has more rows than may be held: they are dropped
        try:
            for event in reader:
                with self._lock:
                    if self._state.generation != generation:
                        return
                    self._state.heard_at = time.monotonic()
                if isinstance(event, WriteRowsEvent):
                    rows += [RowChange(event.table, None, r["values"]) for r in event.rows]
                elif isinstance(event, UpdateRowsEvent):
                    rows += [RowChange(event.table, r["before_values"], r["after_values"]) for r in event.rows]
                elif isinstance(event, DeleteRowsEvent):
                    rows += [RowChange(event.table, r["values"], None) for r in event.rows]
                elif isinstance(event, QueryEvent) and event.query.strip().upper() == "BEGIN":
                    rows, overflow = [], False
                elif isinstance(event, XidEvent | QueryEvent):
                    committed_at = datetime.fromtimestamp(event.timestamp, UTC)
                    self._commit(generation, [RowChange(r.table, r.before, r.after, committed_at) for r in rows],
                                 Position(reader.log_file, reader.log_pos), overflow=overflow)
                    rows, overflow = [], False
                if len(rows) > self._max_held_rows:
                    rows, overflow = [], True
        finally:
            reader.close()

    def _commit(self, generation: int, rows: list[RowChange], end: Position, *, overflow: bool = False) -> None:
        with self._lock:
            state = self._state
            if state.generation != generation:
                return
            seq = state.read_to.seq + 1
            state.read_to = Position(end.file, end.pos, seq)
            if not rows and not overflow:
                return
            if overflow or state.held_rows + len(rows) > self._max_held_rows:
                state.held.clear()
                state.held_rows = 0
                state.lost_at = seq
                return
            state.held.append(_Txn(seq, rows))
            state.held_rows += len(rows)

    # -- poll and ack --------------------------------------------------------------------------

    def _check_stream(self) -> None:
        """Raise what stopped the stream, or that it went silent, after starting a new one at the ack."""
        with self._lock:
            state = self._state
            failure = state.failure
            alive = self._thread is not None and self._thread.is_alive()
            silent = time.monotonic() - state.heard_at > self._timeout + 2 * self._heartbeat + MARGIN
            if failure is None and alive and not silent:
                return
            acked = state.acked
            state.held.clear()
            state.held_rows = 0
            state.read_to = Position(acked.file, acked.pos, state.read_to.seq)
        self._spawn(acked)
        if failure is None and alive:
            raise SourceTimeout(SOURCE, "the binlog stream stopped answering")
        if isinstance(failure, ConnectorError):
            raise failure
        if isinstance(failure, pymysql.err.MySQLError):
            raise _error(failure) from failure
        raise SourceUnavailable(SOURCE, "the binlog stream ended") from failure

    async def poll(self) -> Batch:
        if self._thread is None:
            raise SourceUnavailable(SOURCE, "the feed was not started")
        self._check_stream()
        with self._lock:
            txns = list(self._state.held)
            read_to = self._state.read_to
            complete = self._state.lost_at is None
        todo = [t for t in txns if t.changes is None]
        if todo:
            before = self._refs.queries
            try:
                changes = await self._refs.refs([row for t in todo for row in t.rows])
            finally:
                self._count(self._refs.queries - before)
            at = 0
            for txn in todo:   # every held row is of a table SalesRefs knows, so its answer is one per row
                txn.changes, at = changes[at:at + len(txn.rows)], at + len(txn.rows)
        return Batch(tuple(c for t in txns for c in t.changes or ()), complete, read_to)

    async def ack(self, batch: Batch) -> None:
        position = batch.position
        if not isinstance(position, Position):
            return
        with self._lock:
            state = self._state
            state.acked = Position(position.file, position.pos)
            while state.held and state.held[0].seq <= position.seq:
                state.held_rows -= len(state.held.popleft().rows)
            if state.lost_at is not None and state.lost_at <= position.seq:
                state.lost_at = None

    async def close(self) -> None:
        with self._lock:
            self._state.generation += 1   # the thread stops at its next event or heartbeat
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, self._timeout + 2 * self._heartbeat + MARGIN)
        self._drop_refs_connection()

    # -- the lookups' connection ---------------------------------------------------------------

    async def _fetch(self, sql: str, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        try:
            async with asyncio.timeout(self._timeout + MARGIN):
                if self._refs_conn is None:
                    url = self._url
                    self._refs_conn = await asyncmy.connect(
                        host=url.host or "localhost", port=url.port or 3306, user=url.username or "root",
                        password=url.password or "", db=url.database, autocommit=True,
                        charset=str(url.query.get("charset", "utf8mb4")),
                        connect_timeout=max(1, round(self._timeout)))
                async with self._refs_conn.cursor() as cur:
                    await cur.execute(sql, tuple(values))
                    return list(await cur.fetchall())
        except TimeoutError as exc:
            self._drop_refs_connection()
            raise SourceTimeout(SOURCE, "no answer in time") from exc
        except (asyncmy_errors.OperationalError, asyncmy_errors.InterfaceError, OSError) as exc:
            self._drop_refs_connection()
            code = exc.args[0] if exc.args else None
            if isinstance(code, int) and code not in _GONE and code < 2000:
                raise QueryFailed(SOURCE, "lookup failed") from exc
            raise SourceUnavailable(SOURCE, "unreachable") from exc
        except asyncmy_errors.Error as exc:
            raise QueryFailed(SOURCE, "lookup failed") from exc

    def _drop_refs_connection(self) -> None:
        conn, self._refs_conn = self._refs_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _error(exc: pymysql.err.MySQLError) -> ConnectorError:
    code = exc.args[0] if exc.args else None
    if code in (1969, 3024) or (code == 2013 and "timed out" in str(exc)):
        return SourceTimeout(SOURCE, "no answer in time")
    if code in _GONE or isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError):
        return SourceUnavailable(SOURCE, "unreachable")
    return QueryFailed(SOURCE, "binlog read failed")
