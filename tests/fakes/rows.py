"""Short builders of the core's records for the fakes, with plain defaults for what a test does not care about.

Derived fields (totals, balances, overdue) are left at zero: the fakes derive them, as the legacy systems do.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from federation.records import (
    Account,
    AccountStatus,
    Customer,
    Invoice,
    InvoiceStatus,
    Item,
    Location,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    StockLevel,
)
from tests.fakes.warehouse import Shipment

T0 = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)
ZERO = Decimal("0.00")


def location(code: str, city: str = "Barcelona", country: str = "ES", timezone: str = "Europe/Madrid") -> Location:
    return Location(code, f"Site {code}", city, country, timezone)


def item(sku: str, name: str | None = None, *, active: bool = True, unit: str = "pcs") -> Item:
    return Item(sku, name or f"Item {sku}", None, unit, None, active, T0)


def stock(sku: str, location_code: str, on_hand: int, reserved: int = 0) -> StockLevel:
    return StockLevel(sku, location_code, on_hand, reserved)


def shipment(order_no: str, sku: str, qty: int) -> Shipment:
    return Shipment(order_no, sku, qty)


def customer(id_: int, name: str | None = None, *, acct_no: str | None = None, country: str | None = "ES",
             created_at: datetime = T0) -> Customer:
    return Customer(id_, name or f"Customer {id_}", f"c{id_}@example.com", country, created_at, acct_no)


def order(order_no: str, customer_id: int, *, status: OrderStatus = "confirmed", ordered_at: datetime = T0,
          ship_from: str | None = None, currency: str = "EUR") -> Order:
    return Order(order_no, customer_id, status, ordered_at, ship_from, currency, ZERO)


def line(order_no: str, line_no: int, sku: str | None, qty: int, unit_price: str = "10.00", *,
         discount_pct: str = "0", product_id: int | None = None, currency: str = "EUR") -> OrderLine:
    return OrderLine(order_no, line_no, product_id if product_id is not None else line_no, sku,
                     f"Product {sku}" if sku else "Service", qty, Money(Decimal(unit_price), currency),
                     Decimal(discount_pct), Money(ZERO, currency))


def product(id_: int, sku: str | None, list_price: str = "10.00", *, currency: str = "EUR",
            title: str | None = None) -> Product:
    return Product(id_, title or f"Product {sku}", sku, Money(Decimal(list_price), currency))


def account(acct_no: str, name: str | None = None, *, status: AccountStatus | None = "active",
            currency: str = "EUR", credit_limit: str = "5000.00") -> Account:
    return Account(acct_no, name or f"Account {acct_no}", status, currency, Decimal(credit_limit), ZERO, ZERO, 0)


def invoice(invno: str, acct_no: str, *, order_no: str | None = None, amount: str = "100.00", paid: str = "0.00",
            status: InvoiceStatus | None = "open", due_on: date | None = None, issued_on: date | None = None,
            tax: str = "0.00", currency: str = "EUR") -> Invoice:
    return Invoice(invno, acct_no, order_no, issued_on, due_on, currency, Decimal(amount), Decimal(tax),
                   Decimal(paid), ZERO, status, False)
