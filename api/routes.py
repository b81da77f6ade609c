"""The /v1 resources of the contract; each route declares the least role allowed to call it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import docs
from api import params as p
from api.responses import envelope
from api.routing import read
from api.services import services
from api.snapshots import snapshotted
from federation import customers, invoices, locations, orders, products, sold_items
from federation.context import RequestContext
from federation.errors import BadRequest
from federation.gateway import Gateway
from federation.paging import Page
from federation.queries import CustomerFilter, InvoiceFilter, ItemFilter, OrderFilter, SoldItemsFilter

v1 = Blueprint("v1", url_prefix="/v1")

LIST = {"limit": p.limit, "cursor": p.cursor}
ORDER_STATUSES = ("draft", "confirmed", "shipped", "delivered", "cancelled")
INVOICE_STATUSES = ("open", "paid", "void")


def _today() -> date:
    return datetime.now(UTC).date()


def _ctx(request: Request) -> RequestContext:
    ctx: RequestContext = request.ctx.fed
    return ctx


def _args(request: Request) -> dict[str, list[str]]:
    # Sanic's request.args drops blank values, so `?bogus=` or `?limit=` would pass unseen.
    return dict(request.get_args(keep_blank_values=True))


def _paged(request: Request, route: str, spec: dict[str, p.Parser]) -> tuple[dict[str, Any], str, Any]:
    """Parsed parameters, the cursor scope, and the keyset position the cursor points at."""
    values = p.parse_query(_args(request), {**LIST, **spec})
    scope = p.scope_of(route, values)
    after = services(request.app).cursors.decode(scope, values["cursor"]) if "cursor" in values else None
    return values, scope, after


def _page(request: Request, scope: str, page: Page[Any]) -> HTTPResponse:
    cursor = services(request.app).cursors.encode(scope, page.next_key) if page.next_key is not None else None
    return envelope(request, _ctx(request), page.rows, cursor, page)


Fetch = Callable[[Gateway, RequestContext, dict[str, Any], Any, int], Awaitable[Page[Any]]]


async def _listed(request: Request, route: str, spec: dict[str, p.Parser], key: type, fetch: Fetch) -> HTTPResponse:
    """A page of a list route: its parameters parsed, ``fetch(gateway, ctx, values, after, limit)``, a cursor on."""
    values, scope, after = _paged(request, route, spec)
    page = await fetch(services(request.app).gateway, _ctx(request), values, _key(after, key),
                       values.get("limit", p.DEFAULT_LIMIT))
    return _page(request, scope, page)


def _key(value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is tuple:
        if not (isinstance(value, list) and len(value) == 2 and _sane(value[0], int) and _sane(value[1], str)):
            raise BadRequest("cursor", "'cursor' is malformed")
        return (value[0], value[1])
    if not _sane(value, kind):
        raise BadRequest("cursor", "'cursor' is malformed")
    return value


def _sane(value: Any, kind: type) -> bool:
    """A keyset value the sources can take: a NUL, say, fails in PostgreSQL and would count against its breaker."""
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    return isinstance(value, str) and 0 < len(value) <= 200 and p.is_printable(value)


@read(v1, "/locations", ctx_role="reader")
@openapi.definition(**docs.operation("locations"))
@snapshotted
async def list_locations(request: Request) -> HTTPResponse:
    return await _listed(request, "locations", {}, str,
                         lambda gateway, ctx, _, after, limit: locations.list_locations(gateway, ctx, after, limit))


@read(v1, "/products", ctx_role="reader")
@openapi.definition(**docs.operation("products"))
@snapshotted
async def list_products(request: Request) -> HTTPResponse:
    return await _listed(
        request, "products", {"q": p.text, "location": p.location_code, "in_stock": p.boolean, "active": p.boolean},
        str, lambda gateway, ctx, values, after, limit: products.list_products(
            gateway, ctx, ItemFilter(q=values.get("q"), location=values.get("location"),
                                     in_stock=values.get("in_stock"), active=values.get("active")), after, limit))


@read(v1, "/products/<sku:str>", ctx_role="reader")
@openapi.definition(**docs.operation("product"))
@snapshotted
async def get_product(request: Request, sku: str) -> HTTPResponse:
    p.parse_query(_args(request), {})
    data = await products.get_product(services(request.app).gateway, _ctx(request), p.sku("sku", sku))
    return envelope(request, _ctx(request), data)


@read(v1, "/customers", ctx_role="reader")
@openapi.definition(**docs.operation("customers"))
@snapshotted
async def list_customers(request: Request) -> HTTPResponse:
    return await _listed(
        request, "customers", {"q": p.text, "country": p.country}, int,
        lambda gateway, ctx, values, after, limit: customers.list_customers(
            gateway, ctx, CustomerFilter(q=values.get("q"), country=values.get("country")), after, limit, _today()))


@read(v1, "/customers/<customer_id:str>", ctx_role="reader")
@openapi.definition(**docs.operation("customer"))
@snapshotted
async def get_customer(request: Request, customer_id: str) -> HTTPResponse:
    p.parse_query(_args(request), {})
    ident = p.positive_int("id", unquote(customer_id))
    data = await customers.get_customer(services(request.app).gateway, _ctx(request), ident, _today())
    return envelope(request, _ctx(request), data)


@read(v1, "/orders", ctx_role="reader")
@openapi.definition(**docs.operation("orders"))
@snapshotted
async def list_orders(request: Request) -> HTTPResponse:
    return await _listed(
        request, "orders",
        {"customer_id": p.positive_int, "status": p.choice(*ORDER_STATUSES), "since": p.instant, "until": p.instant},
        str, lambda gateway, ctx, values, after, limit: orders.list_orders(
            gateway, ctx, OrderFilter(customer_id=values.get("customer_id"), status=values.get("status"),
                                      **p.time_span(values)), after, limit))


@read(v1, "/orders/<order_no:str>", ctx_role="reader")
@openapi.definition(**docs.operation("order"))
@snapshotted
async def get_order(request: Request, order_no: str) -> HTTPResponse:
    p.parse_query(_args(request), {})
    data = await orders.get_order(services(request.app).gateway, _ctx(request), p.order_no("order_no", order_no),
                                  _today())
    return envelope(request, _ctx(request), data)


@read(v1, "/invoices", ctx_role="finance")
@openapi.definition(**docs.operation("invoices"))
@snapshotted
async def list_invoices(request: Request) -> HTTPResponse:
    return await _listed(
        request, "invoices", {"customer_id": p.positive_int, "acct_no": p.acct_no,
                              "status": p.choice(*INVOICE_STATUSES), "overdue": p.boolean},
        str, lambda gateway, ctx, values, after, limit: invoices.list_invoices(
            gateway, ctx, InvoiceFilter(acct_no=values.get("acct_no"), status=values.get("status"),
                                        overdue=values.get("overdue"), today=_today()),
            values.get("customer_id"), after, limit))


@read(v1, "/sold-items", ctx_role="reader")
@openapi.definition(**docs.operation("sold_items"))
@snapshotted
async def list_sold_items(request: Request) -> HTTPResponse:
    return await _listed(
        request, "sold-items", {"since": p.instant, "until": p.instant, "location": p.location_code},
        tuple, lambda gateway, ctx, values, after, limit: sold_items.list_sold_items(
            gateway, ctx, SoldItemsFilter(location=values.get("location"), **p.time_span(values)), after, limit))
