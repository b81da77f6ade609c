"""Keyset pagination: small pages see every row once, and cursors and limits are validated."""

from __future__ import annotations

import pytest

from tests.acceptance.oracle import Oracle
from tests.acceptance.support import Api, check_problem, compare_list

SMALL = 7


@pytest.mark.whole_list
@pytest.mark.parametrize(("path", "key", "role"), [
    ("/v1/locations", "code", "reader"),
    ("/v1/products", "sku", "finance"),
    ("/v1/customers", "id", "finance"),
    ("/v1/orders", "order_no", "reader"),
    ("/v1/invoices", "invno", "finance"),
    ("/v1/sold-items", "sku", "reader"),
])
def test_small_pages_walk_every_row_once(api: Api, oracle: Oracle, path: str, key: str, role: str) -> None:
    """Walking a list 7 rows at a time yields every row exactly once, in the list's stable order."""
    compare_list(oracle.whole_list(path, finance=role != "reader"), api.walk(path, limit=SMALL, role=role), key,
                 f"{path} in pages of {SMALL}")


def test_small_pages_of_a_filtered_list(api: Api, oracle: Oracle) -> None:
    """Cursors keep the filters: a filtered list walked in small pages equals the filtered SQL."""
    compare_list(oracle.order_list(status="delivered", since=None, until=None),
                 api.walk("/v1/orders", {"status": "delivered"}, limit=SMALL + 6), "order_no", "delivered orders")
    code = oracle.locations[0]["code"]
    compare_list(oracle.product_list(location=code), api.walk("/v1/products", {"location": code}, limit=SMALL),
                 "sku", f"products at {code}")


def test_default_limit_and_last_page(api: Api, oracle: Oracle) -> None:
    """Without limit a page holds 50 rows and says limit 50; the last page has next_cursor null."""
    body = api.ok("/v1/orders")
    assert body["page"]["limit"] == 50
    assert len(body["data"]) == min(50, len(oracle.orders))
    assert body["page"]["next_cursor"] is not None
    body = api.ok("/v1/locations", params={"limit": 500})
    assert body["page"]["next_cursor"] is None
    assert len(body["data"]) == len(oracle.locations)


def _tamper(cursor: str) -> list[str]:
    middle = len(cursor) // 2
    flipped = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1:]
    last = cursor[:-1] + ("0" if cursor[-1] != "0" else "1")
    return [flipped, last, cursor[:-3], cursor + "x", "x" + cursor, "not-a-cursor", "", "%%%", "eyJzIjoiYSJ9"]


def test_tampered_or_garbage_cursor_is_400(api: Api) -> None:
    """A cursor with a changed character, cut short, or made up is a 400 problem, never a page."""
    cursor = api.ok("/v1/customers", params={"limit": 5})["page"]["next_cursor"]
    assert cursor
    for bad in _tamper(cursor):
        if bad == "":
            continue  # an empty parameter is a different question
        check_problem(api.get("/v1/customers", params={"limit": 5, "cursor": bad}), 400)


def test_cursor_of_another_list_is_400(api: Api) -> None:
    """A cursor issued by /v1/orders (or /v1/products) is refused by /v1/customers and vice versa."""
    orders = api.ok("/v1/orders", params={"limit": 5})["page"]["next_cursor"]
    products = api.ok("/v1/products", params={"limit": 5})["page"]["next_cursor"]
    customers = api.ok("/v1/customers", params={"limit": 5})["page"]["next_cursor"]
    check_problem(api.get("/v1/customers", params={"limit": 5, "cursor": orders}), 400)
    check_problem(api.get("/v1/customers", params={"limit": 5, "cursor": products}), 400)
    check_problem(api.get("/v1/orders", params={"limit": 5, "cursor": customers}), 400)
    check_problem(api.get("/v1/invoices", params={"limit": 5, "cursor": orders}), 400)


@pytest.mark.parametrize("limit", ["0", "501", "abc", "-1", "1.5", "1e2", "99999"])
def test_limit_out_of_range_is_400(api: Api, limit: str) -> None:
    """limit must be an integer from 1 to 500 on every list."""
    for path in ("/v1/locations", "/v1/products", "/v1/customers", "/v1/orders", "/v1/invoices", "/v1/sold-items"):
        check_problem(api.get(path, params={"limit": limit}), 400)


def test_limit_bounds_are_accepted(api: Api) -> None:
    """limit=1 and limit=500 are both valid and honoured."""
    assert len(api.ok("/v1/orders", params={"limit": 1})["data"]) == 1
    body = api.ok("/v1/orders", params={"limit": 500})
    assert body["page"]["limit"] == 500
    assert len(body["data"]) == 500
