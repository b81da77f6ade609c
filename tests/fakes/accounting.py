"""An in-memory Accounting: accounts, invoices and standard costs, read as ``connectors/accounting.py`` reads the
receivables package (invoices by invoice number, keyset after one).

As in the package, balances are derived, not stored: an open invoice's balance is its amount less what was
paid, and it is overdue when that is positive and its due date lies before the day asked about; any other
invoice has no balance and is never overdue. An account's open balance, overdue balance and count of open
invoices are summed from its open invoices. The values given for these on ``Invoice`` and ``Account`` records
are not used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from connectors._batch import unique
from connectors._values import text_or_none
from federation.queries import InvoiceFilter
from federation.records import Account, Invoice, Money
from federation.spelling import canonical_sku
from tests.fakes.source import FakeSource

ZERO = Decimal("0.00")
# The package's fixed-width key columns: a longer key matches nothing.
CUSTNO_WIDTH, ORDREF_WIDTH, ITEMNO_WIDTH = 10, 20, 20


class FakeAccounting(FakeSource):
    """The ``Accounting`` port over lists of the core's records; change the rows at will between calls."""

    name = "accounting"

    def __init__(self, *, accounts: Iterable[Account] = (), invoices: Iterable[Invoice] = (),
                 costs: Mapping[str, Money] | None = None) -> None:
        super().__init__()
        self.account_rows: dict[str, Account] = {a.acct_no: a for a in accounts}
        self.invoice_rows: dict[str, Invoice] = {i.invno: i for i in invoices}
        self.cost_rows: dict[str, Money] = dict(costs or {})
        for sku in self.cost_rows:
            if canonical_sku(sku) != sku:
                raise ValueError(f"a fake holds canonical SKUs (WH-000123), not {sku!r}")

    async def accounts(self, acct_nos: Sequence[str], today: date) -> dict[str, Account]:
        async with self._call("accounts"):
            keys = [k for k in unique(text_or_none(a) for a in acct_nos) if len(k) <= CUSTNO_WIDTH]
            return {k: self._balanced(self.account_rows[k], today) for k in keys if k in self.account_rows}

    async def invoices(self, where: InvoiceFilter, after: str | None, limit: int) -> list[Invoice]:
        async with self._call("invoices"):
            today = where.today or datetime.now(UTC).date()
            acct = where.acct_no.strip() if where.acct_no is not None else None
            start = after.strip() if after is not None else None
            found = []
            for invno in sorted(self.invoice_rows):
                inv = settled(self.invoice_rows[invno], today)
                if (start is None or invno > start) and (acct is None or inv.acct_no == acct) \
                        and (where.status is None or inv.status == where.status) \
                        and (where.overdue is None or inv.overdue == where.overdue):
                    found.append(inv)
            return found[:max(limit, 0)]

    async def invoices_for_orders(self, order_nos: Sequence[str], today: date) -> dict[str, list[Invoice]]:
        async with self._call("invoices_for_orders"):
            wanted = [o for o in unique(text_or_none(o) for o in order_nos) if len(o) <= ORDREF_WIDTH]
            found: dict[str, list[Invoice]] = {o: [] for o in wanted}
            for invno in sorted(self.invoice_rows):
                inv = self.invoice_rows[invno]
                if inv.order_no in found:
                    found[inv.order_no].append(settled(inv, today))
            return found

    async def std_costs(self, skus: Sequence[str]) -> dict[str, Money]:
        async with self._call("std_costs"):
            keys = [k for k in unique(canonical_sku(s) for s in skus) if len(k) <= ITEMNO_WIDTH]
            return {k: self.cost_rows[k] for k in keys if k in self.cost_rows}

    def _balanced(self, account: Account, today: date) -> Account:
        open_invoices = [settled(i, today) for i in self.invoice_rows.values()
                         if i.acct_no == account.acct_no and i.status == "open"]
        overdue = sum((i.balance for i in open_invoices
                       if i.balance > 0 and i.due_on is not None and i.due_on < today), ZERO)
        return replace(account, open_balance=sum((i.balance for i in open_invoices), ZERO),
                       overdue_balance=overdue, open_invoices=len(open_invoices))


def settled(invoice: Invoice, today: date) -> Invoice:
    """The invoice with its balance and overdue flag as of ``today``."""
    if invoice.status != "open":
        return replace(invoice, balance=ZERO, overdue=False)
    balance = invoice.amount - invoice.paid
    overdue = balance > 0 and invoice.due_on is not None and invoice.due_on < today
    return replace(invoice, balance=balance, overdue=overdue)
