"""Derived facts of the canonical model: payment status and fulfilment."""

from __future__ import annotations

from decimal import Decimal

from federation.model import fulfilment, money, payment_status
from federation.records import Invoice, Money


def _inv(status: str, paid: str = "0.00", amount: str = "10.00") -> Invoice:
    return Invoice("INV000000001", "C0000001", "SO-2024-000001", None, None, "EUR", Decimal(amount),
                   Decimal("0.00"), Decimal(paid), Decimal("0.00"), status, False)  # type: ignore[arg-type]


def test_payment_status_rules():
    """unbilled without non-void invoices, paid when all are paid, partial with a payment on an open one."""
    assert payment_status([]) == "unbilled"
    assert payment_status([_inv("void")]) == "unbilled"
    assert payment_status([_inv("paid", "10.00"), _inv("void")]) == "paid"
    assert payment_status([_inv("paid", "10.00"), _inv("open", "2.00")]) == "partial"
    assert payment_status([_inv("open")]) == "open"


def test_fulfilment_rules():
    """none when nothing shipped, complete when every SKU shipped its ordered sum, else partial."""
    assert fulfilment({}, {}) == "none"
    assert fulfilment({"WH-000001": 3, "WH-000002": 1}, {}) == "none"
    assert fulfilment({"WH-000001": 3, "WH-000002": 1}, {"WH-000001": 3, "WH-000002": 2}) == "complete"
    assert fulfilment({"WH-000001": 3, "WH-000002": 1}, {"WH-000001": 1, "WH-000002": 1}) == "partial"


def test_fulfilment_sums_a_sku_over_its_lines():
    """A SKU on two lines is met only when its shipment reaches the sum; a SKU the warehouse lacks never ships."""
    assert fulfilment({"WH-000001": 2 + 3}, {"WH-000001": 3}) == "partial"
    assert fulfilment({"WH-000001": 5}, {"WH-000001": 5}) == "complete"
    assert fulfilment({"WH-000001": 1, "WH-999999": 1}, {"WH-000001": 1}) == "partial"


def test_money_is_an_exact_string():
    """Money renders as a two-decimal string with its currency."""
    assert money(Money(Decimal("5"), "USD")) == {"amount": "5.00", "currency": "USD"}
    assert money(None) is None


async def test_gather_raises_the_first_failure_itself():
    """Two calls failing together surface as one plain error, not an exception group."""
    import asyncio

    import pytest

    from federation.errors import PrimaryUnavailable
    from federation.fanout import gather

    async def down() -> None:
        await asyncio.sleep(0)
        raise PrimaryUnavailable("warehouse", "timeout", 5)

    with pytest.raises(PrimaryUnavailable):
        await gather(down(), down())
