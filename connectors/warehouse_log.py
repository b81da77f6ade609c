"""The Warehouse's committed changes, read from PostgreSQL's logical decoding (``ChangeFeed``, mode "log").

A logical replication slot (pgoutput, over a publication of the four tables) keeps our place in the WAL
across restarts. It is read with plain SQL on a connection of our own: ``poll`` peeks at whole
transactions after the slot's confirmed position, ``ack`` advances the slot to the batch's end. The
legacy schema is never altered; what bizfed creates (the publication, the slot) it never drops, unless
told to at ``close`` (``drop_on_close``, for tests) and only if it created them itself.
"""

from __future__ import annotations

import contextlib
import logging
import re
import struct
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import errors as pg_errors
from psycopg import sql

from connectors.warehouse_changes import SOURCE, Conn, WatchConnection
from federation.changes import Batch, Change, LogUnavailable, Mode, Ref, order_refs, sku_refs
from federation.errors import ConnectorError, QueryFailed

log = logging.getLogger("bizfed.changes.warehouse")

PUBLISHED = ("items", "stock", "movements", "locations")
MAX_CHANGES = 10_000       # rows one batch may hold; a bigger batch is reported as incomplete
STUCK_ROUNDS = 3           # peeks in a row that ran out of time before the slot counts as too far behind
RESET_BOUND = 60.0         # seconds a reset (recreating the slot, or advancing one to the present) may take
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_FACTS = ("SELECT current_setting('wal_level'), current_database(), "
          "(SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user)")
_PUBLICATION = "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = %s"
_PUBLISHED_TABLES = ("SELECT tablename, to_jsonb(t) ->> 'rowfilter' FROM pg_publication_tables t "
                     "WHERE pubname = %s AND schemaname = current_schema()")
_SLOT = "SELECT plugin, database, wal_status FROM pg_replication_slots WHERE slot_name = %s"
_CREATE_SLOT = "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')"
_DROP_SLOT = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s"
# Where the slot stands, and the end of the flushed WAL: decoding reads no further than that.
_STATE = ("SELECT s.confirmed_flush_lsn::text, s.active_pid, s.wal_status, pg_current_wal_flush_lsn()::text, "
          "pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint, "
          "EXISTS (SELECT 1 FROM pg_publication WHERE pubname = %s) "
          "FROM (SELECT 1) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = %s")
_PEEK = ("SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s, "
         "'proto_version', '1', 'publication_names', %s)")
_ADVANCE = ("SELECT pg_replication_slot_advance(slot_name, %s::pg_lsn) FROM pg_replication_slots "
            "WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn")
_ADVANCE_TO_NOW = ("SELECT pg_replication_slot_advance(slot_name, pg_current_wal_flush_lsn()) "
                   "FROM pg_replication_slots WHERE slot_name = %s")

_NO_REPLICATION = ("the database role may not read the change log: it needs the REPLICATION attribute "
                   "(or superuser) to create and read the replication slot")


def slot_name(database: str) -> str:
    """The default slot of a database: slots are cluster-wide, so the database's name is in it."""
    return ("bizfed_" + re.sub(r"[^a-z0-9_]", "_", database.lower()))[:63]


def lsn_value(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(frozen=True, slots=True)
class _Position:
    generation: int    # which slot it belongs to: a reset makes a new one
    lsn: int | None


@dataclass(slots=True)
class _Slot:
    """What one round of ``_STATE`` said."""

    confirmed: int | None
    active_pid: int | None
    wal_status: str | None
    flushed: int
    retained: int | None
    publication: bool


class WarehouseLog:
    """The Warehouse's changes from its logical decoding slot.

    ``advance_existing_slot`` lets a slot bizfed did not create (this process) be moved to the present
    when it retains more than ``max_retained_bytes`` of WAL or cannot be read in time; without it that
    is only reported (``details()["over_limit"]``).
    """

    source = SOURCE

    def __init__(self, dsn: str, *, timeout: float = 2.0, publication: str = "bizfed_changes",
                 slot: str | None = None, max_retained_bytes: int = 1 << 30, max_changes: int = MAX_CHANGES,
                 advance_existing_slot: bool = False, drop_on_close: bool = False) -> None:
        for name in (publication, slot):
            if name is not None and not _NAME.fullmatch(name):
                raise ValueError("warehouse: slot and publication names are lower-case letters, digits and _")
        self._watch = WatchConnection(dsn, timeout=timeout, application_name="bizfed-warehouse-log")
        self._publication = publication
        self._slot = slot
        self._max_retained = max_retained_bytes
        self._max_changes = max_changes
        self._advance_existing = advance_existing_slot
        self._drop_on_close = drop_on_close
        self._database: str | None = None
        self._slot_created = False
        self._publication_created = False
        self._relations: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._generation = 0
        self._pending_reset = False   # a reset happened: batches are incomplete until one is acked
        self._must_reset: str | None = None
        self._stuck = 0
        self._state: _Slot | None = None
        self._over_limit = False
        self.resets = 0

    @property
    def mode(self) -> Mode:
        return "log"

    @property
    def queries(self) -> int:
        return self._watch.queries

    def details(self) -> dict[str, object]:
        state = self._state
        return {
            "slot": self._slot,
            "publication": self._publication,
            "slot_created": self._slot_created,
            "publication_created": self._publication_created,
            "tables": list(PUBLISHED),
            "confirmed_lsn": lsn_text(state.confirmed) if state and state.confirmed is not None else None,
            "retained_bytes": state.retained if state else None,
            "max_retained_bytes": self._max_retained,
            "over_limit": self._over_limit,
            "resets": self.resets,
            "slow_rounds": self._stuck,
        }

    async def start(self) -> None:
        """Check what logical decoding needs; create the publication and the slot where missing."""
        async def work(conn: Conn) -> None:
            row = await (await self._watch.execute(conn, _FACTS)).fetchone()
            assert row is not None
            level, self._database, may_replicate = row
            if level != "logical":
                raise LogUnavailable(SOURCE, f"wal_level is {level}; set wal_level=logical (with "
                                             "max_replication_slots and max_wal_senders above 0) and restart")
            if not may_replicate:
                raise LogUnavailable(SOURCE, _NO_REPLICATION)
            if self._slot is None:
                self._slot = slot_name(str(self._database))
            async with self._long_statements(conn):   # a new slot waits for transactions running now
                await self._ensure_publication(conn)
                await self._ensure_slot(conn)
            if self._publication_created and not self._slot_created:
                # The slot's unread WAL predates the publication: decoding it fails until it is passed.
                if not self._advance_existing:
                    raise LogUnavailable(SOURCE, f"replication slot {self._slot} is older than publication "
                                                 f"{self._publication}: drop the slot (bizfed creates it anew) "
                                                 "or allow bizfed to advance it")
                self._must_reset = "the replication slot is older than its publication"

        await self._watch.round(work, bound=RESET_BOUND)

    async def poll(self) -> Batch:
        if self._database is None:
            raise RuntimeError("WarehouseLog.poll before start")
        if self._must_reset is not None:
            await self._reset(self._must_reset)
            return self._incomplete()
        outcome = await self._watch.round(self._read)
        if isinstance(outcome, str):
            await self._reset(outcome)
            return self._incomplete()
        return outcome

    async def ack(self, batch: Batch) -> None:
        position = batch.position
        if not isinstance(position, _Position) or position.generation != self._generation:
            return   # a batch of a slot since reset: nothing of it to keep
        self._pending_reset = False
        lsn = position.lsn
        confirmed = self._state.confirmed if self._state else None
        if lsn is None or (confirmed is not None and lsn <= confirmed):
            return

        async def work(conn: Conn) -> None:
            await self._watch.execute(conn, _ADVANCE, (lsn_text(lsn), self._slot, lsn_text(lsn)))

        await self._watch.round(work)
        if self._state is not None:
            self._state.confirmed = lsn

    async def close(self) -> None:
        if self._drop_on_close and (self._slot_created or self._publication_created):
            async def work(conn: Conn) -> None:
                if self._slot_created:
                    await self._watch.execute(conn, _DROP_SLOT, (self._slot,))
                if self._publication_created:
                    await self._watch.execute(conn, sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                        sql.Identifier(self._publication)))

            try:
                await self._watch.round(work)
            except ConnectorError as exc:
                log.warning("warehouse log: could not drop what it created: %s", exc.message)
        await self._watch.close()

    def _incomplete(self) -> Batch:
        return Batch((), complete=False, position=_Position(self._generation, None))

    async def _ensure_publication(self, conn: Conn) -> None:
        name = self._publication
        row = await (await self._watch.execute(conn, _PUBLICATION, (name,))).fetchone()
        if row is None:
            try:
                await self._watch.execute(conn, sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                    sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, PUBLISHED))))
            except pg_errors.InsufficientPrivilege:
                raise LogUnavailable(SOURCE, (
                    f"the database role may not create publication {name}: it needs CREATE on the database "
                    f"and ownership of tables {', '.join(PUBLISHED)}; or have a DBA create the publication "
                    "for those tables and configure its name")) from None
            except pg_errors.DuplicateObject:
                return   # another replica created it just now
            self._publication_created = True
            return
        if not all(row):
            raise LogUnavailable(SOURCE, f"publication {name} must publish inserts, updates, deletes and "
                                         "truncates")
        rows = await (await self._watch.execute(conn, _PUBLISHED_TABLES, (name,))).fetchall()
        missing = sorted(set(PUBLISHED) - {table for table, _ in rows})
        if missing:
            raise LogUnavailable(SOURCE, f"publication {name} lacks tables {', '.join(missing)}: add them")
        if any(row_filter is not None for table, row_filter in rows if table in PUBLISHED):
            raise LogUnavailable(SOURCE, f"publication {name} filters rows: bizfed needs every row")

    async def _ensure_slot(self, conn: Conn) -> None:
        row = await (await self._watch.execute(conn, _SLOT, (self._slot,))).fetchone()
        if row is None:
            await self._create_slot(conn)
            return
        plugin, database, wal_status = row
        if plugin != "pgoutput" or database != self._database:
            raise LogUnavailable(SOURCE, f"replication slot {self._slot} exists for another use (another "
                                         "database or output plugin): configure another slot name")
        if wal_status == "lost":
            raise LogUnavailable(SOURCE, f"replication slot {self._slot} has lost the WAL it needs: drop it "
                                         "and bizfed creates it anew")

    async def _create_slot(self, conn: Conn) -> None:
        try:
            await self._watch.execute(conn, _CREATE_SLOT, (self._slot,))
        except pg_errors.InsufficientPrivilege:
            raise LogUnavailable(SOURCE, _NO_REPLICATION) from None
        except pg_errors.ConfigurationLimitExceeded:
            raise LogUnavailable(SOURCE, "all replication slots are in use: raise max_replication_slots "
                                         "(and restart) or drop an unused slot") from None
        except pg_errors.DuplicateObject:
            return   # another replica created it just now
        self._slot_created = True

    async def _read(self, conn: Conn) -> Batch | str:
        """One round: where the slot stands, then the whole transactions after it; or why it must be reset."""
        row = await (await self._watch.execute(conn, _STATE, (self._publication, self._slot))).fetchone()
        assert row is not None
        confirmed, active_pid, wal_status, flushed, retained, publication = row
        state = _Slot(lsn_value(confirmed) if confirmed else None, active_pid, wal_status,
                      lsn_value(flushed), retained, publication)
        self._state = state
        if confirmed is None:
            return "the replication slot is gone"
        if not publication:
            return "the publication is gone"
        if wal_status == "lost":
            return "the replication slot lost the WAL it needs"
        if active_pid is not None and active_pid != conn.info.backend_pid:
            if active_pid not in self._watch.backend_pids:
                raise QueryFailed(SOURCE, "the replication slot is in use by another session")
            # A connection of ours given up on still holds the slot: end it.
            await self._watch.execute(conn, "SELECT pg_terminate_backend(%s, 1000)", (active_pid,))
        over, self._over_limit = self._over_limit, retained is not None and retained > self._max_retained
        if self._over_limit:
            if self._may_reset():
                return f"the replication slot retains {retained} bytes of WAL, more than allowed"
            if not over:
                log.warning("warehouse log: slot %s retains %s bytes of WAL, over the limit; it was not "
                            "created by bizfed here, so it is not reset", self._slot, retained)
        try:
            rows = await (await self._watch.execute(
                conn, _PEEK, (self._slot, lsn_text(state.flushed), self._max_changes, self._publication))).fetchall()
        except pg_errors.QueryCanceled:
            self._stuck += 1
            if self._stuck >= STUCK_ROUNDS and self._may_reset():
                self._must_reset = "the replication slot is too far behind to read in time"
            raise
        except pg_errors.UndefinedObject:
            return "the replication slot or its publication is gone"
        self._stuck = 0
        decoded = decode([bytes(data) for (data,) in rows], self._relations)
        cut = len(rows) >= self._max_changes   # decoding stopped at a commit: more may follow it
        end = decoded.end if cut else max(state.flushed, decoded.end or 0)
        changes = tuple(decoded.changes)
        complete = decoded.complete and not self._pending_reset
        if len(changes) > self._max_changes:
            changes, complete = (), False
        return Batch(changes, complete=complete, position=_Position(self._generation, end))

    def _may_reset(self) -> bool:
        return self._slot_created or self._advance_existing

    async def _reset(self, reason: str) -> None:
        """Carry on from the present: a fresh slot if it is ours (or gone), else ours advanced to now."""
        async def work(conn: Conn) -> None:
            async with self._long_statements(conn):
                try:
                    await self._ensure_publication(conn)
                except LogUnavailable as exc:
                    raise QueryFailed(SOURCE, exc.reason) from None
                exists = await (await self._watch.execute(conn, _SLOT, (self._slot,))).fetchone()
                if exists is None:
                    await self._create_slot(conn)
                elif self._slot_created:
                    await self._watch.execute(conn, _DROP_SLOT, (self._slot,))
                    await self._create_slot(conn)
                elif exists[2] == "lost":
                    raise QueryFailed(SOURCE, f"slot {self._slot} has lost the WAL it needs and was not created "
                                              "by bizfed here: drop it, and bizfed creates it anew")
                elif self._advance_existing:
                    await self._watch.execute(conn, _ADVANCE_TO_NOW, (self._slot,))
                else:
                    raise QueryFailed(SOURCE, f"{reason}; slot {self._slot} was not created by bizfed here: "
                                              "drop it, or allow bizfed to advance it")

        await self._watch.round(work, bound=RESET_BOUND)
        log.warning("warehouse log: %s; carrying on from the present (slot %s)", reason, self._slot)
        self._must_reset = None
        self._stuck = 0
        self._generation += 1
        self._pending_reset = True
        self.resets += 1

    @contextlib.asynccontextmanager
    async def _long_statements(self, conn: Conn) -> AsyncIterator[None]:
        await self._watch.execute(conn, f"SET statement_timeout = {int(RESET_BOUND * 1000)}")
        try:
            yield
        finally:
            if not conn.closed:
                await self._watch.execute(conn, f"SET statement_timeout = {int(self._watch.timeout * 1000)}")


# --- pgoutput (protocol version 1) --------------------------------------------------------------------

@dataclass(slots=True)
class Decoded:
    changes: list[Change] = field(default_factory=list)
    complete: bool = True
    end: int | None = None   # end of the last transaction's commit record


Tuple = dict[str, str | None]


class _Message:
    """A cursor over one pgoutput message."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _take(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self._data, self._at)
        self._at += struct.calcsize(fmt)
        return value

    def byte(self) -> str:
        return chr(self._take("!B"))

    def int16(self) -> int:
        return int(self._take("!h"))

    def int32(self) -> int:
        return int(self._take("!i"))

    def uint32(self) -> int:
        return int(self._take("!I"))

    def int64(self) -> int:
        return int(self._take("!q"))

    def string(self) -> str:
        end = self._data.index(b"\0", self._at)
        text = self._data[self._at:end].decode()
        self._at = end + 1
        return text

    def tuple(self, columns: tuple[str, ...]) -> Tuple:
        values: Tuple = {}
        for i in range(self.int16()):
            kind = self.byte()
            value: str | None = None
            if kind in "tb":
                length = self.int32()
                value = self._data[self._at:self._at + length].decode(errors="replace")
                self._at += length
            if i < len(columns):
                values[columns[i]] = value   # 'n' null, 'u' unchanged TOAST: unknown here either way
        return values


def decode(messages: Iterable[bytes], relations: dict[int, tuple[str, tuple[str, ...]]]) -> Decoded:
    """The changes in ``messages`` (whole transactions), with ``relations`` learnt along the way."""
    out = Decoded()
    committed_at: datetime | None = None
    for data in messages:
        msg = _Message(data)
        tag = msg.byte()
        if tag == "B":
            msg.int64()   # the transaction's final LSN
            committed_at = _PG_EPOCH + timedelta(microseconds=msg.int64())
        elif tag == "C":
            msg.byte()
            msg.int64()   # the commit's LSN
            out.end = msg.int64()
        elif tag == "R":
            relid = msg.uint32()
            msg.string()   # namespace
            table = msg.string()
            msg.byte()     # replica identity
            columns = []
            for _ in range(msg.int16()):
                msg.byte()
                columns.append(msg.string())
                msg.int32()
                msg.int32()
            relations[relid] = (table, tuple(columns))
        elif tag in "IUD":
            change = _row_change(tag, msg, relations, committed_at)
            if change is None:
                out.complete = False
            else:
                out.changes.append(change)
        elif tag == "T":
            out.complete = False   # a truncated table: whatever was cached from it is gone
        elif tag not in "YOM":
            out.complete = False   # a message this decoder does not know: it cannot say what changed
    return out


def _row_change(tag: str, msg: _Message, relations: dict[int, tuple[str, tuple[str, ...]]],
                committed_at: datetime | None) -> Change | None:
    """The change an Insert, Update or Delete describes, or None when what it touched cannot be known."""
    relation = relations.get(msg.uint32())
    if relation is None:
        return None
    table, columns = relation
    old: Tuple | None = None
    new: Tuple | None = None
    part = msg.byte()
    if part in "KO":
        old = msg.tuple(columns)
        if tag == "U":
            part = msg.byte()
    if part == "N":
        new = msg.tuple(columns)
    refs = _refs(table, tag, old, new)
    return None if refs is None else Change(table, refs, committed_at)


def _refs(table: str, tag: str, old: Tuple | None, new: Tuple | None) -> frozenset[Ref] | None:
    rows = [row for row in (old, new) if row is not None]
    if table in ("items", "stock"):
        return frozenset(sku_refs(row.get("sku") for row in rows))
    if table == "movements":
        # The key of a movement is its id: without the old row (REPLICA IDENTITY FULL) a delete cannot
        # say which SKU it touched, nor an update what SKU or order the row had before.
        if tag != "I" and (old is None or old.get("sku") is None):
            return None
        refs = sku_refs(row.get("sku") for row in rows)
        refs |= order_refs(ref for row in rows if (ref := row.get("reference")) is not None)
        return frozenset(refs)
    return frozenset()   # locations: no ref of their own; the source's list tag covers them
