"""Clean, typed records in the canonical spelling every connector returns.

SKUs are the warehouse spelling (``WH-000123``), account numbers are
unpadded, money is ``Decimal`` with its currency, times are aware UTC.

Records are immutable by convention (nothing assigns to a field after
construction; cached records are shared between requests) but not
``frozen``: a frozen dataclass sets each field through
``object.__setattr__``, which made building records three times slower and
capped bulk reads at about 0.65 of the raw driver's rate.

A record in one currency (an order, an invoice, an account) names it once in
``currency`` and holds its amounts as plain ``Decimal``; ``Money`` is for an
amount that stands alone. Four ``Money`` per invoice were half the cost of
building one in a bulk read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

OrderStatus = Literal["draft", "confirmed", "shipped", "delivered", "cancelled"]
InvoiceStatus = Literal["open", "paid", "void"]
AccountStatus = Literal["active", "on_hold", "closed"]


@dataclass(slots=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(slots=True)
class Location:
    code: str
    name: str
    city: str
    country: str
    timezone: str


@dataclass(slots=True)
class Item:
    sku: str
    name: str
    description: str | None
    unit: str
    weight_grams: int | None
    active: bool
    updated_at: datetime


class _Stock:
    """What is on hand and reserved of a SKU, somewhere; ``available`` is what is left to promise."""

    __slots__ = ()
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(slots=True)
class ItemStock(_Stock):
    """An item with its stock summed over the locations asked for."""

    sku: str
    name: str
    unit: str
    active: bool
    on_hand: int
    reserved: int


@dataclass(slots=True)
class StockLevel(_Stock):
    sku: str
    location: str
    on_hand: int
    reserved: int


@dataclass(slots=True)
class StockTotal(_Stock):
    sku: str
    on_hand: int
    reserved: int


@dataclass(slots=True)
class Customer:
    id: int
    name: str
    email: str | None
    country: str | None
    created_at: datetime
    acct_no: str | None


@dataclass(slots=True)
class OrderStats:
    count: int
    last_ordered_at: datetime | None


@dataclass(slots=True)
class Product:
    id: int
    title: str
    sku: str | None
    list_price: Money


@dataclass(slots=True)
class ProductSales:
    units_sold: int
    orders: int
    last_ordered_at: datetime | None


@dataclass(slots=True)
class Order:
    """An order is in one currency; its total is in it (as an invoice's amounts are)."""

    order_no: str
    customer_id: int
    status: OrderStatus
    ordered_at: datetime
    ship_from: str | None
    currency: str
    total: Decimal


@dataclass(slots=True)
class OrderLine:
    order_no: str
    line_no: int
    product_id: int
    sku: str | None
    title: str
    qty: int
    unit_price: Money
    discount_pct: Decimal
    total: Money


@dataclass(slots=True)
class SoldItem:
    sku: str
    units_sold: int


@dataclass(slots=True)
class Account:
    """An account trades in one currency; its limit and balances are in it."""

    acct_no: str
    name: str
    status: AccountStatus | None
    currency: str
    credit_limit: Decimal
    open_balance: Decimal
    overdue_balance: Decimal
    open_invoices: int


@dataclass(slots=True)
class Invoice:
    """An invoice is in one currency; its four amounts are in it."""

    invno: str
    acct_no: str
    order_no: str | None
    issued_on: date | None
    due_on: date | None
    currency: str
    amount: Decimal
    tax: Decimal
    paid: Decimal
    balance: Decimal
    status: InvoiceStatus | None
    overdue: bool
