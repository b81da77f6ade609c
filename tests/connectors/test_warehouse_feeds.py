"""The Warehouse's change feeds against a real PostgreSQL: the log (a pgoutput slot) and the watermark poll.

Rows are written with psycopg as the legacy applications would, each commit flushed at once
(``synchronous_commit`` on: the private server runs with it off, and decoding reads only flushed WAL).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from connectors.warehouse_changes import ROUND_MARGIN, WarehousePoll
from connectors.warehouse_log import WarehouseLog
from deploy.legacy.schema import LegacyTargets
from deploy.local.addresses import dsn_port, dsn_with_port
from deploy.local.faultproxy import FaultProxy
from federation.changes import ORDER, SKU, Batch, ChangeFeed, LogUnavailable, Ref
from federation.errors import ConnectorError, SourceTimeout, SourceUnavailable

TIMEOUT = 5.0
GIVE_UP_S = 0.5
Writer = psycopg.AsyncConnection[tuple[Any, ...]]


def sku(key: str) -> Ref:
    return Ref(SKU, key)


def order(key: str) -> Ref:
    return Ref(ORDER, key)


def seen(batch: Batch) -> list[tuple[str, set[Ref]]]:
    return [(c.table, set(c.refs)) for c in batch.changes]


def with_user(dsn: str, user: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, user=user)


@pytest.fixture(name="dsn", scope="module")
def _dsn(empty_legacy: LegacyTargets) -> Iterator[str]:
    """This module's Warehouse, with two locations; every slot left in it and every role made here
    dropped at the end (a slot left behind holds WAL forever, and keeps the database from being dropped)."""
    dsn = empty_legacy.warehouse_dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO locations VALUES ('BCN1', 'Barcelona', 'Barcelona', 'ES', 'Europe/Madrid'), "
                     "('NYC1', 'New York', 'New York', 'US', 'America/New_York')")
    yield dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                     "WHERE database = current_database() AND active_pid IS NOT NULL")
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                     "WHERE database = current_database()")
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'bizfed_test_%'").fetchall():
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))


@pytest.fixture(name="db")
async def _db(dsn: str) -> AsyncIterator[Writer]:
    """A writer connection whose every commit is flushed before it returns."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await conn.execute("SET synchronous_commit = on")
    yield conn
    await conn.close()


@pytest.fixture(name="feeds")
async def _feeds() -> AsyncIterator[Callable[[Any], Any]]:
    """Register feeds built in a test; each is closed when it ends."""
    made: list[ChangeFeed] = []

    def keep(feed: Any) -> Any:
        made.append(feed)
        return feed

    yield keep
    for feed in made:
        await feed.close()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def log_feed(dsn: str, **kw: Any) -> WarehouseLog:
    defaults: dict[str, Any] = {"timeout": TIMEOUT, "slot": unique("bizfed_test"), "drop_on_close": True}
    return WarehouseLog(dsn, **(defaults | kw))


async def new_item(db: Writer, key: str) -> None:
    await db.execute("INSERT INTO items (sku, name, updated_at) VALUES (%s, 'thing', clock_timestamp())", (key,))


async def new_movement(db: Writer, key: str, reference: str | None) -> None:
    await db.execute("INSERT INTO movements (sku, location_code, qty, kind, reference, moved_at) "
                     "VALUES (%s, 'BCN1', -1, 'shipment', %s, now())", (key, reference))


async def now(db: Writer) -> datetime:
    row = await (await db.execute("SELECT now()")).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def polled(feed: ChangeFeed, until: Callable[[Batch], bool]) -> Batch:
    """The first batch ``until`` accepts, polling (never acking) for a few seconds."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        batch = await feed.poll()
        if until(batch) or asyncio.get_running_loop().time() > deadline:
            return batch
        await asyncio.sleep(0.1)


async def has(dsn: str, query: str, name: str) -> bool:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await (await conn.execute(query, (name,))).fetchone() is not None


SLOT_EXISTS = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s"
PUBLICATION_EXISTS = "SELECT 1 FROM pg_publication WHERE pubname = %s"


# --- the log ------------------------------------------------------------------------------------------

async def test_log_reports_each_row_with_what_it_touches(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(log_feed(dsn))
    await feed.start()
    assert feed.mode == "log"
    before = await now(db)
    await db.execute("INSERT INTO locations VALUES ('SGP1', 'Singapore', 'Singapore', 'SG', 'Asia/Singapore')")
    await new_item(db, "WH-000101")
    await db.execute("UPDATE items SET name = 'renamed', updated_at = now() WHERE sku = 'WH-000101'")
    await db.execute("INSERT INTO stock VALUES ('WH-000101', 'BCN1', 5, 0, now())")
    await db.execute("UPDATE stock SET on_hand = 4 WHERE sku = 'WH-000101'")
    await db.execute("DELETE FROM stock WHERE sku = 'WH-000101'")
    await new_movement(db, "WH-000101", " SO-2024-000042")
    await new_movement(db, "WH-000101", None)
    await new_item(db, "wh-000102 ")
    await db.execute("DELETE FROM items WHERE sku = 'wh-000102 '")
    await db.execute("UPDATE items SET sku = 'WH-000103' WHERE sku = 'WH-000101' AND false")  # touches nothing

    batch = await polled(feed, lambda b: len(b.changes) >= 10)
    assert batch.complete
    assert seen(batch) == [
        ("locations", set()),
        ("items", {sku("WH-000101")}), ("items", {sku("WH-000101")}),
        ("stock", {sku("WH-000101")}), ("stock", {sku("WH-000101")}), ("stock", {sku("WH-000101")}),
        ("movements", {sku("WH-000101"), order("SO-2024-000042")}), ("movements", {sku("WH-000101")}),
        ("items", {sku("WH-000102")}), ("items", {sku("WH-000102")}),
    ]
    times = [change.committed_at for change in batch.changes]
    assert all(t is not None and t.tzinfo is not None and before <= t <= before + timedelta(minutes=1) for t in times)
    assert times == sorted(t for t in times if t is not None)
    assert times[0] != times[-1]
    await feed.ack(batch)
    assert (await feed.poll()).changes == ()
    assert feed.queries > 0
    details = feed.details()
    assert details["slot_created"] is True
    assert isinstance(details["retained_bytes"], int)


async def test_log_a_key_change_names_old_and_new_sku(dsn: str, db: Writer, feeds: Any) -> None:
    await new_item(db, "WH-000110")
    feed = feeds(log_feed(dsn))
    await feed.start()
    await db.execute("UPDATE items SET sku = 'WH-000111' WHERE sku = 'WH-000110'")
    batch = await polled(feed, lambda b: bool(b.changes))
    assert seen(batch) == [("items", {sku("WH-000110"), sku("WH-000111")})]


async def test_log_a_movement_deleted_or_updated_is_incomplete(dsn: str, db: Writer, feeds: Any) -> None:
    """A movement's key is its id: its delete or update cannot say what the row touched before."""
    await new_item(db, "WH-000120")
    await new_movement(db, "WH-000120", "SO-1")
    feed = feeds(log_feed(dsn))
    await feed.start()
    await db.execute("UPDATE movements SET reference = 'SO-2' WHERE sku = 'WH-000120'")
    batch = await polled(feed, lambda b: not b.complete)
    assert not batch.complete
    await feed.ack(batch)
    await db.execute("DELETE FROM movements WHERE sku = 'WH-000120'")
    batch = await polled(feed, lambda b: not b.complete)
    assert not batch.complete
    await feed.ack(batch)
    await new_movement(db, "WH-000120", None)
    batch = await polled(feed, lambda b: bool(b.changes))
    assert batch.complete
    assert seen(batch) == [("movements", {sku("WH-000120")})]


async def test_log_truncate_is_incomplete(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(log_feed(dsn))
    await feed.start()
    await db.execute("TRUNCATE movements")
    assert not (await polled(feed, lambda b: not b.complete)).complete


async def test_log_two_polls_without_ack_repeat(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(log_feed(dsn))
    await feed.start()
    await new_item(db, "WH-000130")
    first = await polled(feed, lambda b: bool(b.changes))
    again = await feed.poll()
    assert seen(first) == [("items", {sku("WH-000130")})]
    assert again.changes[:len(first.changes)] == first.changes


async def test_log_a_change_between_poll_and_ack_is_not_lost(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(log_feed(dsn))
    await feed.start()
    await new_item(db, "WH-000140")
    first = await polled(feed, lambda b: bool(b.changes))
    await new_item(db, "WH-000141")
    await feed.ack(first)
    second = await polled(feed, lambda b: bool(b.changes))
    assert seen(second) == [("items", {sku("WH-000141")})]


async def test_log_resumes_from_the_ack_after_its_connection_is_killed(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(log_feed(dsn))
    await feed.start()
    await new_item(db, "WH-000150")
    acked = await polled(feed, lambda b: bool(b.changes))
    await feed.ack(acked)
    await new_item(db, "WH-000151")
    assert seen(await polled(feed, lambda b: bool(b.changes))) == [("items", {sku("WH-000151")})]   # not acked
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND application_name = 'bizfed-warehouse-log'")
    await new_item(db, "WH-000152")
    await new_movement(db, "WH-000152", "SO-9")
    with pytest.raises(SourceUnavailable):
        await feed.poll()
    batch = await polled(feed, lambda b: len(b.changes) >= 3)
    assert batch.complete
    assert seen(batch) == [("items", {sku("WH-000151")}), ("items", {sku("WH-000152")}),
                           ("movements", {sku("WH-000152"), order("SO-9")})]


async def test_log_slot_dropped_under_it_is_recreated(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(log_feed(dsn))
    await feed.start()
    slot = feed.details()["slot"]
    await db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    lost = await feed.poll()
    assert not lost.complete
    assert await has(dsn, SLOT_EXISTS, slot)
    assert not (await feed.poll()).complete   # until the incomplete batch is acked
    await feed.ack(lost)
    await new_item(db, "WH-000160")
    batch = await polled(feed, lambda b: bool(b.changes))
    assert batch.complete
    assert seen(batch) == [("items", {sku("WH-000160")})]


async def test_log_over_the_retention_limit_starts_a_fresh_slot(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(log_feed(dsn, max_retained_bytes=1))
    await feed.start()
    await new_item(db, "WH-000170")
    batch = await feed.poll()
    assert not batch.complete
    assert batch.changes == ()
    assert feed.details()["resets"] == 1
    assert await has(dsn, SLOT_EXISTS, feed.details()["slot"])


async def test_log_over_the_limit_a_slot_not_its_own_is_reported_or_advanced(dsn: str, db: Writer,
                                                                            feeds: Any) -> None:
    slot, publication = unique("bizfed_test_pre"), unique("bizfed_test_pub")
    await db.execute(f"CREATE PUBLICATION {publication} FOR TABLE items, stock, movements, locations")
    await db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    await new_item(db, "WH-000175")
    kept = feeds(log_feed(dsn, slot=slot, publication=publication, max_retained_bytes=1))
    await kept.start()
    batch = await polled(kept, lambda b: bool(b.changes))
    assert batch.complete   # read on, not reset: only reported
    assert seen(batch) == [("items", {sku("WH-000175")})]
    assert kept.details()["over_limit"] is True
    assert kept.details()["resets"] == 0
    await kept.close()

    advanced = feeds(log_feed(dsn, slot=slot, publication=publication, max_retained_bytes=1,
                              advance_existing_slot=True))
    await advanced.start()
    assert not (await advanced.poll()).complete
    assert advanced.details()["resets"] == 1
    await advanced.close()
    assert await has(dsn, SLOT_EXISTS, slot)   # advanced, never dropped
    await db.execute(f"DROP PUBLICATION {publication}")


async def test_log_a_slot_older_than_the_publication_it_creates_is_unavailable(dsn: str, db: Writer,
                                                                               feeds: Any) -> None:
    slot, publication = unique("bizfed_test_pre"), unique("bizfed_test_pub")
    await db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    feed = feeds(log_feed(dsn, slot=slot, publication=publication))
    with pytest.raises(LogUnavailable, match="older than publication"):
        await feed.start()
    await feed.close()
    advancing = feeds(log_feed(dsn, slot=slot, publication=publication, advance_existing_slot=True))
    await advancing.start()
    assert not (await advancing.poll()).complete
    await new_item(db, "WH-000178")
    batch = await polled(advancing, lambda b: bool(b.changes))
    assert seen(batch) == [("items", {sku("WH-000178")})]
    assert await has(dsn, SLOT_EXISTS, slot)


async def test_log_never_drops_a_slot_or_publication_it_did_not_create(dsn: str, db: Writer, feeds: Any) -> None:
    slot, publication = unique("bizfed_test_pre"), unique("bizfed_test_pub")
    await db.execute(f"CREATE PUBLICATION {publication} FOR TABLE items, stock, movements, locations")
    await db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    try:
        feed = feeds(WarehouseLog(dsn, timeout=TIMEOUT, slot=slot, publication=publication, drop_on_close=True))
        await feed.start()
        assert feed.details()["slot_created"] is False
        assert feed.details()["publication_created"] is False
        await new_item(db, "WH-000180")
        batch = await polled(feed, lambda b: bool(b.changes))
        assert seen(batch) == [("items", {sku("WH-000180")})]
        await feed.ack(batch)
        await feed.close()
        assert await has(dsn, SLOT_EXISTS, slot)
        assert await has(dsn, PUBLICATION_EXISTS, publication)
    finally:
        await db.execute(f"DROP PUBLICATION IF EXISTS {publication}")


async def test_log_unavailable_to_a_role_without_replication(dsn: str, db: Writer, feeds: Any) -> None:
    slot, role = unique("bizfed_test_pre"), unique("bizfed_test_norepl")
    await db.execute(f"CREATE ROLE {role} LOGIN")
    await db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    feed = feeds(WarehouseLog(with_user(dsn, role), timeout=TIMEOUT, slot=slot, drop_on_close=True))
    with pytest.raises(LogUnavailable, match="REPLICATION") as raised:
        await feed.start()
    assert raised.value.source == "warehouse"
    await feed.close()
    assert await has(dsn, SLOT_EXISTS, slot)


async def test_log_unavailable_to_a_role_that_may_not_create_the_publication(dsn: str, db: Writer,
                                                                             feeds: Any) -> None:
    role, publication = unique("bizfed_test_repl"), unique("bizfed_test_pub")
    await db.execute(f"CREATE ROLE {role} LOGIN REPLICATION")
    feed = feeds(log_feed(with_user(dsn, role), publication=publication))
    with pytest.raises(LogUnavailable, match=f"publication {publication}.*ownership"):
        await feed.start()
    assert not await has(dsn, PUBLICATION_EXISTS, publication)
    assert not await has(dsn, SLOT_EXISTS, feed.details()["slot"])


@pytest.mark.parametrize("make", [
    lambda dsn: log_feed(dsn, timeout=GIVE_UP_S),
    lambda dsn: WarehousePoll(dsn, timeout=GIVE_UP_S),
], ids=["log", "poll"])
async def test_a_round_the_server_never_answers_costs_one_round(
        make: Callable[[str], Any], dsn: str, db: Writer, feeds: Any,
        proxy_factory: Callable[[int], FaultProxy]) -> None:
    proxy = proxy_factory(dsn_port(dsn))
    feed = feeds(make(dsn_with_port(dsn, proxy.port)))
    await feed.start()
    await new_item(db, unique("WH-BH").upper())
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(SourceTimeout):
        await feed.poll()
    assert time.monotonic() - started <= GIVE_UP_S + ROUND_MARGIN + 0.5
    proxy.pass_through()
    await new_item(db, unique("WH-BH").upper())
    deadline = time.monotonic() + 10
    while True:
        try:
            batch = await feed.poll()
        except ConnectorError:
            assert time.monotonic() < deadline, "the feed did not recover after the blackhole"
            await asyncio.sleep(0.1)
            continue
        if len(batch.changes) >= 2 or time.monotonic() > deadline:
            break
    assert len(batch.changes) == 2


# --- the poll -----------------------------------------------------------------------------------------

def poll_feed(dsn: str) -> WarehousePoll:
    return WarehousePoll(dsn, timeout=TIMEOUT)


def as_set(batch: Batch) -> set[tuple[str, frozenset[Ref]]]:
    return {(c.table, c.refs) for c in batch.changes}


async def test_poll_reports_each_row_with_what_it_touches(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(poll_feed(dsn))
    await feed.start()
    assert feed.mode == "poll"
    await new_item(db, "wh-000201 ")
    await db.execute("UPDATE items SET name = 'renamed', updated_at = clock_timestamp() WHERE sku = 'wh-000201 '")
    await db.execute("INSERT INTO stock VALUES ('wh-000201 ', 'BCN1', 5, 0, clock_timestamp())")
    await new_movement(db, "wh-000201 ", "SO-2024-000201")
    batch = await polled(feed, lambda b: len(b.changes) >= 3)
    assert batch.complete
    assert as_set(batch) == {("items", frozenset({sku("WH-000201")})), ("stock", frozenset({sku("WH-000201")})),
                             ("movements", frozenset({sku("WH-000201"), order("SO-2024-000201")}))}
    assert all(change.committed_at is None for change in batch.changes)
    await feed.ack(batch)
    assert (await feed.poll()).changes == ()

    await db.execute("UPDATE stock SET on_hand = 4, updated_at = clock_timestamp() WHERE sku = 'wh-000201 '")
    batch = await polled(feed, lambda b: bool(b.changes))
    assert seen(batch) == [("stock", {sku("WH-000201")})]
    await feed.ack(batch)

    await db.execute("DELETE FROM stock WHERE sku = 'wh-000201 '")   # invisible to a watermark but for the count
    batch = await feed.poll()
    assert not batch.complete
    await feed.ack(batch)
    assert (await feed.poll()).complete
    assert feed.details()["stock_rows"] is not None
    assert feed.queries > 0


async def test_poll_two_polls_without_ack_repeat(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(poll_feed(dsn))
    await feed.start()
    await new_item(db, "WH-000210")
    first = await polled(feed, lambda b: bool(b.changes))
    again = await feed.poll()
    assert seen(first) == [("items", {sku("WH-000210")})]
    assert set(first.changes) <= set(again.changes)


async def test_poll_a_change_between_poll_and_ack_is_not_lost(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(poll_feed(dsn))
    await feed.start()
    await new_item(db, "WH-000220")
    first = await polled(feed, lambda b: bool(b.changes))
    await new_item(db, "WH-000221")
    await new_movement(db, "WH-000221", None)
    await feed.ack(first)
    second = await polled(feed, lambda b: len(b.changes) >= 2)
    assert as_set(second) == {("items", frozenset({sku("WH-000221")})), ("movements", frozenset({sku("WH-000221")}))}


async def test_poll_resumes_from_the_ack_after_its_connection_is_killed(dsn: str, db: Writer, feeds: Any) -> None:
    feed = feeds(poll_feed(dsn))
    await feed.start()
    await new_item(db, "WH-000230")
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND application_name = 'bizfed-warehouse-poll'")
    await new_item(db, "WH-000231")
    with pytest.raises(SourceUnavailable):
        await feed.poll()
    batch = await polled(feed, lambda b: len(b.changes) >= 2)
    assert as_set(batch) == {("items", frozenset({sku("WH-000230")})), ("items", frozenset({sku("WH-000231")}))}


def test_feeds_are_change_feeds(dsn: str) -> None:
    feeds: list[ChangeFeed] = [WarehouseLog(dsn), WarehousePoll(dsn)]
    assert [f.source for f in feeds] == ["warehouse", "warehouse"]
