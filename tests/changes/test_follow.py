"""GET /v1/changes: clients follow committed changes as Server-Sent Events, resume after a disconnect with
Last-Event-ID, poll the same history as JSON, and never learn of Accounting-only resources as readers."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from deploy.legacy.schema import LegacyTargets
from tests.changes.support import Legacy, watching
from tests.servers import KEYS, Server, Upstreams, flush_redis_db

BOUND = 2.0
GENEROUS = BOUND * 3
REDIS_DB = 7


@pytest.fixture(name="server", scope="module")
def _server(seeded: LegacyTargets, redis_url: str, launch: Callable[..., Server]) -> Server:
    flush_redis_db(redis_url, REDIS_DB)
    env = {**Upstreams(seeded, redis_url).env(redis_db=REDIS_DB), "BIZFED_WATCH_INTERVAL": "0.5"}
    server = launch(env, name="follow")
    watching(server, {"warehouse": "log", "sales": "log", "accounting": "poll"}, timeout=60)
    return server



@dataclass
class Subscription:
    """An SSE client on its own thread; its events arrive on ``events`` as (event, id, data)."""

    events: queue.Queue[tuple[str, str, dict[str, Any]]] = field(default_factory=queue.Queue)
    opened: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def next_matching(self, check: Callable[[dict[str, Any]], bool], timeout: float) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                kind, event_id, data = self.events.get(timeout=left)
                if kind == "change" and check(data):
                    return event_id, data
        raise AssertionError(f"no matching event within {timeout:.0f}s")

    def drain(self, seconds: float) -> list[tuple[str, str, dict[str, Any]]]:
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                got.append(self.events.get(timeout=left))
        return got


@contextlib.contextmanager
def subscribed(server: Server, role: str, last_event_id: str | None = None) -> Iterator[Subscription]:
    sub = Subscription()
    headers = {"Authorization": f"Bearer {KEYS[role]}", "Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id

    def read() -> None:
        with httpx.stream("GET", server.base + "/v1/changes", headers=headers,
                          timeout=httpx.Timeout(5.0, read=30.0)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            sub.opened.set()
            kind, event_id, data = "message", "", ""
            for line in response.iter_lines():
                if sub.stop.is_set():
                    return
                if not line:
                    if data:
                        sub.events.put((kind, event_id, orjson.loads(data)))
                    kind, event_id, data = "message", "", ""
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert sub.opened.wait(10), "the event stream did not open"
    try:
        yield sub
    finally:
        sub.stop.set()


def test_a_subscriber_receives_a_committed_change_within_the_bound(server: Server, legacy: Legacy) -> None:
    order_no, _ = legacy.order_with_status_other_than("confirmed")
    with subscribed(server, "reader") as sub:
        time.sleep(0.5)   # the worker's reader of the shared stream is following by now
        committed = time.monotonic()
        legacy.sales("UPDATE orders SET status = 'confirmed' WHERE order_no = %s", (order_no,))
        _, data = sub.next_matching(lambda d: d["path"] == f"/v1/orders/{order_no}", GENEROUS)
        assert time.monotonic() - committed < GENEROUS
    assert data["source"] == "sales"
    assert data["changed_at"].endswith("Z")


def test_reconnecting_with_last_event_id_delivers_what_was_missed(server: Server, legacy: Legacy) -> None:
    sku, location = legacy.stocked_sku()
    order_no, _ = legacy.order_with_status_other_than("shipped")
    with subscribed(server, "reader") as sub:
        time.sleep(0.5)
        legacy.warehouse("UPDATE stock SET on_hand = on_hand + 1, updated_at = now() WHERE sku = %s "
                         "AND location_code = %s", (sku, location))
        last_id, _ = sub.next_matching(lambda d: d["path"] == f"/v1/products/{sku}", GENEROUS)
    # Disconnected: a change commits and is captured while no one listens.
    legacy.sales("UPDATE orders SET status = 'shipped' WHERE order_no = %s", (order_no,))
    wait_listed(server, "reader", last_id, f"/v1/orders/{order_no}")
    with subscribed(server, "reader", last_event_id=last_id) as again:
        event_id, data = again.next_matching(lambda d: d["path"] == f"/v1/orders/{order_no}", GENEROUS)
    assert data["source"] == "sales"
    assert _id(event_id) > _id(last_id)


def test_a_reader_never_learns_of_accounting_only_resources(server: Server, legacy: Legacy) -> None:
    invno, acct_no = legacy.open_invoice()
    with subscribed(server, "reader") as reader, subscribed(server, "finance") as finance:
        time.sleep(0.5)
        legacy.post_payment(invno, 250)
        finance.next_matching(lambda d: d["source"] == "accounting" and acct_no in d["path"], GENEROUS)
        seen = reader.drain(BOUND)
    leaked = [data for kind, _, data in seen if kind == "change" and
              (data["source"] == "accounting" or data["path"].startswith("/v1/invoices"))]
    assert not leaked, leaked


def test_the_same_history_is_listed_as_json(server: Server, legacy: Legacy) -> None:
    before = server.get("/v1/changes?limit=1", role="reader")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("application/json")
    last = before.json()["meta"]["last_event_id"]
    sku, location = legacy.stocked_sku()
    legacy.warehouse("UPDATE stock SET reserved = reserved, updated_at = now() WHERE sku = %s "
                     "AND location_code = %s", (sku, location))
    rows = wait_listed(server, "reader", last, f"/v1/products/{sku}")
    assert all(set(r) == {"id", "path", "source", "changed_at"} for r in rows)
    finance_rows = server.get(f"/v1/changes?last_event_id={last}&limit=500", role="finance").json()["data"]
    assert {r["id"] for r in rows} <= {r["id"] for r in finance_rows}


def test_a_malformed_event_id_is_a_400(server: Server) -> None:
    for headers, query in (({"Last-Event-ID": "yesterday"}, ""), ({}, "?last_event_id=1-2-3"),
                           ({"Accept": "text/event-stream", "Last-Event-ID": "x" * 50}, "")):
        response = server.get("/v1/changes" + query, role="reader", headers=headers)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


def test_a_resumed_id_older_than_the_window_says_so(server: Server) -> None:
    listed = server.get("/v1/changes?last_event_id=1-0&limit=1", role="reader").json()
    assert listed["meta"]["missed"] is True


def wait_listed(server: Server, role: str, last: str | None, path: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + GENEROUS
    query = f"?last_event_id={last}&limit=500" if last else "?limit=500"
    while time.monotonic() < deadline:
        rows: list[dict[str, Any]] = server.get("/v1/changes" + query, role=role).json()["data"]
        if any(r["path"] == path for r in rows):
            return rows
        time.sleep(0.1)
    raise AssertionError(f"{path} not listed within {GENEROUS:.0f}s")


def _id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq)
