"""Clean, typed records in the canonical spelling every connector returns.

SKUs are the warehouse spelling (``WH-000123``), account numbers are
unpadded, money is ``Decimal`` with its currency, times are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

OrderStatus = Literal["draft", "confirmed", "shipped", "delivered", "cancelled"]
InvoiceStatus = Literal["open", "paid", "void"]
AccountStatus = Literal["active", "on_hold", "closed"]


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Location:
    code: str
    name: str
    city: str
    country: str
    timezone: str


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    name: str
    description: str | None
    unit: str
    weight_grams: int | None
    active: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ItemStock:
    """An item with its stock summed over the locations asked for."""

    sku: str
    name: str
    unit: str
    active: bool
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True, slots=True)
class StockLevel:
    sku: str
    location: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True, slots=True)
class StockTotal:
    sku: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    name: str
    email: str | None
    country: str | None
    created_at: datetime
    acct_no: str | None


@dataclass(frozen=True, slots=True)
class OrderStats:
    count: int
    last_ordered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    title: str
    sku: str | None
    list_price: Money


@dataclass(frozen=True, slots=True)
class ProductSales:
    units_sold: int
    orders: int
    last_ordered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Order:
    order_no: str
    customer_id: int
    status: OrderStatus
    ordered_at: datetime
    ship_from: str | None
    currency: str
    total: Money


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class SoldItem:
    sku: str
    units_sold: int


@dataclass(frozen=True, slots=True)
class Account:
    acct_no: str
    name: str
    status: AccountStatus | None
    currency: str
    credit_limit: Money
    open_balance: Money
    overdue_balance: Money
    open_invoices: int


@dataclass(frozen=True, slots=True)
class Invoice:
    invno: str
    acct_no: str
    order_no: str | None
    issued_on: date | None
    due_on: date | None
    amount: Money
    tax: Money
    paid: Money
    balance: Money
    status: InvoiceStatus | None
    overdue: bool
