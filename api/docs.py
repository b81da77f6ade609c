"""OpenAPI descriptions of every operation: response schemas, parameters, examples, operation ids.

The /v1 resources hand theirs to ``openapi.definition`` (``operation(name)``); api/openapi.py adds the rest
(ids, problem and 304 answers, the bodies of the operations routes) to the document sanic-ext builds.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model
from sanic_ext.extensions.openapi import definitions as d
from sanic_ext.extensions.openapi import types as oas


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def absent(description: str) -> Any:
    """A member that is left out, never null, when it does not apply (api/openapi.py omits the default)."""
    return Field(None, description=description)


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
    """An RFC 9457 problem; `param`, `source` and `request_id` appear on the answers they explain."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(examples=["https://bizfed.example/problems/bad-request"])
    title: str
    status: int
    detail: str
    param: str = absent("The parameter at fault (400)")
    source: str = absent("The source that is unavailable (503)")
    request_id: str = absent("The id to quote when reporting an internal error (500)")


# --- the operations routes (api/ops.py, api/admin.py) -------------------------------------------
# Their bodies may gain members over time, so these models allow more than they list.

class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Liveness(_Open):
    status: Literal["live"]


class DependencyReadiness(_Open):
    up: bool
    error: str = absent("Why the probe failed; absent while up")


class Readiness(_Open):
    status: Literal["ready", "unavailable"]
    dependencies: dict[str, DependencyReadiness] = Field(
        description="warehouse, sales, accounting and cache (Redis), each probed within a second")


class PoolState(_Open):
    max: int
    size: int
    in_use: int
    idle: int
    waiting: int


class ChangeCapture(_Open):
    mode: Literal["log", "poll"] | None = Field(description="log: the source's own change log; poll: a diff")
    state: Literal["starting", "watching", "failing", "unwatched", "off"]
    lag_s: float | None = absent("How far behind the source the cache may be now, in seconds")
    changes: int = absent("Changes seen by the current watcher")
    last_change_at: datetime | None = absent("The newest change seen (its commit time where the log dates it)")
    last_round_at: datetime | None = absent("When the watcher last read the source")
    error: str | None = absent("Why the watcher is failing; null while it watches")


class SourceState(_Open):
    up: bool = Field(description="Answered a ping within a second")
    ping_ms: float | None
    breaker: Literal["closed", "open", "half-open"]
    calls: int = Field(description="Calls in the last five minutes, in this process")
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    error_rate: float
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    error: str = absent("Why the ping failed; absent while up")
    pool: PoolState
    changes: ChangeCapture = absent("How the source's changes reach the cache; absent while Redis is unreachable")


# The cache's counters in this process since it started, present while caching is on
# (tests/observability/test_openapi.py holds them to what the cache counts).
CACHE_COUNTERS = {
    "hits": "Fetches answered fresh from the cache",
    "misses": "Fetches that found nothing usable and loaded from the source",
    "stale": "Fetches answered with a value past its freshness",
    "bypass": "Fetches that skipped Redis while it was unavailable",
    "loads": "Calls to the source, in the foreground and in the background",
    "refreshes": "Background refreshes of values served stale",
    "singleflight_waits": "Fetches that waited for another's load instead of loading",
    "oversize": "Values not stored for being too large",
    "uncacheable": "Values the codec refused",
    "overtaken": "Loads not stored because an invalidation came while they ran",
    "redis_errors": "Failures that made Redis count as down",
    "pool_busy": "Calls that skipped Redis because every pooled connection was in use",
}
_COUNTERS: dict[str, Any] = {name: (int, absent(text)) for name, text in CACHE_COUNTERS.items()}
_CacheCounters = create_model("CacheCounters", __base__=_Open, **_COUNTERS)


class CacheState(_CacheCounters):  # type: ignore[misc,valid-type]
    up: bool
    ping_ms: float | None
    enabled: bool = Field(description="false: caching is off and this is Redis itself (breakers, rate limits)")
    error: str = absent("Why the ping failed; absent while up")
    last_error_at: datetime | None = absent("The last Redis failure; absent while caching is off")


class SourceReachability(_Open):
    """All a role that may not read a source sees of it (a reader, of Accounting): its calls tell what others do."""

    up: bool
    breaker: Literal["closed", "open", "half-open"]


class SourceStates(_Model):
    warehouse: SourceState
    sales: SourceState
    accounting: SourceState | SourceReachability
    cache: CacheState = absent("The cache, or Redis itself while caching is off")


class EmptyMeta(_Model):
    sources: dict[str, SourceMeta] = Field(description="Always empty here: no source is read for the answer")
    partial: Literal[False]


class SourcesEnvelope(_Model):
    data: SourceStates
    meta: EmptyMeta


class ChangeEvent(_Model):
    id: str = Field(description="The event's id: pass it back as `last_event_id` (or `Last-Event-ID`) to resume")
    path: str = Field(description="The resource to fetch again, e.g. /v1/orders/SO-2024-000042")
    source: Literal["warehouse", "sales", "accounting"]
    changed_at: str = Field(description="When the change committed (from the log) or was noticed (polling)")


class ChangesMeta(_Model):
    sources: dict[str, SourceMeta] = Field(description="Always empty here")
    partial: Literal[False]
    last_event_id: str | None = Field(description="The newest event id the answer covers: ask after it next time")
    missed: bool = Field(description="Events after the given id were trimmed from the history: refetch what you show")


class ChangesEnvelope(_Model):
    data: list[ChangeEvent]
    meta: ChangesMeta


class Invalidated(_Model):
    dropped: int = Field(description="Cache entries removed")
    cache: Literal["on", "off"]


class InvalidateEnvelope(_Model):
    data: Invalidated
    meta: EmptyMeta


def _envelope(name: str, data: Any, paged: bool) -> type[BaseModel]:
    members: dict[str, Any] = {"data": (data, ...), "meta": (Meta, ...)}
    if paged:
        members["page"] = (PageInfo, ...)
    model: type[BaseModel] = create_model(name, __base__=_Model, **members)
    return model


def _param(name: str, description: str, schema: dict[str, Any], location: str = "query",
           required: bool = False) -> d.Parameter:
    rest = {k: v for k, v in schema.items() if k != "type"}
    kind: type[oas.Schema] = {"integer": oas.Integer, "boolean": oas.Boolean}.get(schema["type"], oas.String)
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
# api/params.py also reads 1/0 and yes/no; the document offers the spelling every client sends.
_BOOL = {"type": "boolean"}

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
        d.Response({"application/json": d.Component(model)}, status=200,
                   description="The page of rows" if paged else "The resource"),
        _problem(503, f"The primary source ({primary}) is unavailable and nothing is cached"),
    ]
    if not paged:
        responses.append(_problem(404, f"No {name} with this {parameters[0].fields['name']}"))
    return {
        "summary": summary,
        "description": f"Primary source: {primary}. Accounting-derived fields are null for the reader role "
                       "and listed in `meta.redacted`.",
        "tag": "paged lists" if paged else "resources",
        "parameter": (_LIST_PARAMS if paged else []) + parameters,
        "response": responses,
        "secured": {"bearer": []},
    }


# GET /v1/changes (api/changes.py): its query, and its Last-Event-ID header.
CHANGES_PARAMS: list[dict[str, Any] | d.Parameter | str] = [
    _param("last_event_id", "Events after this one (an `id` this history gave); without it, the latest.",
           {"type": "string", "pattern": "^[0-9]{1,15}(-[0-9]{1,15})?$"}),
    _param("limit", "Events at most, as JSON (1–500, default 100).", {"type": "integer", "minimum": 1, "maximum": 500}),
    _param("Last-Event-ID", "What EventSource sends on reconnecting; as `last_event_id`.",
           {"type": "string", "pattern": "^[0-9]{1,15}(-[0-9]{1,15})?$"}, location="header"),
]


# The groups of operations, in the order the docs show them.
TAGS: list[dict[str, str]] = [
    {"name": "resources", "description": "One record, joined across the systems that hold its parts"},
    {"name": "paged lists", "description": "Keyset-paged lists: follow `page.next_cursor` until it is null"},
    {"name": "operations", "description": "Health probes, the sources' state, and cache control"},
]

# Readable ids, which generated clients turn into their method names; api/openapi.py sets them.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("get", "/v1/orders"): "listOrders", ("get", "/v1/orders/{order_no}"): "getOrder",
    ("get", "/v1/products"): "listProducts", ("get", "/v1/products/{sku}"): "getProduct",
    ("get", "/v1/customers"): "listCustomers", ("get", "/v1/customers/{customer_id}"): "getCustomer",
    ("get", "/v1/invoices"): "listInvoices", ("get", "/v1/sold-items"): "listSoldItems",
    ("get", "/v1/locations"): "listLocations", ("get", "/v1/sources"): "getSources",
    ("post", "/v1/cache/invalidate"): "invalidateCache", ("get", "/v1/changes"): "listChanges",
    ("get", "/health/live"): "getLiveness", ("get", "/health/ready"): "getReadiness",
}

# What every key-protected operation may answer besides its own; an operation's own description wins.
PROBLEMS: dict[int, str] = {
    400: "A malformed or unknown parameter or body member (the problem's `param` names it)",
    401: "No API key, or one that is not known",
    403: "The key's role may not call this operation",
    404: "Not found",
    406: "The Accept header admits no JSON: these answers are application/json only",
    429: "Too many requests for this API key in the current window (when rate limiting is on); see Retry-After",
    503: "A dependency this answer needs is unavailable",
}

# The answers of the operations routes, whose bodies sanic-ext cannot describe from their handlers.
OPERATIONS_RESPONSES: dict[tuple[str, str], dict[int, tuple[str, type[BaseModel]]]] = {
    ("get", "/health/live"): {200: ("The process runs", Liveness)},
    ("get", "/health/ready"): {200: ("The cache or at least one source answers", Readiness),
                               503: ("Neither the cache nor any source answers", Readiness)},
    ("get", "/v1/sources"): {200: ("Each source's state and the cache's, probed within a second",
                                   SourcesEnvelope)},
    ("post", "/v1/cache/invalidate"): {200: ("How many cache entries were dropped", InvalidateEnvelope)},
    ("get", "/v1/changes"): {200: ("The events after `last_event_id` (JSON), or an event stream when asked with "
                                   "`Accept: text/event-stream`", ChangesEnvelope)},
}
