"""The Accounting polling feed against seeded Accounting on MariaDB, through ODBC: every change a
clerk makes is reported with what it touches, repeated until acknowledged, and never lost to a killed
connection or a server that stops answering."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pyodbc
import pytest

from connectors.accounting_changes import TABLES, AccountingPoll
from deploy.legacy.schema import LegacyTargets
from deploy.local.addresses import odbc_port, odbc_with_port
from deploy.local.faultproxy import FaultProxy
from federation.changes import Ref
from federation.errors import SourceTimeout
from tests.connectors.feeds import one, poll_until_it_answers, refs, settled

TIMEOUT = 1.0


@pytest.fixture(name="db", scope="module")
def _db(seeded: LegacyTargets) -> Iterator[pyodbc.Connection]:
    """A clerk's connection: what it writes, the feed must see."""
    conn = pyodbc.connect(seeded.accounting_odbc, autocommit=True, timeout=5)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(name="feed")
async def _feed(seeded: LegacyTargets) -> AsyncIterator[AccountingPoll]:
    feed = AccountingPoll(seeded.accounting_odbc, timeout=TIMEOUT, login_timeout=TIMEOUT)
    await feed.start()
    try:
        yield feed
    finally:
        await feed.close()






def invoice_with_order(db: pyodbc.Connection) -> tuple[str, str, str]:
    invno, custno, ordref = one(db, "SELECT INVNO, CUSTNO, ORDREF FROM ARINVH WHERE ORDREF <> '' AND STATUS = 'O' "
                                    "ORDER BY INVNO OFFSET 0 ROWS FETCH NEXT 1 ROWS ONLY")
    return invno.strip(), custno.strip(), ordref.strip()


async def test_a_quiet_feed_reports_nothing_and_costs_one_query_per_table(feed: AccountingPoll) -> None:
    before = feed.queries
    for _ in range(5):
        batch = await settled(feed)
        assert batch.changes == ()
        assert batch.complete
    assert feed.queries - before == 5 * len(TABLES)
    assert feed.mode == "poll"
    facts = json.loads(json.dumps(feed.details()))
    assert facts["rows_held"] > 1000
    assert facts["round_s"] < TIMEOUT


async def test_a_credit_limit_and_a_same_length_name_edit_name_the_account(feed: AccountingPoll,
                                                                           db: pyodbc.Connection) -> None:
    (a, name), (b, _) = db.execute("SELECT CUSTNO, CUSTNM FROM ARCUST ORDER BY CUSTNO "
                                   "OFFSET 0 ROWS FETCH NEXT 2 ROWS ONLY").fetchall()
    edited = name[:-1] + ("A" if name[-1] != "A" else "B")
    db.execute("UPDATE ARCUST SET CUSTNM = ? WHERE CUSTNO = ?", edited, a)
    db.execute("UPDATE ARCUST SET CRLIMIT = CRLIMIT + 100 WHERE CUSTNO = ?", b)

    batch = await settled(feed)
    assert {c.table for c in batch.changes} == {"ARCUST"}
    assert refs(batch) == {Ref("account", a.strip()), Ref("account", b.strip())}
    assert all(c.committed_at is None for c in batch.changes)
    assert (await feed.poll()).changes == ()


async def test_credit_limits_swapped_between_two_accounts_are_seen(feed: AccountingPoll,
                                                                   db: pyodbc.Connection) -> None:
    (a, limit), (b, _) = db.execute(
        "SELECT CUSTNO, CRLIMIT FROM ARCUST ORDER BY CUSTNO OFFSET 2 ROWS FETCH NEXT 2 ROWS ONLY").fetchall()
    db.execute("UPDATE ARCUST SET CRLIMIT = ? WHERE CUSTNO = ?", limit + 1, b)
    await settled(feed)
    db.execute("UPDATE ARCUST SET CRLIMIT = ? WHERE CUSTNO = ?", limit + 1, a)
    db.execute("UPDATE ARCUST SET CRLIMIT = ? WHERE CUSTNO = ?", limit, b)

    assert refs(await settled(feed)) == {Ref("account", a.strip()), Ref("account", b.strip())}


async def test_a_voided_invoice_names_its_order_and_account(feed: AccountingPoll, db: pyodbc.Connection) -> None:
    invno, custno, ordref = invoice_with_order(db)
    db.execute("UPDATE ARINVH SET STATUS = 'V' WHERE INVNO = ?", invno)

    batch = await settled(feed)
    assert [c.table for c in batch.changes] == ["ARINVH"]
    assert refs(batch) == {Ref("order", ordref), Ref("account", custno)}


async def test_an_invoice_moved_to_another_account_names_both(feed: AccountingPoll, db: pyodbc.Connection) -> None:
    invno, custno, ordref = invoice_with_order(db)
    other = one(db, "SELECT MAX(CUSTNO) FROM ARCUST")[0].strip()
    db.execute("UPDATE ARINVH SET CUSTNO = ? WHERE INVNO = ?", other, invno)

    assert refs(await settled(feed)) == {Ref("order", ordref), Ref("account", custno), Ref("account", other)}
    db.execute("UPDATE ARINVH SET CUSTNO = ? WHERE INVNO = ?", custno, invno)
    await settled(feed)


async def test_a_payment_posted_and_removed_names_the_invoices_order_and_account(
        feed: AccountingPoll, db: pyodbc.Connection) -> None:
    invno, custno, ordref = invoice_with_order(db)
    db.execute("INSERT INTO ARPAYM (PAYNO, INVNO, PAYDT, AMTCENTS, METHOD) "
               "VALUES ('PAYTEST00001', ?, 20240105, 500, 'BT')", invno)
    batch = await settled(feed)
    assert [c.table for c in batch.changes] == ["ARPAYM"]
    assert refs(batch) == {Ref("order", ordref), Ref("account", custno)}

    db.execute("DELETE FROM ARPAYM WHERE PAYNO = 'PAYTEST00001'")
    assert refs(await settled(feed)) == {Ref("order", ordref), Ref("account", custno)}


async def test_an_invoice_and_its_payment_posted_in_one_round(feed: AccountingPoll, db: pyodbc.Connection) -> None:
    db.execute("INSERT INTO ARINVH (INVNO, CUSTNO, ORDREF, INVDT, DUEDT, CURRCD, AMTCENTS, TAXCENTS, STATUS) "
               "VALUES ('INVTEST00001', 'C0000001', 'SO-TEST-1', 20240101, 20240201, 'EUR', 1000, 0, 'O')")
    db.execute("INSERT INTO ARPAYM (PAYNO, INVNO, PAYDT, AMTCENTS, METHOD) "
               "VALUES ('PAYTEST00002', 'INVTEST00001', 20240105, 1000, 'BT')")
    batch = await settled(feed)
    assert {c.table: c.refs for c in batch.changes} == {
        "ARINVH": {Ref("order", "SO-TEST-1"), Ref("account", "C0000001")},
        "ARPAYM": {Ref("order", "SO-TEST-1"), Ref("account", "C0000001")}}

    # The invoice deleted with its payment: the payment's refs come from what was held.
    db.execute("DELETE FROM ARPAYM WHERE PAYNO = 'PAYTEST00002'")
    db.execute("DELETE FROM ARINVH WHERE INVNO = 'INVTEST00001'")
    batch = await settled(feed)
    assert {c.table: c.refs for c in batch.changes} == {
        "ARINVH": {Ref("order", "SO-TEST-1"), Ref("account", "C0000001")},
        "ARPAYM": {Ref("order", "SO-TEST-1"), Ref("account", "C0000001")}}


async def test_a_standard_cost_changed_and_an_item_added_name_their_skus(feed: AccountingPoll,
                                                                         db: pyodbc.Connection) -> None:
    item = one(db, "SELECT MIN(ITEMNO) FROM ICITEM")[0]
    db.execute("UPDATE ICITEM SET STDCOST = STDCOST + 1 WHERE ITEMNO = ?", item)
    db.execute("INSERT INTO ICITEM (ITEMNO, STDCOST, LASTUPD) VALUES ('wh-test-9', 100, 20240101)")
    assert refs(await settled(feed)) == {Ref("sku", item.strip()), Ref("sku", "WH-TEST-9")}

    db.execute("DELETE FROM ICITEM WHERE ITEMNO = 'wh-test-9'")
    assert refs(await settled(feed)) == {Ref("sku", "WH-TEST-9")}


async def test_a_batch_is_repeated_until_acknowledged(feed: AccountingPoll, db: pyodbc.Connection) -> None:
    item = one(db, "SELECT MAX(ITEMNO) FROM ICITEM")[0]
    db.execute("UPDATE ICITEM SET LASTUPD = LASTUPD + 1 WHERE ITEMNO = ?", item)

    first = await feed.poll()
    second = await feed.poll()
    assert first.changes == second.changes
    assert refs(first) == {Ref("sku", item.strip())}
    await feed.ack(second)
    assert (await feed.poll()).changes == ()


def kill_feed_connections(db: pyodbc.Connection, database: str) -> int:
    """KILL every other connection to ``database``: the feed's."""
    ids = [row[0] for row in db.execute(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()", database).fetchall()]
    for conn_id in ids:
        db.execute(f"KILL {int(conn_id)}")
    return len(ids)



async def test_no_change_is_lost_to_a_killed_connection(feed: AccountingPoll, db: pyodbc.Connection,
                                                        seeded: LegacyTargets) -> None:
    await settled(feed)
    custno = one(db, "SELECT MIN(CUSTNO) FROM ARCUST")[0]
    db.execute("UPDATE ARCUST SET STATUS = CASE WHEN STATUS = 'H' THEN 'A' ELSE 'H' END WHERE CUSTNO = ?", custno)
    database = dict(p.split("=", 1) for p in seeded.accounting_odbc.split(";") if "=" in p)["DATABASE"]
    assert kill_feed_connections(db, database) == 1

    batch = await poll_until_it_answers(feed, 5.0)
    assert refs(batch) == {Ref("account", custno.strip())}


@pytest.fixture(name="proxied")
async def _proxied(seeded: LegacyTargets,
                   proxy_factory: Callable[[int], FaultProxy]) -> AsyncIterator[tuple[AccountingPoll, FaultProxy]]:
    proxy = proxy_factory(odbc_port(seeded.accounting_odbc))
    feed = AccountingPoll(odbc_with_port(seeded.accounting_odbc, proxy.port), timeout=TIMEOUT, login_timeout=TIMEOUT)
    await feed.start()
    try:
        yield feed, proxy
    finally:
        proxy.pass_through()
        await feed.close()


async def test_a_blackholed_round_costs_one_bounded_round_and_loses_nothing(
        proxied: tuple[AccountingPoll, FaultProxy], db: pyodbc.Connection) -> None:
    feed, proxy = proxied
    await settled(feed)
    item = one(db, "SELECT MIN(ITEMNO) FROM ICITEM")[0]
    db.execute("UPDATE ICITEM SET STDCOST = STDCOST + 7 WHERE ITEMNO = ?", item)

    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(SourceTimeout):
        await feed.poll()
    assert time.monotonic() - started < 2 * TIMEOUT + 2.0

    proxy.pass_through()
    batch = await poll_until_it_answers(feed, 15.0)
    assert refs(batch) == {Ref("sku", item.strip())}
    await feed.ack(batch)
    assert (await feed.poll()).changes == ()


async def test_the_native_fingerprint_sees_the_same_changes(seeded: LegacyTargets, db: pyodbc.Connection) -> None:
    feed = AccountingPoll(seeded.accounting_odbc, timeout=TIMEOUT, login_timeout=TIMEOUT, fingerprint="native")
    await feed.start()
    try:
        assert feed.details()["dialect"] == "mysql"
        assert (await settled(feed)).changes == ()
        (custno, name), = db.execute("SELECT CUSTNO, CUSTNM FROM ARCUST ORDER BY CUSTNO DESC "
                                     "OFFSET 0 ROWS FETCH NEXT 1 ROWS ONLY").fetchall()
        edited = name[:-1] + ("A" if name[-1] != "A" else "B")
        db.execute("UPDATE ARCUST SET CUSTNM = ? WHERE CUSTNO = ?", edited, custno)
        invno, inv_custno, ordref = invoice_with_order(db)
        db.execute("UPDATE ARINVH SET TAXCENTS = TAXCENTS + 1 WHERE INVNO = ?", invno)
        before = feed.queries
        assert refs(await settled(feed)) == {Ref("account", custno.strip()), Ref("account", inv_custno),
                                             Ref("order", ordref)}
        assert feed.queries - before == len(TABLES) + 2   # and a narrowing query for each table that changed
    finally:
        await feed.close()
