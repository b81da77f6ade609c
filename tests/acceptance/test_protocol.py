"""HTTP behaviour: ETag/304, request ids, and the 400/404/405 problems for bad input and unknown things."""

from __future__ import annotations

import pytest

from tests.acceptance.oracle import Oracle
from tests.acceptance.support import Api, check_problem


def test_etag_and_if_none_match_on_a_detail_and_a_list(api: Api, oracle: Oracle) -> None:
    """Every success has an ETag and Cache-Control; sending the ETag back in If-None-Match gives 304 without a body.

    Repeated, because an ETag that changes between identical answers (say, with the order in which
    sources reply) only fails now and then.
    """
    sku = min(oracle.items)
    customer = min(oracle.customers)
    for path, params in ((f"/v1/products/{sku}", {}), (f"/v1/customers/{customer}", {}),
                         (f"/v1/orders/{min(oracle.orders)}", {}), ("/v1/customers", {"limit": 10}),
                         ("/v1/orders", {"status": "delivered", "limit": 3}), ("/v1/products", {"limit": 5})):
        for _ in range(6):
            first = api.get(path, params=params)
            assert first.status_code == 200
            etag = first.headers.get("etag")
            assert etag, f"{path}: no ETag"
            assert first.headers.get("cache-control"), f"{path}: no Cache-Control"
            again = api.get(path, params=params, headers={"If-None-Match": etag})
            assert again.status_code == 304, f"{path}: If-None-Match {etag} gave {again.status_code}"
            assert again.content == b""
            assert again.headers.get("etag") == etag
        other = api.get(path, params=params, headers={"If-None-Match": '"not-the-etag"'})
        assert other.status_code == 200
        assert other.json()["data"] == first.json()["data"]


def test_etag_differs_between_different_answers(api: Api) -> None:
    """Two different pages of a list do not share an ETag (a 304 must never hide different data)."""
    first = api.get("/v1/customers", params={"limit": 10})
    second = api.get("/v1/customers", params={"limit": 11})
    assert first.headers["etag"] != second.headers["etag"]
    reader = api.get("/v1/customers", params={"limit": 10}, role="reader")
    assert reader.status_code == 200
    assert reader.headers["etag"] != first.headers["etag"], "a reader's redacted page must not match finance's"


def test_meta_reports_the_sources_each_resource_uses(api: Api, oracle: Oracle) -> None:
    """meta.sources names every source a finance answer drew on, each "ok" while all are up."""
    edges = oracle.edges
    cases = {
        "/v1/locations": {"warehouse"},
        "/v1/products": {"warehouse", "sales", "accounting"},
        f"/v1/products/{edges.multi_listing_sku}": {"warehouse", "sales", "accounting"},
        "/v1/customers": {"sales", "accounting"},
        f"/v1/customers/{edges.customer_with_overdue}": {"sales", "accounting"},
        "/v1/orders": {"sales"},
        f"/v1/orders/{edges.partial_payment_order}": {"sales", "warehouse", "accounting"},
        "/v1/invoices": {"accounting"},
        "/v1/sold-items": {"sales", "warehouse"},
    }
    for path, used in cases.items():
        sources = api.ok(path)["meta"]["sources"]
        assert used <= set(sources), f"{path}: meta.sources {sorted(sources)} lacks {sorted(used - set(sources))}"


def test_sources_resource_lists_every_source_and_the_cache(api: Api) -> None:
    """/v1/sources reports on warehouse, sales, accounting and the cache."""
    text = api.get("/v1/sources", role="reader").text
    for name in ("warehouse", "sales", "accounting", "cache"):
        assert f'"{name}"' in text, f"/v1/sources does not mention {name}: {text[:300]}"


def test_request_id_is_echoed(api: Api, oracle: Oracle) -> None:
    """An X-Request-ID sent by the client comes back on successes and on errors alike."""
    for path, role in ((f"/v1/orders/{min(oracle.orders)}", "finance"), ("/v1/products/WH-999999", "finance"),
                       ("/v1/orders?status=nope", "finance"), ("/v1/invoices", "reader"), ("/v1/locations", None)):
        rid = f"acc-{abs(hash(path)) % 10_000_000}-{role}"
        response = api.get(path, role=role, headers={"X-Request-ID": rid})
        assert response.headers.get("x-request-id") == rid, f"{path}: {response.status_code} {dict(response.headers)}"


def test_request_id_is_given_when_not_sent(api: Api) -> None:
    """A success carries an X-Request-ID even when the client sent none."""
    assert api.get("/v1/locations").headers.get("x-request-id")


@pytest.mark.parametrize(("path", "params"), [
    ("/v1/products", {"bogus": "1"}),
    ("/v1/orders", {"customer": "1"}),
    ("/v1/orders", {"since": "2024-13-01"}),
    ("/v1/orders", {"since": "2024-02-30"}),
    ("/v1/orders", {"until": "yesterday"}),
    ("/v1/orders", {"since": "01/02/2024"}),
    ("/v1/orders", {"since": "2024-01-01T25:00:00Z"}),
    ("/v1/sold-items", {"since": "2024-1-1"}),
    ("/v1/sold-items", {"until": "not-a-date"}),
    ("/v1/orders", {"status": "shipping"}),
    ("/v1/orders", {"customer_id": "abc"}),
    ("/v1/invoices", {"status": "overdue"}),
    ("/v1/invoices", {"overdue": "maybe"}),
    ("/v1/products", {"in_stock": "perhaps"}),
    ("/v1/products", {"active": "2"}),
    ("/v1/customers", {"country": "Spain"}),
    ("/v1/products/XX-1", {}),
    ("/v1/products/WH-ABCDEF", {}),
    ("/v1/customers/abc", {}),
    ("/v1/customers/-5", {}),
    ("/v1/products/WH-000001", {"bogus": "1"}),
])
def test_bad_input_is_400(api: Api, path: str, params: dict[str, str]) -> None:
    """Unknown parameters, malformed dates, bad enum values and ill-formed ids are 400 problems."""
    check_problem(api.get(path, params=params), 400)


def test_unknown_ids_are_404(api: Api, oracle: Oracle) -> None:
    """Well-formed ids that do not exist are 404 problems."""
    assert "WH-999999" not in oracle.items
    assert 99_999_999 not in oracle.customers
    assert "SO-1999-000001" not in oracle.orders
    for path in ("/v1/products/WH-999999", "/v1/products/wh-999999", "/v1/customers/99999999",
                 "/v1/orders/SO-1999-000001"):
        check_problem(api.get(path), 404)
        check_problem(api.get(path, role="reader"), 404)


def test_unknown_route_is_404_problem(api: Api) -> None:
    """A path the API does not have is a 404 problem+json, inside and outside /v1."""
    for path in ("/v1/nothing-here", "/v1/products/WH-000001/extra", "/nothing-here", "/v2/products"):
        check_problem(api.get(path), 404)


def test_wrong_method_is_405_problem(api: Api, oracle: Oracle) -> None:
    """POST, PUT or DELETE on a GET route is a 405 problem+json."""
    for method, path in (("POST", "/v1/products"), ("DELETE", f"/v1/orders/{min(oracle.orders)}"),
                         ("PUT", "/v1/customers/1"), ("POST", "/v1/invoices")):
        check_problem(api.request(method, path, json_body={}), 405)


def test_errors_leak_nothing_internal(api: Api) -> None:
    """Hostile input gets a plain problem: no stack trace, SQL text or connection string in any body."""
    hostile = ["' OR 1=1 --", "%' UNION SELECT * FROM ARCUST --", "\\", "\"", "ü" * 300, "🙂", "a" * 5000]
    for value in hostile:
        for path, name in (("/v1/products", "q"), ("/v1/customers", "q"), ("/v1/orders", "since"),
                           ("/v1/products", "location"), ("/v1/invoices", "acct_no"), ("/v1/customers", "country")):
            response = api.get(path, params={name: value})
            if response.status_code == 200:
                continue
            check_problem(response, response.status_code)
            assert response.status_code < 500, f"{path}?{name}={value[:40]!r}: {response.status_code}"
    for path in ("/v1/products/' OR '1'='1", "/v1/orders/SO-2024-000001'--", "/v1/customers/1;DROP"):
        response = api.get(path)
        assert response.status_code in (400, 404), f"{path}: {response.status_code}"
        check_problem(response, response.status_code)
