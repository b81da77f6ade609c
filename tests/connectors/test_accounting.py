"""Accounting connector against hand-written rows in a fresh MariaDB reached through ODBC."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pyodbc
import pytest

from connectors.accounting import AccountingConnector
from deploy.legacy.schema import LegacyTargets
from federation.errors import SourceTimeout
from federation.queries import InvoiceFilter
from federation.records import Account, Invoice, Money
from tests.connectors.conftest import CONNECT_TIMEOUT, QUERY_TIMEOUT
from tests.servers import odbc_value

TODAY = date(2024, 6, 15)
ARCUST = [  # CUSTNO, CUSTNM, CRLIMIT, CURRCD, STATUS
    ("C0000001  ", "ÅSA O'BRIEN AB", 500000, "EUR", "A"),
    ("C0000002", "東京商事", 100000, "USD", "H"),
    ("C0000003", "CLOSED CO", 0, "EUR", "X"),
    ("C0000004", "ODD STATUS LTD", 1, "EUR", "Q"),
    ("C0000005", "NO INVOICES", 2500, "EUR", "A"),
    ("C0000006", "ØRSTED ÙÚÛ ǘ 東京 D'ÅRBY", 0, "DKK", "A"),
]
ARINVH = [  # INVNO, CUSTNO, ORDREF, INVDT, DUEDT, CURRCD, AMTCENTS, TAXCENTS, STATUS
    ("INV000000001", "C0000001", "SO-2024-000001", 20240110, 20240209, "EUR", 11500, 1995, "O"),
    ("INV000000002", "C0000001", "SO-2024-000002", 20240201, 20240702, "EUR", 1000, 0, "O"),
    ("INV000000003", "C0000001", " " * 20, 20240301, 20240331, "EUR", 2000, 0, "P"),
    ("INV000000004", "C0000001", "SO-2024-000001", 20231345, 0, "EUR", 300, 0, "O"),
    ("INV000000005", "C0000002", "SO-2099-999999", 20240101, 20240131, "USD", 777, 0, "V"),
    ("INV000000006", "C0000002", "SO-2024-000003", 20240101, 20240115, "USD", 500, 0, "O"),
    ("INV000000007", "C0000004", "", 20240101, 20240201, "EUR", 100, 0, "Z"),
    ("INV000000008", "C0000001", "SO-2024-000001", 20240101, 20240614, "EUR", 250, 0, "O"),
    ("INV000000009", "C0000001", "", 20240101, 20240615, "EUR", 400, 0, "O"),
    ("INV000000010", "C0000002", "SO-2024-000010", 20240101, 20231345, "USD", 900, 0, "O"),
]
ARPAYM = [  # PAYNO, INVNO, PAYDT, AMTCENTS, METHOD
    ("PAY000000001", "INV000000001", 20240115, 5000, "BT"),
    ("PAY000000002", "INV000000001", 20240120, 1500, "CC"),
    ("PAY000000003", "INV000000003", 20240310, 2000, "CH"),
    ("PAY000000004", "INV000000005", 20240110, 100, "BT"),
    ("PAY000000005", "INV000000006", 20240110, 600, "BT"),
    ("PAY000000006", "INV999999999", 20240110, 999, "BT"),  # orphan payment
]
ICITEM = [("WH-000001" + " " * 11, 1234, 20240101), ("WH-000002", 5, 0)]


@pytest.fixture(name="rows", scope="module", autouse=True)
def _rows(empty_legacy: LegacyTargets) -> None:
    with pyodbc.connect(empty_legacy.accounting_odbc, autocommit=True, timeout=5) as conn:
        # text as UTF-8: MariaDB's ODBC driver garbles some characters sent as UTF-16
        conn.setencoding(encoding="utf-8")
        cur = conn.cursor()
        cur.executemany("INSERT INTO ARCUST VALUES (?, ?, ?, ?, ?)", ARCUST)
        cur.executemany("INSERT INTO ARINVH VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", ARINVH)
        cur.executemany("INSERT INTO ARPAYM VALUES (?, ?, ?, ?, ?)", ARPAYM)
        cur.executemany("INSERT INTO ICITEM VALUES (?, ?, ?)", ICITEM)


def eur(amount: str, currency: str = "EUR") -> Money:
    return Money(Decimal(amount), currency)


def numbers(found: list[Invoice]) -> list[str]:
    return [i.invno for i in found]


async def test_account_balances_follow_the_legacy_rules(accounting: AccountingConnector) -> None:
    """Open balance sums O balances (negatives too); overdue needs balance > 0 and 0 < DUEDT < today."""
    found = await accounting.accounts(["C0000001", "C0000002", "C0000003", "C9999999"], TODAY)
    d = Decimal
    assert found["C0000001"] == Account("C0000001", "ÅSA O'BRIEN AB", "active", "EUR", d("5000.00"),
                                        d("69.50"), d("52.50"), 5)
    assert found["C0000002"] == Account("C0000002", "東京商事", "on_hold", "USD", d("1000.00"),
                                        d("8.00"), d("9.00"), 2)
    assert found["C0000003"] == Account("C0000003", "CLOSED CO", "closed", "EUR", d("0.00"), d("0.00"),
                                        d("0.00"), 0)
    assert "C9999999" not in found
    assert str(found["C0000003"].open_balance) == "0.00"


async def test_names_survive_every_script(accounting: AccountingConnector) -> None:
    """Account names come back exactly, including characters the driver's UTF-16 path would garble."""
    found = await accounting.accounts(["C0000006"], TODAY)
    assert found["C0000006"].name == "ØRSTED ÙÚÛ ǘ 東京 D'ÅRBY"
    assert (found["C0000006"].currency, str(found["C0000006"].credit_limit)) == ("DKK", "0.00")


async def test_unknown_account_status_is_none_and_row_kept(accounting: AccountingConnector,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """An unknown status letter maps to None with a warning; the account is still reported."""
    found = await accounting.accounts(["C0000004 "], TODAY)
    assert found["C0000004"].status is None
    assert found["C0000004"].open_invoices == 0
    assert "unknown status" in caplog.text


async def test_invoice_derived_fields(accounting: AccountingConnector) -> None:
    """paid sums payments; balance is AMTCENTS − paid for O and 0 otherwise; ORDREF/CUSTNO are unpadded."""
    found = {i.invno: i for i in await accounting.invoices(InvoiceFilter(today=TODAY), None, 50)}
    assert found["INV000000001"] == Invoice(
        "INV000000001", "C0000001", "SO-2024-000001", date(2024, 1, 10), date(2024, 2, 9), "EUR",
        Decimal("115.00"), Decimal("19.95"), Decimal("65.00"), Decimal("50.00"), "open", True)
    paid = found["INV000000003"]
    assert (paid.order_no, paid.status, paid.paid, paid.balance, paid.overdue) == (
        None, "paid", Decimal("20.00"), Decimal("0.00"), False)
    void = found["INV000000005"]
    assert (void.status, void.currency, void.paid, void.balance, void.order_no) == (
        "void", "USD", Decimal("1.00"), Decimal("0.00"), "SO-2099-999999")
    assert found["INV000000006"].balance == Decimal("-1.00")
    assert not found["INV000000006"].overdue


async def test_garbage_dates_and_statuses_keep_the_row(accounting: AccountingConnector) -> None:
    """An impossible date or a zero date reads as None and an unknown status as None; no invoice is dropped."""
    found = {i.invno: i for i in await accounting.invoices(InvoiceFilter(today=TODAY), None, 50)}
    assert sorted(found) == [row[0] for row in ARINVH]
    assert (found["INV000000004"].issued_on, found["INV000000004"].due_on) == (None, None)
    assert not found["INV000000004"].overdue  # DUEDT 0 is "no due date"
    odd = found["INV000000007"]
    assert (odd.status, odd.balance, odd.overdue, odd.order_no) == (None, Decimal("0.00"), False, None)
    # the rule compares integers, so an impossible but past DUEDT still makes an open invoice overdue
    assert (found["INV000000010"].due_on, found["INV000000010"].overdue) == (None, True)


async def test_due_today_is_not_overdue(accounting: AccountingConnector) -> None:
    """Overdue means DUEDT strictly before today (UTC)."""
    found = {i.invno: i for i in await accounting.invoices(InvoiceFilter(today=TODAY), None, 50)}
    assert found["INV000000008"].overdue
    assert not found["INV000000009"].overdue


@pytest.mark.parametrize(("where", "expected"), [
    (InvoiceFilter(status="open", today=TODAY), [1, 2, 4, 6, 8, 9, 10]),
    (InvoiceFilter(status="void", today=TODAY), [5]),
    (InvoiceFilter(overdue=True, today=TODAY), [1, 8, 10]),
    (InvoiceFilter(overdue=False, today=TODAY), [2, 3, 4, 5, 6, 7, 9]),
    (InvoiceFilter(acct_no="C0000002", today=TODAY), [5, 6, 10]),
    (InvoiceFilter(acct_no="C0000001", overdue=True, status="open", today=TODAY), [1, 8]),
    (InvoiceFilter(overdue=True, today=date(2024, 2, 10)), [1, 10]),
])
async def test_invoice_filters_in_sql(accounting: AccountingConnector, where: InvoiceFilter,
                                      expected: list[int]) -> None:
    """Status, overdue and account filters select exactly the invoices the legacy rules name."""
    assert numbers(await accounting.invoices(where, None, 50)) == [f"INV{n:09d}" for n in expected]


async def test_invoice_keyset_pages(accounting: AccountingConnector) -> None:
    """Pages of three, each after the last INVNO of the previous one, walk every invoice once."""
    seen: list[str] = []
    after = None
    while page := await accounting.invoices(InvoiceFilter(today=TODAY), after, 3):
        assert len(page) <= 3
        seen += numbers(page)
        after = page[-1].invno
    assert seen == [row[0] for row in ARINVH]


async def test_invoices_for_orders_by_unpadded_order_number(accounting: AccountingConnector) -> None:
    """Invoices are grouped by order number; an order without invoices maps to an empty list."""
    found = await accounting.invoices_for_orders(["SO-2024-000001", "SO-2024-000003 ", "SO-2024-404404"], TODAY)
    assert {k: numbers(v) for k, v in found.items()} == {
        "SO-2024-000001": ["INV000000001", "INV000000004", "INV000000008"],
        "SO-2024-000003": ["INV000000006"],
        "SO-2024-404404": [],
    }


async def test_std_costs_in_eur_by_canonical_sku(accounting: AccountingConnector) -> None:
    """Standard costs come from ICITEM keyed by canonical SKU, in EUR; unknown SKUs are absent."""
    assert await accounting.std_costs(["wh-000001", " WH-000002", "WH-999999"]) == {
        "WH-000001": eur("12.34"), "WH-000002": eur("0.05")}


class _CountingCursor:
    def __init__(self, cursor: Any, log: list[str]) -> None:
        self._cursor = cursor
        self._log = log

    def execute(self, sql: str, *params: Any) -> Any:
        self._log.append(sql)
        return self._cursor.execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _CountingConnection:
    def __init__(self, conn: Any, log: list[str]) -> None:
        self._conn = conn
        self._log = log

    def cursor(self) -> _CountingCursor:
        return _CountingCursor(self._conn.cursor(), self._log)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _CountingAccounting(AccountingConnector):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.statements: list[str] = []

    def _connect(self) -> Any:
        return _CountingConnection(super()._connect(), self.statements)


@pytest.mark.parametrize(("n", "expected"), [(500, 1), (501, 2)])
async def test_batched_lookup_is_one_statement_per_500_keys(empty_legacy: LegacyTargets,
                                                            closing: Callable[[Any], None], n: int,
                                                            expected: int) -> None:
    """A 500-account lookup is one statement through the cursor; 501 accounts take two."""
    connector = _CountingAccounting(empty_legacy.accounting_odbc, login_timeout=CONNECT_TIMEOUT,
                                    query_timeout=QUERY_TIMEOUT)
    closing(connector)
    await connector.open()
    keys = ["C0000001", *(f"X{i:07d}" for i in range(n - 1))]
    found = await connector.accounts(keys, TODAY)
    assert list(found) == ["C0000001"]
    assert len(connector.statements) == expected


async def test_abandoned_statement_is_cancelled_on_the_server(empty_legacy: LegacyTargets,
                                                              closing: Callable[[Any], None]) -> None:
    """When a call times out, its statement is cancelled on the server instead of running on."""
    connector = AccountingConnector(empty_legacy.accounting_odbc, max_workers=1, login_timeout=1.0,
                                    query_timeout=1.0)
    closing(connector)
    await connector.open()
    heavy = ("SELECT COUNT(*) FROM information_schema.columns a, information_schema.columns b, "
             "information_schema.columns c")
    with pytest.raises(SourceTimeout):
        await connector.call(lambda cur: cur.execute(heavy).fetchall())
    database = odbc_value(empty_legacy.accounting_odbc, "DATABASE")
    deadline = time.monotonic() + 10 * 1.0   # ten query timeouts for the server to end the statement
    with pyodbc.connect(empty_legacy.accounting_odbc, autocommit=True, timeout=5) as conn:
        while running := conn.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? "
                                      "AND INFO LIKE '%information_schema.columns a,%' AND ID <> CONNECTION_ID()",
                                      database).fetchone()[0]:
            assert time.monotonic() < deadline, f"{running} abandoned statement(s) still running on the server"
            await asyncio.sleep(0.1)
    await connector.ping()
