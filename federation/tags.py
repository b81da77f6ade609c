"""Invalidation tags on cached source answers, and what each kind of change drops.

A tag names one thing an answer depends on, in its canonical spelling and under its kind
(``order:SO-2024-000042``, ``sku:WH-000123``, ``account:C0000123``, ``customer:42``), so a change to
one never drops another that happens to be spelled alike. List pages carry their source's list tag:
any change there may move a row in or out of a page.
"""

from __future__ import annotations

from collections.abc import Iterable

from federation.changes import ACCOUNT, CUSTOMER, ORDER, SKU, Ref

WAREHOUSE_LISTS = "list:warehouse"
SALES_LISTS = "list:sales"
ACCOUNTING_LISTS = "list:accounting"
LIST_TAGS = {"warehouse": WAREHOUSE_LISTS, "sales": SALES_LISTS, "accounting": ACCOUNTING_LISTS}


def tag_of(ref: Ref) -> str:
    return f"{ref.kind}:{ref.key}"


def order_tag(order_no: str) -> str:
    return tag_of(Ref(ORDER, order_no))


def sku_tag(sku: str) -> str:
    return tag_of(Ref(SKU, sku))


def account_tag(acct_no: str) -> str:
    return tag_of(Ref(ACCOUNT, acct_no))


def customer_tag(customer_id: int) -> str:
    return tag_of(Ref(CUSTOMER, str(customer_id)))


def sku_tags(skus: Iterable[str]) -> tuple[str, ...]:
    return tuple(sku_tag(s) for s in skus)


def account_tags(acct_nos: Iterable[str]) -> tuple[str, ...]:
    return tuple(account_tag(a) for a in acct_nos)


KINDS = (ORDER, SKU, ACCOUNT, CUSTOMER)


def tags_named(name: str) -> tuple[str, ...]:
    """The tags an operator means by ``name``: a tag itself (``sku:WH-000001``, ``list:sales``), or a bare
    id in any system's spelling, which may be an order number, a SKU or an account number."""
    kind, sep, _ = name.partition(":")
    if sep and (kind in KINDS or kind == "list"):
        return (name,)
    bare = name.strip()
    return tuple(dict.fromkeys((order_tag(bare), sku_tag(bare.upper()), account_tag(bare))))


def path_of(ref: Ref) -> str:
    """The API resource a ref's change shows in, as clients following ``/v1/changes`` are told."""
    if ref.kind == ORDER:
        return f"/v1/orders/{ref.key}"
    if ref.kind == SKU:
        return f"/v1/products/{ref.key}"
    if ref.kind == CUSTOMER:
        return f"/v1/customers/{ref.key}"
    return f"/v1/invoices?acct_no={ref.key}"
