"""The shared cache never carries finance-only values to a reader, nor a reader's nulls to finance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.security.conftest import server_env
from tests.servers import Server, Upstreams, flush_redis_db

# A Redis database of its own, emptied first, so each scenario really starts with a cold cache.
REDIS_DB = 1
FINANCE_ONLY = {"/v1/products": ("std_cost",), "/v1/customers": ("account_status", "open_balance")}


@pytest.fixture(name="cached", scope="module")
def _cached(launch: Callable[..., Server], upstreams: Upstreams, redis_url: str) -> Server:
    """A server with the cache on, over a Redis database no other test touches."""
    flush_redis_db(redis_url, REDIS_DB)
    return launch(server_env(upstreams, REDIS_DB), name="cache-isolation")


def _ok(server: Server, path: str, role: str, **params: Any) -> dict[str, Any]:
    response = server.get(path, role=role, params=params)
    assert response.status_code == 200, f"{role} {path} {params}: {response.status_code} {response.text[:300]}"
    body: dict[str, Any] = response.json()
    return body


def _reader_sees_nothing_finance_only(body: dict[str, Any], path: str, fields: tuple[str, ...]) -> None:
    rows = body["data"] if isinstance(body["data"], list) else [body["data"]]
    for row in rows:
        for field in fields:
            assert row[field] is None, f"reader {path}: {field} = {row[field]!r}"
    assert set(fields) <= set(body["meta"].get("redacted") or []), f"reader {path}: meta {body['meta']}"
    assert "accounting" not in body["meta"]["sources"], f"reader {path} drew on Accounting: {body['meta']}"


def _cache_state(body: dict[str, Any], source: str) -> str:
    return str(body["meta"]["sources"][source]["cache"])


@pytest.fixture(name="picks", scope="module")
def _picks(cached: Server) -> dict[str, Any]:
    """Ids for the two scenarios, found through routes whose answers hold no finance-only value."""
    orders = _ok(cached, "/v1/orders", "reader", limit=10, status="delivered")["data"]
    return {"orders": [row["order_no"] for row in orders]}


def test_finance_first_then_reader_gets_nulls(cached: Server, picks: dict[str, Any]) -> None:
    """After finance warmed the cache, a reader's same request is served from it with every finance-only field null."""
    for path, fields in FINANCE_ONLY.items():
        finance = _ok(cached, path, "finance", limit=20)
        assert any(row[f] is not None for row in finance["data"] for f in fields), f"finance {path}: nothing to hide"
        reader = _ok(cached, path, "reader", limit=20)
        assert _cache_state(reader, "warehouse" if path == "/v1/products" else "sales") == "hit", reader["meta"]
        _reader_sees_nothing_finance_only(reader, path, fields)
        assert [r.get("sku", r.get("id")) for r in reader["data"]] == [r.get("sku", r.get("id"))
                                                                       for r in finance["data"]]

    costed = next(row["sku"] for row in _ok(cached, "/v1/products", "finance", limit=20)["data"] if row["std_cost"])
    assert _ok(cached, f"/v1/products/{costed}", "finance")["data"]["std_cost"] is not None
    _reader_sees_nothing_finance_only(_ok(cached, f"/v1/products/{costed}", "reader"), "product", ("std_cost",))

    held = next(row["id"] for row in _ok(cached, "/v1/customers", "finance", limit=20)["data"] if row["account_status"])
    assert _ok(cached, f"/v1/customers/{held}", "finance")["data"]["account"] is not None
    _reader_sees_nothing_finance_only(_ok(cached, f"/v1/customers/{held}", "reader"), "customer", ("account",))

    order = picks["orders"][0]
    finance = _ok(cached, f"/v1/orders/{order}", "finance")["data"]
    assert finance["invoices"] is not None, finance
    assert finance["payment_status"] is not None, finance
    reader = _ok(cached, f"/v1/orders/{order}", "reader")
    _reader_sees_nothing_finance_only(reader, "order", ("invoices", "payment_status"))
    assert reader["meta"]["sources"]["sales"]["cache"] == "hit", reader["meta"]


def test_reader_first_then_finance_gets_full_values(cached: Server, picks: dict[str, Any]) -> None:
    """After a reader warmed the cache, finance's same request carries the real values, not the reader's nulls."""
    for path, fields in FINANCE_ONLY.items():
        query = {"limit": 20, "q": "a"}
        _reader_sees_nothing_finance_only(_ok(cached, path, "reader", **query), path, fields)
        finance = _ok(cached, path, "finance", **query)
        assert any(row[f] is not None for row in finance["data"] for f in fields), f"finance {path}: all null"
        assert not finance["meta"].get("redacted"), finance["meta"]

    rows = _ok(cached, "/v1/products", "reader", limit=40, active="false")["data"]
    finance_rows = {r["sku"]: r for r in _ok(cached, "/v1/products", "finance", limit=40, active="false")["data"]}
    costed = [r["sku"] for r in rows if finance_rows[r["sku"]]["std_cost"] is not None]
    assert costed, "no costed product among the inactive ones"
    sku = costed[-1]
    _reader_sees_nothing_finance_only(_ok(cached, f"/v1/products/{sku}", "reader"), "product", ("std_cost",))
    assert _ok(cached, f"/v1/products/{sku}", "finance")["data"]["std_cost"] is not None

    order = picks["orders"][-1]
    _reader_sees_nothing_finance_only(_ok(cached, f"/v1/orders/{order}", "reader"), "order",
                                      ("invoices", "payment_status"))
    finance = _ok(cached, f"/v1/orders/{order}", "finance")
    assert finance["data"]["invoices"] is not None
    assert finance["data"]["payment_status"] is not None
    assert not finance["meta"].get("redacted")


def test_reader_and_finance_answers_never_share_an_etag(cached: Server, picks: dict[str, Any]) -> None:
    """A reader presenting finance's ETag gets the redacted body (200), never a 304 that would keep finance data."""
    for path in ("/v1/customers?limit=15", f"/v1/orders/{picks['orders'][1]}"):
        finance = cached.get(path, role="finance")
        reader = cached.get(path, role="reader", headers={"If-None-Match": finance.headers["etag"]})
        assert reader.status_code == 200, f"{path}: {reader.status_code}"
        assert reader.headers["etag"] != finance.headers["etag"]
        assert "private" in reader.headers["cache-control"]
        assert "Authorization" in reader.headers["vary"]
