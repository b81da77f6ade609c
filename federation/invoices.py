"""Invoices: Accounting invoice headers with payments, linked to Sales customers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from federation.context import RequestContext
from federation.errors import Forbidden
from federation.fanout import optional
from federation.gateway import Gateway
from federation.model import invoice_row
from federation.paging import Page, page_of
from federation.queries import InvoiceFilter
from federation.records import Customer, Invoice
from federation.tags import ACCOUNTING_LISTS, account_tags, customer_tag


async def list_invoices(gw: Gateway, ctx: RequestContext, where: InvoiceFilter, customer_id: int | None,
                        after: str | None, limit: int) -> Page[dict[str, Any]]:
    if not ctx.finance:
        raise Forbidden("invoices are visible to the finance and admin roles only")
    if customer_id is not None:
        customer: Customer | None = await gw.primary(ctx, "sales", "customer", customer_id,
                                                     tags=(customer_tag(customer_id),))
        acct = customer.acct_no if customer else None
        if acct is None or (where.acct_no is not None and where.acct_no != acct):
            return Page([], None, limit)
        where = replace(where, acct_no=acct)
    invoices: list[Invoice] = await gw.primary(ctx, "accounting", "invoices", where, after, limit + 1,
                                             tags=(ACCOUNTING_LISTS,))
    kept, next_key = page_of(invoices, limit, lambda i: i.invno)
    acct_nos = tuple(sorted({i.acct_no for i in kept}))
    owners: dict[str, Customer] | None = {}
    if acct_nos:
        owners = await optional(gw.ask(ctx, "sales", "customers_by_acct", acct_nos, tags=account_tags(acct_nos)))
    rows = [invoice_row(i, owners[i.acct_no].id if owners and i.acct_no in owners else None) for i in kept]
    return Page(rows, next_key, limit)
