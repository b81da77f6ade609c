"""Requests at the edges of the input space get a clear problem, never a 500 or a quietly wrong answer."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.security.support import check_problem
from tests.servers import KEYS, Server


@pytest.mark.parametrize("path", ["/v1/orders", "/v1/sold-items"])
def test_since_after_until_is_a_400_naming_both(server: Server, path: str) -> None:
    """A window whose start is after its end is refused, naming both ends, instead of an empty list."""
    response = server.get(path, role="reader", params={"since": "2025-06-01", "until": "2025-01-01"})
    body = check_problem(response, 400)
    assert "since" in body["detail"], body
    assert "until" in body["detail"], body
    assert server.get(path, role="reader", params={"since": "2025-01-01", "until": "2025-01-01"}).status_code == 200


@pytest.mark.parametrize(("name", "value"), [("since", "0001-01-01T00:00:00+01:00"),
                                             ("until", "9999-12-31T23:59:59-01:00"),
                                             ("since", "0001-01-01T00:30:00+00:59")])
def test_instants_outside_the_utc_years_are_a_400(server: Server, name: str, value: str) -> None:
    """An ISO time whose UTC instant falls outside years 1 to 9999 is a 400 naming the parameter, not a 500."""
    body = check_problem(server.get("/v1/orders", role="reader", params={name: value}), 400)
    assert body["param"] == name


def _raw_get(server: Server, path: str, header: bytes) -> bytes:
    """The whole answer to a GET sent byte for byte, so a header can hold bytes no client library sends."""
    host, port = server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/v1/locations", "/dashboard", "/dashboard/state", "/v1/sources"])
@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer demo\xc3(", b"\xffBearer x"])
def test_a_non_utf8_authorization_is_a_401(server: Server, path: str, value: bytes) -> None:
    """A key with bytes that are not UTF-8 is an unknown key (401 problem), on data routes and the dashboard."""
    answer = _raw_get(server, path, b"Authorization: " + value)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"401", answer[:300]
    assert b"application/problem+json" in answer
    assert b"Traceback" not in answer


def test_a_key_without_bearer_says_what_the_header_must_look_like(server: Server) -> None:
    """``Authorization: <key>`` is a 401 whose detail shows the expected form, without echoing the key."""
    response = httpx.get(server.base + "/v1/locations", headers={"Authorization": KEYS["reader"]}, timeout=10)
    body = check_problem(response, 401)
    assert "header must read 'Bearer <key>'" in body["detail"], body
    assert KEYS["reader"] not in response.text
    basic = httpx.get(server.base + "/v1/locations", headers={"Authorization": "Basic abc"}, timeout=10)
    assert "Basic" in check_problem(basic, 401)["detail"]


@pytest.mark.parametrize("path", ["/v1/customers/%20%201", "/v1/customers/1%20", "/v1/customers/%091",
                                  "/v1/customers/+1"])
def test_an_id_with_spaces_is_not_customer_1(server: Server, path: str) -> None:
    """A customer id padded with spaces or signs is a 400, not customer 1."""
    check_problem(server.get(path, role="reader"), 400)
    check_problem(server.get("/v1/orders", role="reader", params={"customer_id": " 1"}), 400)


def test_gzip_refused_with_q0_is_not_sent(server: Server) -> None:
    """``Accept-Encoding: gzip;q=0`` gets an identity body; plain ``gzip`` a gzipped one."""
    params = {"limit": 200}
    refused = server.get("/v1/products", role="reader", params=params, headers={"Accept-Encoding": "gzip;q=0"})
    assert refused.status_code == 200
    assert "content-encoding" not in refused.headers
    wanted = httpx.get(server.base + "/v1/products", params=params, timeout=30,
                       headers={"Authorization": f"Bearer {KEYS['reader']}", "Accept-Encoding": "gzip"})
    assert wanted.headers.get("content-encoding") == "gzip"
    assert wanted.json()["data"] == refused.json()["data"]


@pytest.mark.parametrize(("accept", "status"), [("application/xml", 406), ("text/html", 406),
                                                ("application/json;q=0", 406), ("application/json", 200),
                                                ("*/*", 200), ("application/xml, application/json;q=0.5", 200),
                                                ("application/*", 200)])
def test_accept_is_honoured(server: Server, accept: str, status: int) -> None:
    """A client that accepts no JSON gets a 406 problem; any Accept that admits JSON gets the resource."""
    response = server.get("/v1/locations", role="reader", headers={"Accept": accept})
    if status == 406:
        check_problem(response, 406)
    else:
        assert response.status_code == 200, response.text[:200]


def test_the_readme_sku_spellings_name_one_product(server: Server) -> None:
    """Warehouse, Sales and Accounting spellings of a SKU (case, padding) give one product; other forms a 400."""
    sku = server.get("/v1/products", role="reader", params={"limit": 1}).json()["data"][0]["sku"]
    digits = sku.removeprefix("WH-")
    for spelling in (sku, sku.lower(), f"{sku}%20%20%20", f"%20{sku.lower()}"):
        response = server.get(f"/v1/products/{spelling}", role="reader")
        assert response.status_code == 200, spelling
        assert response.json()["data"]["sku"] == sku
    for other in (f"WH{digits}", f"WH-{digits[1:]}", digits):
        body = check_problem(server.get(f"/v1/products/{other}", role="reader"), 400)
        assert "WH-000123" in body["detail"]
