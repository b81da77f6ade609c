"""Cursors: malformed, forged, foreign and hostile-but-signed cursors are 400s; a genuine one pages honestly."""

from __future__ import annotations

import base64
import hashlib
import hmac

import httpx
import orjson
import pytest

from api.params import Cursors, scope_of
from tests.security.conftest import CURSOR_SECRET
from tests.security.support import check_problem
from tests.servers import KEYS, Server

ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
LISTS = {"/v1/locations": "locations", "/v1/products": "products", "/v1/customers": "customers",
         "/v1/orders": "orders", "/v1/invoices": "invoices", "/v1/sold-items": "sold-items"}


@pytest.fixture(name="client", scope="module")
def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base, headers=ADMIN, timeout=30.0)


def _next_cursor(client: httpx.Client, path: str, **params: str | int) -> str:
    response = client.get(path, params={"limit": 2, **params})
    assert response.status_code == 200, response.text
    cursor = response.json()["page"]["next_cursor"]
    assert isinstance(cursor, str), f"{path} {params}: no second page to point at"
    return cursor


def _signed(payload: bytes, secret: str = CURSOR_SECRET) -> str:
    """A cursor over arbitrary bytes, signed the way the server signs (the suite knows its secret)."""
    mac = hmac.new(hashlib.sha256(secret.encode()).digest(), payload, hashlib.sha256).hexdigest()[:24]
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + mac


@pytest.mark.parametrize("path", list(LISTS))
def test_genuine_cursor_pages_on(client: httpx.Client, path: str) -> None:
    """The cursor a list hands out gives the next rows of that same list, also with another page size."""
    first = client.get(path, params={"limit": 2}).json()
    cursor = first["page"]["next_cursor"]
    assert cursor is not None, f"{path}: the seeded data fills a single page of 2, so no cursor to follow"
    second = client.get(path, params={"limit": 2, "cursor": cursor})
    assert second.status_code == 200, second.text
    assert second.json()["data"]
    assert second.json()["data"] != first["data"]
    assert client.get(path, params={"limit": 7, "cursor": cursor}).status_code == 200


@pytest.mark.parametrize("cursor", [
    "!!!", "a" * 600, "%00", "eyJ", "a.b.c", "..", ".", "=", "-" * 20, "\u202e", "' OR 1=1 --", "%ED%A0%80",
    base64.urlsafe_b64encode(b"\x00\xff\xfe garbage").decode() + ".0123456789abcdef01234567",
])
def test_malformed_cursor_is_400(client: httpx.Client, cursor: str) -> None:
    """A cursor that is not even the shape of one is a 400 on every list."""
    for path in LISTS:
        check_problem(client.get(f"{path}?cursor={cursor}"), (400, 413))


def test_forged_cursor_is_400(client: httpx.Client) -> None:
    """Base64 JSON pointing at a real row, but with a wrong or missing MAC, is a 400 and never a query."""
    for path, route in LISTS.items():
        payload = orjson.dumps({"s": scope_of(route, {}), "k": "WH-000001"})
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        for cursor in (body, body + ".", body + "." + "0" * 24, _signed(payload, "not-the-secret")):
            problem = check_problem(client.get(path, params={"cursor": cursor}), 400)
            assert problem["detail"] in ("'cursor' is not a cursor this API issued", "'cursor' is malformed")


def test_genuine_cursor_from_another_list_or_filter_is_400(client: httpx.Client) -> None:
    """A real cursor replayed on another list, or on the same list with other filters, is a 400."""
    customers = _next_cursor(client, "/v1/customers")
    delivered = _next_cursor(client, "/v1/orders", status="delivered")
    for path, params in (("/v1/orders", {"cursor": customers}), ("/v1/products", {"cursor": customers}),
                         ("/v1/customers", {"cursor": customers, "country": "ES"}),
                         ("/v1/orders", {"cursor": delivered, "status": "shipped"}),
                         ("/v1/orders", {"cursor": delivered}), ("/v1/invoices", {"cursor": delivered})):
        problem = check_problem(client.get(path, params=params), 400)
        assert problem["param"] == "cursor"
    assert client.get("/v1/orders", params={"cursor": delivered, "status": "delivered"}).status_code == 200


@pytest.mark.parametrize(("route", "key"), [
    ("customers", b"1" + b"0" * 30), ("customers", b"1e400"), ("customers", b'"1"'), ("customers", b"true"),
    ("customers", b"1.5"), ("customers", b"{}"), ("products", b'"\\u0000"'), ("products", b'"\\ud800"'),
    ("products", b'"' + b"a" * 300 + b'"'), ("products", b"[]"), ("products", b"5"), ("orders", b'"\\n"'),
    ("locations", b'""'), ("invoices", b'"a\\u0000"'), ("sold-items", b'[1, "\\u0000"]'),
    ("sold-items", b'[99999999999999999999999, "WH-000001"]'), ("sold-items", b'["1", "WH-000001"]'),
    ("sold-items", b'[1]'), ("sold-items", b'[1, "a", 2]'),
])
def test_signed_cursor_with_hostile_key_is_400(client: httpx.Client, route: str, key: bytes) -> None:
    """Even a correctly signed cursor (a leaked secret) whose keyset value no source can take is a 400, not a 5xx."""
    scope = scope_of(route, {}).encode()
    cursor = _signed(b'{"s":"' + scope + b'","k":' + key + b"}")
    check_problem(client.get(f"/v1/{route}", params={"cursor": cursor}), 400)


@pytest.mark.parametrize("payload", [b"nul", b"[1]", b'{"s": "products:0"}', b"\xff\xfe", b""])
def test_signed_cursor_with_broken_payload_is_400(client: httpx.Client, payload: bytes) -> None:
    """A signed cursor whose payload is not a cursor object is a 400, not a 500."""
    check_problem(client.get("/v1/products", params={"cursor": _signed(payload)}), 400)


def test_signed_sql_text_as_keyset_is_only_a_position(client: httpx.Client) -> None:
    """SQL text as a signed keyset value is compared as a value: the page holds only rows after it."""
    after = "' OR 1=1 --"
    cursor = Cursors(CURSOR_SECRET).encode(scope_of("products", {}), after)
    response = client.get("/v1/products", params={"cursor": cursor, "limit": 50})
    assert response.status_code == 200, response.text
    skus = [row["sku"] for row in response.json()["data"]]
    assert skus
    assert all(sku > after for sku in skus)
