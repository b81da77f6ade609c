"""Customers: Sales customers with their Accounting account and balances."""

from __future__ import annotations

import asyncio
from typing import Any

from federation.context import RequestContext
from federation.errors import NotFound
from federation.fanout import abandon, optional
from federation.gateway import Gateway
from federation.model import account, amount_in
from federation.paging import Page, page_of
from federation.queries import CustomerFilter
from federation.records import Account, Customer, OrderStats
from federation.tags import SALES_LISTS, account_tag, account_tags, customer_tag

ACCOUNT_FIELDS = ("account_status", "open_balance")


async def list_customers(gw: Gateway, ctx: RequestContext, where: CustomerFilter, after: int | None,
                         limit: int, today: Any) -> Page[dict[str, Any]]:
    customers: list[Customer] = await gw.primary(ctx, "sales", "customers", where, after, limit + 1,
                                               tags=(SALES_LISTS,))
    kept, next_key = page_of(customers, limit, lambda c: c.id)
    acct_nos = tuple(sorted({c.acct_no for c in kept if c.acct_no}))
    accounts: dict[str, Account] | None = None
    if not ctx.finance:
        ctx.redact(*ACCOUNT_FIELDS)
    elif acct_nos:
        accounts = await optional(gw.ask(ctx, "accounting", "accounts", acct_nos, today,
                                              tags=account_tags(acct_nos)))
    else:
        accounts = {}
    rows = []
    for c in kept:
        acc = accounts.get(c.acct_no) if accounts is not None and c.acct_no else None
        rows.append({"id": c.id, "name": c.name, "email": c.email, "country": c.country, "acct_no": c.acct_no,
                     "account_status": acc.status if acc else None,
                     "open_balance": amount_in(acc.open_balance, acc.currency) if acc else None})
    return Page(rows, next_key, limit)


async def get_customer(gw: Gateway, ctx: RequestContext, customer_id: int, today: Any) -> dict[str, Any]:
    tags = (customer_tag(customer_id),)
    stats_task = asyncio.ensure_future(gw.ask(ctx, "sales", "order_stats", (customer_id,), tags=tags))
    try:
        customer: Customer | None = await gw.primary(ctx, "sales", "customer", customer_id, tags=tags)
        if customer is None:
            raise NotFound("customer", customer_id)
        acc: Account | None = None
        if not ctx.finance:
            ctx.redact("account")
        elif customer.acct_no:
            found = await optional(gw.ask(ctx, "accounting", "accounts", (customer.acct_no,), today,
                                          tags=(account_tag(customer.acct_no),)))
            acc = found.get(customer.acct_no) if found else None
        stats: dict[int, OrderStats] | None = await optional(stats_task)
    finally:
        abandon([stats_task])
    order_stats = stats.get(customer_id) if stats is not None else None
    return {
        "id": customer.id, "name": customer.name, "email": customer.email, "country": customer.country,
        "created_at": customer.created_at, "acct_no": customer.acct_no,
        "account": account(acc) if acc else None,
        "orders": None if stats is None else {
            "count": order_stats.count if order_stats else 0,
            "last_ordered_at": order_stats.last_ordered_at if order_stats else None},
    }
