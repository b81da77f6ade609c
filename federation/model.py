"""The canonical model: records from the connectors shaped into the API's fields."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from federation.records import Account, Invoice, Money

CENT = Decimal("0.01")


def money(value: Money | None) -> dict[str, str] | None:
    if value is None:
        return None
    return amount_in(value.amount, value.currency)


def amount_in(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(amount.quantize(CENT)), "currency": currency}


def invoice_in_order(inv: Invoice) -> dict[str, Any]:
    cur = inv.currency
    return {"invno": inv.invno, "status": inv.status, "amount": amount_in(inv.amount, cur),
            "paid": amount_in(inv.paid, cur), "balance": amount_in(inv.balance, cur), "due_on": inv.due_on,
            "overdue": inv.overdue}


def invoice_row(inv: Invoice, customer_id: int | None) -> dict[str, Any]:
    cur = inv.currency
    return {"invno": inv.invno, "acct_no": inv.acct_no, "customer_id": customer_id, "order_no": inv.order_no,
            "issued_on": inv.issued_on, "due_on": inv.due_on, "amount": amount_in(inv.amount, cur),
            "tax": amount_in(inv.tax, cur), "paid": amount_in(inv.paid, cur), "balance": amount_in(inv.balance, cur),
            "status": inv.status, "overdue": inv.overdue}


def account(acc: Account) -> dict[str, Any]:
    return {"acct_no": acc.acct_no, "name": acc.name, "status": acc.status,
            "credit_limit": amount_in(acc.credit_limit, acc.currency),
            "open_balance": amount_in(acc.open_balance, acc.currency),
            "overdue_balance": amount_in(acc.overdue_balance, acc.currency), "open_invoices": acc.open_invoices}


def payment_status(invoices: list[Invoice]) -> str:
    """unbilled / paid / partial / open, as the contract defines them."""
    billed = [i for i in invoices if i.status != "void"]
    if not billed:
        return "unbilled"
    if all(i.status == "paid" for i in billed):
        return "paid"
    if any(i.status == "open" and i.paid > 0 for i in billed):
        return "partial"
    return "open"


def fulfilment(ordered: Mapping[str, int], shipped: Mapping[str, int]) -> str:
    """none / partial / complete from the quantity ordered and shipped of each SKU of an order.

    A SKU may stand on several lines: it is met when its shipment reaches the sum over them.
    """
    if not ordered or all(shipped.get(sku, 0) <= 0 for sku in ordered):
        return "none"
    if all(shipped.get(sku, 0) >= qty for sku, qty in ordered.items()):
        return "complete"
    return "partial"
