"""SalesLog against the real MariaDB of the private stack: this module's own Sales database, its binlog."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pymysql
import pytest
from sqlalchemy.engine import make_url

from connectors.sales_log import Position, SalesLog
from deploy.local.addresses import url_port, url_with_port
from deploy.local.faultproxy import FaultProxy
from federation.changes import ACCOUNT, CUSTOMER, ORDER, SKU, Batch, Change, LogUnavailable, Ref
from federation.errors import ConnectorError, SourceTimeout

WAIT = 8.0   # seconds a change may take to show up (the API's budget is 2 s; the margin is for a loaded machine)


def connect(url: str, **kw: Any) -> pymysql.connections.Connection[Any]:
    u = make_url(url)
    return pymysql.connect(host=u.host, port=u.port or 3306, user=u.username or "root",
                           password=u.password or "", database=u.database, autocommit=True, **kw)


@pytest.fixture(name="db", scope="module")
def _db(sales_url: str) -> Iterator[pymysql.connections.Connection[Any]]:
    conn = connect(sales_url)
    yield conn
    conn.close()


def run(db: Any, *statements: str) -> None:
    with db.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


@pytest.fixture(name="feed")
async def _feed(sales_url: str) -> AsyncIterator[SalesLog]:
    feed = SalesLog(sales_url, timeout=2.0, heartbeat=0.5)
    await feed.start()
    yield feed
    await feed.close()


async def poll_for(feed: SalesLog, done: Callable[[Batch], bool], *, ack: bool = True) -> Batch:
    """Polls until ``done`` holds for the batch (connection failures on the way are retried)."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            batch = await feed.poll()
            if done(batch):
                if ack:
                    await feed.ack(batch)
                return batch
        except ConnectorError:
            pass
        assert time.monotonic() < deadline, "the change did not show up in time"
        await asyncio.sleep(0.1)


async def kill_stream(feed: SalesLog, db: Any) -> None:
    """KILL the feed's binlog dump connection, once it has one."""
    deadline = time.monotonic() + WAIT
    while feed.details()["connection_id"] is None:
        assert time.monotonic() < deadline, "the stream did not connect"
        await asyncio.sleep(0.05)
    run(db, f"KILL {feed.details()['connection_id']}")


def touched(batch: Batch) -> set[Ref]:
    return {ref for change in batch.changes for ref in change.refs}


def has(*refs: Ref) -> Callable[[Batch], bool]:
    return lambda batch: set(refs) <= touched(batch)


def of(batch: Batch, table: str) -> list[Change]:
    return [c for c in batch.changes if c.table == table]


async def test_rows_of_each_table_become_their_refs(feed: SalesLog, db: Any) -> None:
    started = datetime.now(UTC)
    run(db, "INSERT INTO customers (id, name, created_at, acct_no) VALUES (1, 'Ada', NOW(), 'C0000001')",
        "INSERT INTO products (id, title, sku, list_price, currency) VALUES (10, 'Widget', 'wh-000010', 1, 'EUR')",
        "INSERT INTO orders VALUES ('SO-1', 1, 'draft', NOW(), NULL, 'EUR')",
        "INSERT INTO order_lines (order_no, line_no, product_id, qty, unit_price) VALUES ('SO-1', 1, 10, 2, 1)")
    batch = await poll_for(feed, lambda b: len(b.changes) == 4)
    assert batch.complete
    assert [c.table for c in batch.changes] == ["customers", "products", "orders", "order_lines"]
    # Looked up now, after all four committed: each sees the others' rows.
    assert of(batch, "customers")[0].refs == {Ref(CUSTOMER, "1"), Ref(ACCOUNT, "C0000001"), Ref(ORDER, "SO-1")}
    assert of(batch, "order_lines")[0].refs == {Ref(ORDER, "SO-1"), Ref(SKU, "WH-000010")}
    for change in batch.changes:
        assert change.committed_at is not None
        assert change.committed_at.tzinfo is not None
        assert started - timedelta(seconds=2) <= change.committed_at <= datetime.now(UTC) + timedelta(seconds=2)

    run(db, "UPDATE orders SET status = 'confirmed' WHERE order_no = 'SO-1'",
        "UPDATE customers SET acct_no = 'C0000002' WHERE id = 1",
        "UPDATE products SET sku = 'wh-000011' WHERE id = 10",
        "UPDATE order_lines SET qty = 3 WHERE order_no = 'SO-1'")
    batch = await poll_for(feed, lambda b: len(b.changes) == 4)
    assert of(batch, "orders")[0].refs == {Ref(ORDER, "SO-1"), Ref(CUSTOMER, "1"), Ref(SKU, "WH-000011")}
    assert of(batch, "customers")[0].refs == {Ref(CUSTOMER, "1"), Ref(ACCOUNT, "C0000001"),
                                              Ref(ACCOUNT, "C0000002"), Ref(ORDER, "SO-1")}
    assert of(batch, "products")[0].refs == {Ref(SKU, "WH-000010"), Ref(SKU, "WH-000011"), Ref(ORDER, "SO-1")}
    assert of(batch, "order_lines")[0].refs == {Ref(ORDER, "SO-1"), Ref(SKU, "WH-000011")}

    run(db, "DELETE FROM order_lines", "DELETE FROM orders", "DELETE FROM products", "DELETE FROM customers")
    batch = await poll_for(feed, lambda b: len(b.changes) == 4)
    assert [c.refs for c in batch.changes] == [
        {Ref(ORDER, "SO-1")},   # the product row is gone by the time it is looked up
        {Ref(ORDER, "SO-1"), Ref(CUSTOMER, "1")},
        {Ref(SKU, "WH-000011")},
        {Ref(CUSTOMER, "1"), Ref(ACCOUNT, "C0000002")},
    ]


async def test_a_transaction_is_reported_whole_and_again_until_acked(feed: SalesLog, db: Any) -> None:
    db.begin()
    run(db, *(f"INSERT INTO customers (id, name, created_at) VALUES ({i}, 'n', NOW())" for i in range(20, 30)))
    db.commit()
    first = await poll_for(feed, lambda b: len(b.changes) > 0, ack=False)
    assert len(first.changes) == 10
    queries = feed.queries
    again = await feed.poll()
    assert again.changes == first.changes
    assert feed.queries == queries   # a repeat costs the source nothing: refs are kept with the rows
    await feed.ack(again)
    assert (await feed.poll()).changes == ()
    run(db, "DELETE FROM customers WHERE id >= 20")
    await poll_for(feed, has(Ref(CUSTOMER, "29")))


async def test_other_databases_are_not_reported(feed: SalesLog, db: Any) -> None:
    other = f"other_{uuid.uuid4().hex[:8]}"
    run(db, f"CREATE DATABASE {other}", f"CREATE TABLE {other}.customers (id INT PRIMARY KEY, acct_no TEXT)",
        f"INSERT INTO {other}.customers VALUES (1, 'C1')", f"DROP DATABASE {other}",
        "INSERT INTO customers (id, name, created_at) VALUES (40, 'n', NOW())")
    batch = await poll_for(feed, has(Ref(CUSTOMER, "40")))
    assert [c.table for c in batch.changes] == ["customers"]


async def test_nothing_is_lost_when_the_stream_is_killed(feed: SalesLog, db: Any) -> None:
    run(db, "INSERT INTO customers (id, name, created_at) VALUES (50, 'n', NOW())")
    await poll_for(feed, has(Ref(CUSTOMER, "50")), ack=False)   # seen, not acked
    await kill_stream(feed, db)
    run(db, "INSERT INTO customers (id, name, created_at) VALUES (51, 'n', NOW())")
    batch = await poll_for(feed, has(Ref(CUSTOMER, "50"), Ref(CUSTOMER, "51")))
    assert batch.complete
    assert (await feed.poll()).changes == ()


async def test_a_rotated_binlog_is_followed(feed: SalesLog, db: Any) -> None:
    run(db, "INSERT INTO customers (id, name, created_at) VALUES (60, 'n', NOW())")
    await poll_for(feed, has(Ref(CUSTOMER, "60")), ack=False)
    file = feed.details()["file"]
    run(db, "FLUSH BINARY LOGS", "INSERT INTO customers (id, name, created_at) VALUES (61, 'n', NOW())")
    await poll_for(feed, has(Ref(CUSTOMER, "60"), Ref(CUSTOMER, "61")))
    assert feed.details()["file"] != file
    # A new stream started at the acknowledged position, in the new file, goes on from there.
    await kill_stream(feed, db)
    run(db, "INSERT INTO customers (id, name, created_at) VALUES (62, 'n', NOW())")
    batch = await poll_for(feed, has(Ref(CUSTOMER, "62")))
    assert Ref(CUSTOMER, "61") not in touched(batch)


async def test_a_purged_position_is_reported_incomplete_once(feed: SalesLog, db: Any) -> None:
    # As if the acknowledged file had been purged: a name older than any the server has.
    await feed.ack(Batch(position=Position("binlog.000000", 4, 0)))
    await kill_stream(feed, db)
    incomplete = await poll_for(feed, lambda b: not b.complete)
    assert incomplete.changes == ()
    assert feed.details()["file"] != "binlog.000000"
    run(db, "INSERT INTO customers (id, name, created_at) VALUES (70, 'n', NOW())")
    batch = await poll_for(feed, has(Ref(CUSTOMER, "70")))
    assert batch.complete


async def test_more_than_it_may_hold_is_reported_incomplete_once(sales_url: str, db: Any) -> None:
    feed = SalesLog(sales_url, timeout=2.0, heartbeat=0.5, max_held_rows=5)
    await feed.start()
    try:
        values = ", ".join(f"({i}, 'n', NOW())" for i in range(100, 110))
        run(db, f"INSERT INTO customers (id, name, created_at) VALUES {values}")
        incomplete = await poll_for(feed, lambda b: not b.complete)
        assert len(incomplete.changes) < 10
        assert feed.details()["rows_held"] == 0
        run(db, "INSERT INTO customers (id, name, created_at) VALUES (110, 'n', NOW())")
        batch = await poll_for(feed, has(Ref(CUSTOMER, "110")))
        assert batch.complete
        assert Ref(CUSTOMER, "100") not in touched(batch)
    finally:
        await feed.close()


async def rounds_until_timeout(feed: SalesLog) -> float:
    """Seconds of polling (each round bounded: a hang fails the test) until the feed says it timed out."""
    began = time.monotonic()
    while True:
        try:
            await asyncio.wait_for(feed.poll(), 3)
        except SourceTimeout:
            return time.monotonic() - began
        assert time.monotonic() - began < 10, "the silence was never noticed"
        await asyncio.sleep(0.2)


async def test_a_silent_server_costs_a_round_then_the_stream_resumes(sales_url: str, db: Any) -> None:
    with FaultProxy("127.0.0.1", url_port(sales_url)) as proxy:
        feed = SalesLog(url_with_port(sales_url, proxy.port), timeout=1.0, heartbeat=0.5)
        await feed.start()
        try:
            proxy.blackhole()
            run(db, "INSERT INTO customers (id, name, created_at) VALUES (80, 'n', NOW())")
            assert await rounds_until_timeout(feed) < 8
            proxy.pass_through()
            await poll_for(feed, has(Ref(CUSTOMER, "80")))
        finally:
            await feed.close()


async def test_details_say_where_it_reads(feed: SalesLog) -> None:
    details = feed.details()
    assert isinstance(details["file"], str)
    assert details["file"].startswith("binlog.")
    assert isinstance(details["pos"], int)
    assert details["pos"] > 0
    assert details["server_id"] == feed.server_id >= 0x8000_0000
    assert feed.mode == "log"
    assert feed.source == "sales"
    assert feed.queries > 0


async def test_a_sqlite_url_has_no_log() -> None:
    with pytest.raises(LogUnavailable) as raised:
        await SalesLog("sqlite+aiosqlite:///sales.db").start()
    assert raised.value.source == "sales"


@pytest.fixture(name="limited_user")
def _limited_user(db: Any, sales_url: str) -> Iterator[Callable[..., str]]:
    """Makes users with only the given grants; the URL to connect as each. Dropped afterwards."""
    made: list[str] = []
    database = make_url(sales_url).database

    def user(*server_grants: str) -> str:
        name = f"bizfed_{uuid.uuid4().hex[:8]}"
        made.append(name)
        run(db, f"CREATE USER '{name}'@'%' IDENTIFIED BY 'pw-{name}'",
            f"GRANT SELECT ON `{database}`.* TO '{name}'@'%'",
            *(f"GRANT {g} ON *.* TO '{name}'@'%'" for g in server_grants))
        return make_url(sales_url).set(username=name, password=f"pw-{name}").render_as_string(hide_password=False)

    yield user
    for name in made:
        run(db, f"DROP USER IF EXISTS '{name}'@'%'")


async def test_without_replication_grants_the_log_is_unavailable(limited_user: Callable[..., str]) -> None:
    with pytest.raises(LogUnavailable, match="BINLOG MONITOR") as raised:
        await SalesLog(limited_user()).start()
    assert "pw-" not in str(raised.value)
    with pytest.raises(LogUnavailable, match="REPLICATION SLAVE"):
        await SalesLog(limited_user("BINLOG MONITOR")).start()
    feed = SalesLog(limited_user("BINLOG MONITOR", "REPLICATION SLAVE"))
    await feed.start()
    await feed.close()
