"""OpenAPI descriptions of the /v1 operations: response schemas, parameters, examples."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from sanic_ext.extensions.openapi import definitions as d
from sanic_ext.extensions.openapi import types as oas


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Money(_Model):
    amount: str = Field(pattern=r"^-?\d+\.\d{2}$", examples=["1234.50"])
    currency: str = Field(examples=["EUR"])


class SourceMeta(_Model):
    status: Literal["ok", "stale", "unavailable"]
    cache: Literal["hit", "miss", "stale", "none", "bypass"]
    age_s: float
    error: str | None = None


class Meta(_Model):
    sources: dict[str, SourceMeta]
    partial: bool
    redacted: list[str] | None = None


class PageInfo(_Model):
    next_cursor: str | None
    limit: int


class Location(_Model):
    code: str = Field(examples=["BCN1"])
    name: str
    city: str
    country: str
    timezone: str


class ProductRow(_Model):
    sku: str = Field(examples=["WH-000123"])
    name: str
    unit: str
    active: bool
    on_hand: int
    reserved: int
    available: int
    list_price: Money | None
    std_cost: Money | None


class StockEntry(_Model):
    location: str
    on_hand: int
    reserved: int
    available: int


class SalesSummary(_Model):
    units_sold: int
    orders: int
    last_ordered_at: datetime | None


class Product(_Model):
    sku: str
    name: str
    sales_title: str | None
    description: str | None
    unit: str
    weight_grams: int | None
    active: bool
    stock: list[StockEntry]
    on_hand: int
    reserved: int
    available: int
    list_price: Money | None
    std_cost: Money | None
    sales: SalesSummary | None


class CustomerRow(_Model):
    id: int
    name: str
    email: str | None
    country: str | None
    acct_no: str | None
    account_status: Literal["active", "on_hold", "closed"] | None
    open_balance: Money | None


class Account(_Model):
    acct_no: str
    name: str
    status: Literal["active", "on_hold", "closed"] | None
    credit_limit: Money
    open_balance: Money
    overdue_balance: Money
    open_invoices: int


class OrderCount(_Model):
    count: int
    last_ordered_at: datetime | None


class Customer(_Model):
    id: int
    name: str
    email: str | None
    country: str | None
    created_at: datetime
    acct_no: str | None
    account: Account | None
    orders: OrderCount | None


OrderStatus = Literal["draft", "confirmed", "shipped", "delivered", "cancelled"]
InvoiceStatus = Literal["open", "paid", "void"]


class OrderRow(_Model):
    order_no: str = Field(examples=["SO-2024-000042"])
    customer_id: int
    status: OrderStatus
    ordered_at: datetime
    ship_from: str | None
    total: Money


class OrderLine(_Model):
    line_no: int
    product_id: int
    sku: str | None
    title: str
    qty: int
    unit_price: Money
    discount_pct: str = Field(examples=["12.50"])
    total: Money
    shipped_qty: int | None


class OrderInvoice(_Model):
    invno: str
    status: InvoiceStatus | None
    amount: Money
    paid: Money
    balance: Money
    due_on: date | None
    overdue: bool


class CustomerRef(_Model):
    id: int
    name: str | None


class Order(OrderRow):
    customer: CustomerRef
    lines: list[OrderLine]
    fulfilment: Literal["none", "partial", "complete"] | None
    invoices: list[OrderInvoice] | None
    payment_status: Literal["unbilled", "paid", "partial", "open"] | None


class InvoiceRow(_Model):
    invno: str
    acct_no: str
    customer_id: int | None
    order_no: str | None
    issued_on: date | None
    due_on: date | None
    amount: Money
    tax: Money
    paid: Money
    balance: Money
    status: InvoiceStatus | None
    overdue: bool


class SoldItem(_Model):
    sku: str
    name: str | None
    units_sold: int
    on_hand: int | None
    available: int | None


class Problem(_Model):
    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str


def _envelope(name: str, data: Any, paged: bool) -> type[BaseModel]:
    fields: dict[str, Any] = {"data": (data, ...), "meta": (Meta, ...)}
    if paged:
        fields["page"] = (PageInfo, ...)
    from pydantic import create_model

    model: type[BaseModel] = create_model(name, __base__=_Model, **fields)
    return model


def _param(name: str, description: str, schema: dict[str, Any], location: str = "query",
           required: bool = False) -> d.Parameter:
    rest = {k: v for k, v in schema.items() if k != "type"}
    kind = oas.Integer if schema["type"] == "integer" else oas.String
    typed = kind(**rest)
    return d.Parameter(name, typed, location=location, description=description, required=required)


# The patterns give the shape api/params.py accepts (it also forgives surrounding blanks and letter case),
# so generated clients and fuzzers send values that reach the sources rather than a 400.
_INSTANT = {"type": "string",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
                       r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$"}
_ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_LOCATION = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,8}$"}
_LIST_PARAMS = [
    _param("limit", "Rows per page (1–500, default 50).", {"type": "integer", "minimum": 1, "maximum": 500}),
    _param("cursor", "Opaque cursor from the previous page's `page.next_cursor`.",
           {"type": "string", "pattern": "^[A-Za-z0-9_.=-]{1,512}$"}),
]
_SINCE_UNTIL = [
    _param("since", "Inclusive start: a date (midnight UTC) or an ISO 8601 time.", _INSTANT),
    _param("until", "Exclusive end: a date (midnight UTC) or an ISO 8601 time.", _INSTANT),
]
_BOOL = {"type": "string", "enum": ["true", "false"]}

_OPERATIONS: dict[str, tuple[str, str, Any, bool, list[d.Parameter]]] = {
    "locations": ("List warehouse locations", "warehouse", list[Location], True, []),
    "products": ("List products with stock, list price and standard cost", "warehouse", list[ProductRow], True, [
        _param("q", "Case-insensitive substring of the name or SKU.",
               {"type": "string", "minLength": 1, "maxLength": 100}),
        _param("location", "Sum stock at this location only (items stocked there).", _LOCATION),
        _param("in_stock", "Only items with available > 0 (true) or <= 0 (false).", _BOOL),
        _param("active", "Only active (true) or inactive (false) items.", _BOOL),
    ]),
    "product": ("One product: stock per location, Sales title, price, sales figures, cost", "warehouse",
                Product, False, [_param("sku", "Any spelling of a warehouse SKU, e.g. WH-000123 or wh-000123.",
                                        {"type": "string", "pattern": "^[Ww][Hh]-[0-9]{6}$"}, "path", True)]),
    "customers": ("List customers with their account status and open balance", "sales", list[CustomerRow], True, [
        _param("q", "Case-insensitive substring of the name.", {"type": "string", "minLength": 1, "maxLength": 100}),
        _param("country", "ISO 3166 alpha-2 country code.", {"type": "string", "pattern": "^[A-Za-z]{2}$"}),
    ]),
    "customer": ("One customer with account, balances and order count", "sales", Customer, False,
                 [_param("customer_id", "Sales customer id.", _ID, "path", True)]),
    "orders": ("List orders with totals", "sales", list[OrderRow], True, [
        _param("customer_id", "Sales customer id.", _ID),
        _param("status", "Order status.", {"type": "string", "enum": list(get_args(OrderStatus))}),
        *_SINCE_UNTIL,
    ]),
    "order": ("One order: lines, shipped quantities, fulfilment, invoices, payment status", "sales", Order, False,
              [_param("order_no", "Sales order number, e.g. SO-2024-000042.",
                      {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,20}$"}, "path", True)]),
    "invoices": ("List invoices with paid amount, balance and overdue flag (finance)", "accounting",
                 list[InvoiceRow], True, [
                     _param("customer_id", "Sales customer id.", _ID),
                     _param("acct_no", "Accounting customer number, unpadded.",
                            {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,10}$"}),
                     _param("status", "Invoice status.", {"type": "string", "enum": ["open", "paid", "void"]}),
                     _param("overdue", "Only overdue (true) or not overdue (false) invoices.", _BOOL),
                 ]),
    "sold_items": ("Units sold per SKU in a period, with warehouse names and stock", "sales", list[SoldItem], True,
                   [*_SINCE_UNTIL, _param("location", "Only orders shipped from this location.", _LOCATION)]),
}


def _problem(status: int, description: str) -> d.Response:
    return d.Response({"application/problem+json": d.Component(Problem)}, status=status, description=description)


def operation(name: str) -> dict[str, Any]:
    """Keyword arguments for ``openapi.definition`` of one /v1 operation."""
    summary, primary, data, paged, parameters = _OPERATIONS[name]
    model = _envelope(f"{name.title().replace('_', '')}Envelope", data, paged)
    responses = [
        d.Response({"application/json": d.Component(model)}, status=200, description="The resource"),
        d.Response(None, status=304, description="Not modified (If-None-Match matched the ETag)"),
        _problem(400, "Malformed parameter"),
        _problem(401, "No or unknown API key"),
        _problem(403, "The key's role may not see this"),
        _problem(503, f"The primary source ({primary}) is unavailable and nothing is cached"),
    ]
    if not paged:
        responses.insert(4, _problem(404, "No such id"))
    return {
        "summary": summary,
        "description": f"Primary source: {primary}. Accounting-derived fields are null for the reader role "
                       "and listed in `meta.redacted`.",
        "tag": "paged lists" if paged else "resources",
        "parameter": (_LIST_PARAMS if paged else []) + parameters,
        "response": responses,
        "secured": {"bearer": []},
    }
