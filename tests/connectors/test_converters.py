"""The bulk lists' page converters, on hand-made rows: unreadable rows are skipped and reported, one by one."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.accounting import _InvoiceReader
from connectors.sales import _orders
from connectors.warehouse import _item_stocks
from federation.records import Invoice, ItemStock, Order

TODAY = 20240615


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_item_stocks_skip_unreadable_rows(caplog: pytest.LogCaptureFixture) -> None:
    """Items: canonical SKU and trimmed unit; a blank or missing SKU, a bad number or a short row is skipped."""
    rows: list[tuple[Any, ...]] = [
        (" wh-000001 ", "Widget", "EA  ", 1, 5, 2),
        (None, "No SKU", "EA", True, 1, 0),
        ("   ", "Blank SKU", "EA", True, 1, 0),
        ("WH-000002", "Bad number", "EA", True, "many", 0),
        ("WH-000003", "Short row", "EA", True, 1),
        ("WH-000004", "Gadget", "KG", False, 0, 0),
    ]
    assert _item_stocks(rows) == [ItemStock("WH-000001", "Widget", "EA", True, 5, 2),
                                  ItemStock("WH-000004", "Gadget", "KG", False, 0, 0)]
    assert warnings(caplog) == [f"warehouse: skipped an unreadable item row ({name})"
                                for name in ("ValueError", "ValueError", "ValueError", "ValueError")]


def test_orders_skip_unreadable_rows(caplog: pytest.LogCaptureFixture) -> None:
    """Orders: aware UTC times, folded status, blank ship_from is None; unreadable orders are skipped."""
    naive = datetime(2024, 1, 2, 3, 4, 5, 6)
    pairs: list[Any] = [
        (("SO-1", 7, " Shipped ", naive, "  ", "EUR "), Decimal("1.50")),
        (("SO-2", 7, "confirmed", "2024-01-02 03:04:05", "BCN1", "EUR"), Decimal("0.00")),
        (("SO-3", 7, "bogus", naive, "BCN1", "EUR"), Decimal("1.00")),
        (("SO-4", 7, "confirmed", naive, "BCN1", "EUR"), None),             # a line was unreadable
        (("SO-5", "seven", "confirmed", naive, "BCN1", "EUR"), Decimal("1.00")),
        (("SO-6", 7, "confirmed", naive, "BCN1"), Decimal("1.00")),
    ]
    found = _orders(pairs)
    assert found == [Order("SO-1", 7, "shipped", naive.replace(tzinfo=UTC), None, "EUR", Decimal("1.50")),
                     Order("SO-2", 7, "confirmed", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "BCN1", "EUR",
                           Decimal("0.00"))]
    assert found[0].ordered_at.tzinfo is UTC
    assert warnings(caplog) == [
        "sales: order SO-3 has an unreadable ordered_at, status or line; skipped",
        "sales: order SO-4 has an unreadable ordered_at, status or line; skipped",
        "sales: skipped an unreadable order row (ValueError)",
        "sales: skipped an unreadable order row (ValueError)",
    ]


def test_invoices_skip_unreadable_rows(caplog: pytest.LogCaptureFixture) -> None:
    """Invoices: cents as money, derived balance and overdue; bad dates are None; unreadable rows are skipped."""
    rows: list[tuple[Any, ...]] = [
        ("INV1  ", "C1  ", "SO-1    ", 20240101, 20240301, "EUR", 1250, 0, "O", Decimal(250)),
        ("INV2", "C1", "    ", 20231345, 0, "EUR", 900, 100, "p ", Decimal(900)),
        ("   ", "C1", "", 20240101, 0, "EUR", 100, 0, "O", 0),                  # blank INVNO
        ("INV3", "C1", "", 20240101, 0, "EUR", "lots", 0, "O", 0),              # unreadable amount
        ("INV4", "C1", "", 20240101, 0, "EUR", None, 0, "V", 0),                # void: no amount needed
        ("INV5", "C1", "", 20240101, 0, "EUR", 100, 0, "O"),                    # short row
    ]
    found = _InvoiceReader(TODAY).read(rows)
    d = Decimal
    assert found == [
        Invoice("INV1", "C1", "SO-1", date(2024, 1, 1), date(2024, 3, 1), "EUR", d("12.50"), d("0.00"),
                d("2.50"), d("10.00"), "open", True),
        Invoice("INV2", "C1", None, None, None, "EUR", d("9.00"), d("1.00"), d("9.00"), d("0.00"), "paid", False),
        Invoice("INV4", "C1", None, date(2024, 1, 1), None, "EUR", d("0.00"), d("0.00"), d("0.00"), d("0.00"),
                "void", False),
    ]
    assert [str(a) for a in (found[0].amount, found[0].tax, found[0].paid, found[1].balance)] == [
        "12.50", "0.00", "2.50", "0.00"]
    assert warnings(caplog) == [
        "accounting: invoice INV2 (and maybe others) has an impossible date 20231345; reported as none",
        "accounting: skipped an unreadable invoice row (ValueError)",   # blank INVNO
        "accounting: skipped an unreadable invoice row (TypeError)",    # text cents
        "accounting: skipped an unreadable invoice row (ValueError)",   # short row
    ]
