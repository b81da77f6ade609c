"""Hostile input on every parameter of every route: a 4xx problem or an honest 200, never a 5xx or a leak.

Searchable text (``q``) may answer 200, but only with rows that really contain the text; code-shaped
filters (``location``, ``acct_no``) may answer 200 with an empty list; every other parameter must refuse.
The module ends by checking that no table of the three legacy databases changed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from deploy.legacy.schema import LegacyTargets
from tests.security.support import changed_tables, check_problem, leak_markers, legacy_checksums
from tests.servers import KEYS, Server

SQL = ["' OR 1=1 --", '"; DROP TABLE items; --', "1; DROP TABLE ARCUST; --", "' UNION SELECT NULL, version() --",
       "%' OR 'x'='x", "1' AND SLEEP(3) --", "'; SELECT pg_sleep(3); --", "\\'; --", "admin'/*", "1 OR 1=1"]
TEXT = ["a" * 101, "\u202eevil\u202c", "e\u0301\u0301\u0301\u0301", "🙂🙃", "\ufeffBOM", "\u200b", "Ω≈ç√∫",
        "<script>alert(1)</script>", "{{7*7}}", "${jndi:ldap://x/a}", "../../etc/passwd", "%", "_", "\\", " "]
NUMBERS = ["-1", "0", "-0", "2147483648", "9" * 30, "1e309", "NaN", "Infinity", "0x10", "1.5", "+5", "٥", "１"]
# Already percent-encoded: bytes no str can carry (NUL is fine, lone surrogates and bad UTF-8 are not).
RAW = {"NUL": "%00", "NUL inside": "a%00b", "lone surrogate": "%ED%A0%80", "overlong UTF-8": "%C0%AE",
       "bad escape": "%ZZ", "CRLF": "%0D%0ASet-Cookie%3A%20x%3D1", "10k chars": "a" * 10_000, "5k chars": "b" * 5_000}
HOSTILE: list[tuple[str, str]] = [*((v, quote(v, safe="")) for v in SQL + TEXT + NUMBERS), *RAW.items()]
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}

LISTS = ("/v1/locations", "/v1/products", "/v1/customers", "/v1/orders", "/v1/invoices", "/v1/sold-items")
# (route, parameter, kind): "search" may be an honest 200, "code" an empty 200, "strict" never a 200.
PARAMS = [
    ("/v1/products", "q", "search"), ("/v1/products", "location", "code"), ("/v1/products", "in_stock", "strict"),
    ("/v1/products", "active", "strict"), ("/v1/customers", "q", "search"), ("/v1/customers", "country", "strict"),
    ("/v1/orders", "customer_id", "strict"), ("/v1/orders", "status", "strict"), ("/v1/orders", "since", "strict"),
    ("/v1/orders", "until", "strict"), ("/v1/invoices", "customer_id", "strict"), ("/v1/invoices", "acct_no", "code"),
    ("/v1/invoices", "status", "strict"), ("/v1/invoices", "overdue", "strict"), ("/v1/sold-items", "since", "strict"),
    ("/v1/sold-items", "until", "strict"), ("/v1/sold-items", "location", "code"),
    *((path, "limit", "strict") for path in LISTS), *((path, "cursor", "strict") for path in LISTS),
]
# A yes/no filter takes 0 for "no": that hostile number is a legitimate value there.
LEGITIMATE = {("in_stock", "0"), ("active", "0"), ("overdue", "0")}
SEARCHED = {"/v1/products": ("name", "sku"), "/v1/customers": ("name",)}


@pytest.fixture(name="client", scope="module")
def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base, headers=ADMIN, timeout=30.0)


@pytest.fixture(name="markers", scope="module")
def _markers(seeded: LegacyTargets) -> tuple[str, ...]:
    return leak_markers(seeded)


def _decoded(encoded: str) -> str:
    """The value as the server reads it: undecodable bytes become U+FFFD, blanks around are dropped."""
    return unquote(encoded, errors="replace").strip()


def _judge(response: httpx.Response, label: str, kind: str, value: str, markers: tuple[str, ...],
           rows_contain: tuple[str, ...] = ()) -> str | None:
    """Why this answer to a hostile value is wrong, or None when it is acceptable."""
    if response.status_code >= 500:
        return f"{label}: {response.status_code} {response.text[:200]}"
    if response.status_code != 200:
        try:
            body = check_problem(response, response.status_code, markers, label)
        except AssertionError as exc:
            return str(exc)
        # A 404 may name the id it looked for; anything that is more than letters and digits must not come back.
        if len(value) >= 4 and not value.replace("-", "").isalnum() and value in str(body):
            return f"{label}: the problem echoes the hostile value: {body}"
        return None
    if kind == "strict":
        return f"{label}: accepted with 200"
    data: Any = response.json()["data"]
    if kind == "code" and data:
        return f"{label}: {len(data)} rows for a code no row has"
    if kind == "search":
        needle = value.lower()
        wrong = [row for row in data if not any(needle in str(row[f]).lower() for f in rows_contain)]
        if wrong:
            return f"{label}: {len(wrong)} rows do not contain the searched text, e.g. {wrong[0]}"
    return None


@pytest.mark.parametrize(("path", "param", "kind"), PARAMS, ids=[f"{p}?{n}" for p, n, _ in PARAMS])
def test_hostile_query_values(client: httpx.Client, markers: tuple[str, ...], path: str, param: str,
                              kind: str) -> None:
    """Each hostile value of a query parameter gets a clean 4xx problem, or a 200 only where it can honestly match."""
    problems = []
    for label, encoded in HOSTILE:
        value = _decoded(encoded)
        response = client.get(f"{path}?{param}={encoded}")
        judged = "legitimate" if (param, value) in LEGITIMATE else kind
        problem = _judge(response, f"{path}?{param}={label[:40]!r}", judged, value, markers,
                         SEARCHED.get(path, ()))
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("template", ["/v1/products/{}", "/v1/customers/{}", "/v1/orders/{}"])
def test_hostile_path_ids(client: httpx.Client, markers: tuple[str, ...], template: str) -> None:
    """Every hostile id in a resource path is a 400 or 404 problem, never a 5xx and never an echo."""
    problems = []
    for label, encoded in HOSTILE:
        response = client.get(template.format(encoded))
        label = template.format(repr(label[:40]))
        if response.status_code not in (400, 404, 413, 414, 431):
            problems.append(f"{label}: {response.status_code} {response.text[:200]}")
            continue
        problem = _judge(response, label, "strict", _decoded(encoded), markers)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)


def test_hostile_parameter_names(client: httpx.Client, markers: tuple[str, ...]) -> None:
    """An unknown parameter is a 400 that names a plausible typo but never reflects a hostile name."""
    for path in (*LISTS, "/v1/products/WH-000001"):
        body = check_problem(client.get(f"{path}?limti=5"), 400, markers)
        assert "limti" in body["detail"]
        for label, encoded in [*HOSTILE[:len(SQL)], ("NUL", "%00"), ("markup", quote("<b>x</b>"))]:
            response = client.get(f"{path}?{encoded}=1")
            body = check_problem(response, (400, 413), markers, f"{path}?{label}=1")
            assert _decoded(encoded) not in response.text, f"{path}: the hostile name is echoed: {body}"


def test_blank_values_are_not_ignored(client: httpx.Client, markers: tuple[str, ...]) -> None:
    """A blank value (`?limit=`, `?bogus=`) is a 400, not silently dropped so the whole list comes back."""
    for query in ("limit=", "bogus=", "cursor=", "q=", "country=", "status=", "since=", "="):
        path = "/v1/customers" if query in ("q=", "country=") else "/v1/orders"
        check_problem(client.get(f"{path}?{query}"), 400, markers, f"{path}?{query}")
    check_problem(client.get("/v1/products/WH-000001?x="), 400, markers)


@pytest.mark.parametrize("body", [
    b"not json", b"", b"[]", b"null", b"1e999999", b'"\\ud800"', b"[" * 5000 + b"]" * 5000, b'{"tags": "a"}',
    b'{"tags": []}', b'{"tags": [1, 2]}', b'{"tags": ["' + b"x" * 101 + b'"]}', b'{"tags": [null]}',
    b'{"source": "warehouse; DROP TABLE items"}', b'{"source": 5}', b'{"key": "k"}',
    b'{"source": "sales", "key": ["a"]}', b'{"source": "sales", "key": "' + b"k" * 201 + b'"}',
    b'{"tags": ["a"], "extra": 1}', b'{"__proto__": {"admin": true}}', b'{"tags": ["a\\u0000b"]}',
], ids=lambda b: repr(b[:30]))
def test_hostile_invalidation_bodies(client: httpx.Client, markers: tuple[str, ...], body: bytes) -> None:
    """A malformed cache invalidation body is a 400 problem (or a harmless 200 for odd but valid tags)."""
    response = client.post("/v1/cache/invalidate", content=body, headers={"Content-Type": "application/json"})
    if response.status_code == 200:
        assert body.startswith(b'{"tags": ["a'), f"{body[:40]!r}: accepted"
        return
    check_problem(response, 400, markers)


@pytest.mark.parametrize("value", [*SQL[:3], "x" * 100], ids=["sql1", "sql2", "sql3", "long"])
def test_hostile_invalidation_strings(client: httpx.Client, value: str) -> None:
    """Hostile tags and keys are only cache key names: the call drops nothing and fails nothing."""
    for body in ({"tags": [value]}, {"source": "accounting", "key": value}):
        response = client.post("/v1/cache/invalidate", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["dropped"] == 0


def test_hostile_headers(server: Server, markers: tuple[str, ...]) -> None:
    """Hostile Authorization, X-Request-ID and If-None-Match headers give 401s or plain answers, never 5xx."""
    for value in SQL + ["Bearer " + s for s in SQL] + ["Bearer " + "k" * 4000, "Bearer \u00e9", "Basic Og=="]:
        response = httpx.get(server.base + "/v1/locations", headers=[(b"Authorization", value.encode())], timeout=30)
        check_problem(response, 401, markers)
    for rid in [*SQL, "x" * 200, "é" * 10]:
        response = httpx.get(server.base + "/v1/locations", timeout=30,
                             headers=[(b"Authorization", ADMIN["Authorization"].encode()),
                                      (b"X-Request-ID", rid.encode()), (b"If-None-Match", rid.encode())])
        assert response.status_code == 200, response.text
        echoed = response.headers["x-request-id"]
        assert echoed == rid or (len(echoed) == 32 and echoed.isalnum()), echoed


def test_legacy_databases_are_byte_for_byte_unchanged(seeded: LegacyTargets, pristine: dict[str, str]) -> None:
    """After every hostile request above, each table of the three legacy databases has its seeded checksum."""
    after = legacy_checksums(seeded)
    assert len(after) == len(pristine) >= 12
    assert not changed_tables(pristine, after)
