"""HTTP helpers for the acceptance suite: a keyed client, the envelope checks, list walks and a field differ."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

KEYS = {"reader": "acc-reader", "finance": "acc-finance", "admin": "acc-admin"}
API_KEYS_ENV = ",".join(f"{key}:{role}" for role, key in KEYS.items())
CENT = Decimal("0.01")

# Words that would betray a stack trace, SQL text or a connection string in a response body.
LEAK_MARKERS = ("Traceback", 'File "', "SELECT ", " FROM ", "INSERT ", "psycopg", "pyodbc", "asyncmy",
                "sqlalchemy", "postgresql://", "mysql+", "mysql://", "redis://", "DRIVER=", "UID=", "PWD=",
                "/work/", ".py\"", ".py,")


class Api:
    """A thin httpx client that speaks as one of the suite's roles (or as nobody).

    A request the server does not answer at all (a timeout, a reset) means the server is gone:
    that request fails with the server's log, and every later one fails at once instead of waiting.
    """

    def __init__(self, base_url: str, server_log: Callable[[], str] = lambda: "") -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30.0)
        self.server_log = server_log
        self.gone: str | None = None

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, role: str | None = "finance", key: str | None = None,
                params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                json_body: Any = None) -> httpx.Response:
        if self.gone:
            pytest.fail(f"the server stopped answering earlier ({self.gone}); not asking {method} {path}")
        sent = dict(headers or {})
        token = key if key is not None else (KEYS[role] if role else None)
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        try:
            return self.http.request(method, path, params=dict(params) if params else None, headers=sent,
                                     json=json_body)
        except httpx.TransportError as exc:
            self.gone = f"{method} {path} {params or ''}: {exc!r}"
            pytest.fail(f"the server did not answer {self.gone}\n--- server log ---\n{self.server_log()}")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def ok(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of a GET that must succeed, with its envelope checked."""
        response = self.get(path, **kwargs)
        assert response.status_code == 200, f"GET {path} {kwargs.get('params')}: {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("application/json")
        body: dict[str, Any] = response.json()
        check_envelope(body, f"GET {path}")
        return body

    def walk(self, path: str, params: Mapping[str, Any] | None = None, *, limit: int = 500,
             role: str = "finance") -> list[dict[str, Any]]:
        """Every row of a list, following next_cursor until it is null."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query: dict[str, Any] = {**(params or {}), "limit": limit}
            if cursor is not None:
                query["cursor"] = cursor
            body = self.ok(path, role=role, params=query)
            page = body.get("page")
            assert isinstance(page, dict), f"{path}: a list answer needs a page object"
            assert page.get("limit") == limit, f"{path}: page.limit {page.get('limit')} != {limit}"
            assert isinstance(body["data"], list)
            assert len(body["data"]) <= limit, f"{path}: {len(body['data'])} rows on a page of {limit}"
            rows.extend(body["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return rows
            assert isinstance(cursor, str), f"{path}: next_cursor must be a string or null"
            assert cursor, f"{path}: next_cursor must not be empty"
            assert cursor not in seen, f"{path}: next_cursor repeats, the walk would never end"
            seen.add(cursor)
            assert len(seen) < 10_000, f"{path}: more than 10000 pages"


def check_envelope(body: Mapping[str, Any], what: str) -> None:
    """Every /v1 success: data, meta.sources with healthy sources, partial false."""
    assert "data" in body, f"{what}: no data"
    meta = body.get("meta")
    assert isinstance(meta, dict), f"{what}: no meta"
    sources = meta.get("sources")
    assert isinstance(sources, dict), f"{what}: meta.sources missing"
    for name, report in sources.items():
        assert name in ("warehouse", "sales", "accounting"), f"{what}: unknown source {name}"
        assert report.get("status") == "ok", f"{what}: source {name} reported {report}"
    assert meta.get("partial") is False, f"{what}: partial answer with every source up: {meta}"


def check_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the given status and nothing internal in it."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: expected {status}, got {response.status_code} "
        f"{response.text[:300]}")
    ctype = response.headers.get("content-type", "")
    assert ctype.startswith("application/problem+json"), f"{response.request.url}: content-type {ctype!r}"
    body: dict[str, Any] = response.json()
    for member in ("type", "title", "status", "detail"):
        assert member in body, f"{response.request.url}: problem without {member}: {body}"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert_no_leak(response.text)
    return body


def assert_no_leak(text: str) -> None:
    for marker in LEAK_MARKERS:
        assert marker not in text, f"response leaks {marker!r}: {text[:500]}"


def redacted_names(body: Mapping[str, Any]) -> list[str]:
    redacted = body["meta"].get("redacted")
    assert redacted is None or isinstance(redacted, list)
    return list(redacted or [])


def assert_redacted(body: Mapping[str, Any], fields: Iterable[str]) -> None:
    """meta.redacted names every field (by name, or by a path ending in it)."""
    names = redacted_names(body)
    for field in fields:
        assert any(n == field or n.endswith((f".{field}", f"/{field}")) for n in names), (
            f"meta.redacted {names} does not list {field}")


def parse_time(value: Any) -> datetime:
    assert isinstance(value, str), f"time {value!r} is not a string"
    assert value.endswith("Z"), f"time {value!r} is not ISO 8601 UTC ending in Z"
    return datetime.fromisoformat(value[:-1] + "+00:00")


def diff(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every difference between an expected value and the API's JSON; extra API members are allowed.

    datetimes are compared as instants (the API string must be UTC with ``Z``), dates as
    ``YYYY-MM-DD``, ints/bools by type and value, everything else by equality.
    """
    where = path or "."
    if isinstance(expected, datetime):
        if not (isinstance(actual, str) and actual.endswith("Z")):
            return [f"{where}: expected a UTC time ending in Z ({expected.isoformat()}), got {actual!r}"]
        try:
            parsed = datetime.fromisoformat(actual[:-1] + "+00:00")
        except ValueError:
            return [f"{where}: unparseable time {actual!r}"]
        return [] if parsed == expected else [f"{where}: expected {expected.isoformat()}, got {actual}"]
    if isinstance(expected, date):
        return [] if actual == expected.isoformat() else [f"{where}: expected {expected.isoformat()}, got {actual!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {_short(actual)}"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out.extend(diff(value, actual[key], f"{path}.{key}"))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {_short(actual)}"]
        out = []
        if len(expected) != len(actual):
            out.append(f"{where}: expected {len(expected)} entries, got {len(actual)}")
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            out.extend(diff(e, a, f"{path}[{i}]"))
        return out
    if isinstance(expected, bool) or expected is None:
        return [] if actual is expected else [f"{where}: expected {expected!r}, got {_short(actual)}"]
    if isinstance(expected, int):
        if isinstance(actual, bool) or not isinstance(actual, int) or actual != expected:
            return [f"{where}: expected {expected!r}, got {_short(actual)}"]
        return []
    return [] if actual == expected else [f"{where}: expected {expected!r}, got {_short(actual)}"]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:200] + "…"


def assert_no_diffs(problems: list[str], what: str, limit: int = 40) -> None:
    shown = "\n  ".join(problems[:limit])
    more = f"\n  … and {len(problems) - limit} more" if len(problems) > limit else ""
    assert not problems, f"{what}: {len(problems)} differences\n  {shown}{more}"


def compare_list(expected: list[dict[str, Any]], actual: list[dict[str, Any]], key: str, what: str) -> None:
    """The same rows exactly once, in the same order, with every contract field equal."""
    want = [row[key] for row in expected]
    got = [row.get(key) for row in actual]
    dupes = sorted((k for k, n in Counter(got).items() if n > 1), key=str)
    missing = sorted(set(want) - set(got), key=str)
    extra = sorted(set(got) - set(want), key=str)
    assert not dupes, f"{what}: rows served more than once: {dupes[:20]}"
    assert not missing, f"{what}: {len(missing)} rows missing, e.g. {missing[:20]}"
    assert not extra, f"{what}: {len(extra)} rows that should not be there, e.g. {extra[:20]}"
    assert got == want, f"{what}: rows not in {key} order; first out of place at {_first_diff(want, got)}"
    problems: list[str] = []
    for e, a in zip(expected, actual, strict=True):
        problems.extend(diff(e, a, f"[{key}={e[key]}]"))
    assert_no_diffs(problems, what)


def _first_diff(want: list[Any], got: list[Any]) -> str:
    for i, (w, g) in enumerate(zip(want, got, strict=False)):
        if w != g:
            return f"index {i}: expected {w!r}, got {g!r}"
    return "end"
