"""The dashboard in a real browser (Debian's Chromium) over `bizfed serve`, with Accounting behind a fault proxy."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from deploy.local.faultproxy import FaultProxy
from tests.observability.conftest import Serve
from tests.servers import ARTIFACTS, KEYS, Server, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SOURCES = ("warehouse", "sales", "accounting")
STATE_TIMEOUT_MS = 30_000
# A readable rate: "0.5/s", "6.3/s", "20/s", "1.2k/s"; never a long run of digits.
RATE_LABEL = re.compile(r"^\d{1,3}(\.\d{1,2})?[kMG]?/s$")


@pytest.fixture(name="server", scope="module")
def _server(serve: Serve, accounting_proxy: FaultProxy) -> Server:
    """`bizfed serve` whose Accounting connection goes through the proxy; Warehouse and Sales are direct."""
    return serve("dashboard", {"BIZFED_CONNECT_TIMEOUT": "1", "BIZFED_SOURCE_TIMEOUT": "1"},
                 accounting=accounting_proxy.port)


@pytest.fixture(name="browser", scope="module")
def _browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name="traffic")
def _traffic(server: Server) -> Iterator[None]:
    """A trickle of API requests in the background, so the charts have something to draw."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {KEYS['reader']}"},
                          timeout=10) as client:
            while not stop.wait(0.15):
                with contextlib.suppress(httpx.HTTPError):
                    client.get("/v1/locations")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(15)


def _tile(page: Any, name: str) -> Any:
    return page.locator(f'[data-tile="{name}"]')


def _expect_state(page: Any, name: str, state: str) -> None:
    page.wait_for_selector(f'[data-tile="{name}"][data-state="{state}"]', timeout=STATE_TIMEOUT_MS)
    assert _tile(page, name).locator(".state-text").inner_text().strip().lower() == state


def _history(server: Server) -> list[dict[str, Any]]:
    response = server.get("/dashboard/history", role="reader")
    assert response.status_code == 200
    samples: list[dict[str, Any]] = response.json()["samples"]
    return samples


def _points(page: Any, chart: str) -> int:
    """How many points the chart's lines have."""
    count: int = page.evaluate(
        """(chart) => [...document.querySelectorAll(`svg[data-chart="${chart}"] polyline`)]
            .reduce((n, line) => n + line.getAttribute("points").trim().split(/\\s+/).length, 0)""", chart)
    return count


def _axis_label(page: Any, chart: str) -> dict[str, Any]:
    """The chart's top value label: its text, and whether its rendered box lies inside the chart, left of the plot."""
    label: dict[str, Any] = page.evaluate(
        """(chart) => {
            const box = document.querySelector(`svg[data-chart="${chart}"]`);
            const label = box.querySelector('text[data-axis="max"]');
            const grid = box.querySelector("line.grid");
            const b = label.getBoundingClientRect();
            const s = box.getBoundingClientRect();
            const g = grid.getBoundingClientRect();
            return { text: label.textContent, inside: b.left >= s.left && b.right <= g.left + 0.5 &&
                     b.top >= s.top && b.bottom <= s.bottom && b.width > 0,
                     box: [b.left, b.right, s.left, g.left] };
        }""", chart)
    return label


def _wait_for_traffic_history(server: Server, samples: int) -> None:
    """Until the server's history holds ``samples`` samples and requests counted among them."""
    def ready() -> bool:
        kept = _history(server)
        return len(kept) >= samples and kept[-1]["requests"]["count"] > kept[0]["requests"]["count"]
    wait_for(ready, 60, f"{samples} history samples with traffic", interval=1)


def test_reloaded_page_draws_the_last_minutes_at_once(server: Server, browser: Any, traffic: None) -> None:
    """A reloaded page draws the server's recent history in its charts before its own polls could have."""
    _wait_for_traffic_history(server, 6)
    page = browser.new_page(viewport={"width": 1200, "height": 820})
    page.goto(f"{server.base}/dashboard?key={KEYS['reader']}")
    _expect_state(page, "warehouse", "up")
    polls: list[str] = []
    page.on("response", lambda r: polls.append(r.url) if r.url.endswith("/dashboard/state") else None)
    page.reload()
    page.wait_for_selector('svg[data-chart="rate"] polyline', timeout=STATE_TIMEOUT_MS)
    points = _points(page, "rate")
    # The page's own polls alone give one rate point fewer than polls answered.
    assert points >= 5, f"only {points} rate points"
    assert points > len(polls), f"{points} rate points after {len(polls)} polls"
    page.wait_for_selector('svg[data-chart="latency"] polyline', timeout=STATE_TIMEOUT_MS)
    assert page.locator('svg[data-chart="rate"] text.empty').count() == 0
    label = _axis_label(page, "rate")
    assert RATE_LABEL.match(label["text"]), label
    assert label["inside"], f"the rate label is cut off: {label}"
    page.close()


def test_rate_label_fits_at_thousands_per_second(server: Server, browser: Any, traffic: None) -> None:
    """With rates in the thousands the axis label reads like "20k/s" and stays fully inside the chart."""
    _wait_for_traffic_history(server, 3)
    page = browser.new_page(viewport={"width": 1200, "height": 820})

    def scaled(route: Any) -> None:
        # The server's real history, its request counts scaled up to a rate this 2-core machine cannot serve.
        answer = route.fetch()
        body = answer.json()
        for sample in body["samples"]:
            req = sample["requests"]
            req["count"] *= 1000
            req["sum_s"] *= 1000
            req["buckets"] = [[le, n * 1000] for le, n in req["buckets"]]
        route.fulfill(response=answer, json=body)

    page.route("**/dashboard/history", scaled)
    page.goto(f"{server.base}/dashboard?key={KEYS['reader']}")
    page.wait_for_selector('svg[data-chart="rate"] polyline', timeout=STATE_TIMEOUT_MS)
    label = _axis_label(page, "rate")
    assert RATE_LABEL.match(label["text"]), label
    assert label["text"].endswith("k/s"), label
    assert label["inside"], f"the rate label is cut off: {label}"
    page.close()


def test_accounting_tile_follows_the_proxy_without_reload(server: Server, browser: Any,
                                                          accounting_proxy: FaultProxy, traffic: None) -> None:
    """The Accounting tile turns down when its link is cut and back up when restored, with no page reload."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1200, "height": 820})
    problems: list[str] = []
    requests: list[tuple[str, dict[str, str]]] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append((r.url, r.headers)))

    response = page.goto(f"{server.base}/dashboard?key={KEYS['reader']}")
    assert response is not None
    assert response.status == 200
    for name in SOURCES:
        _expect_state(page, name, "up")
    page.evaluate("window.__notReloaded = true")

    cut_at = datetime.now().astimezone()
    accounting_proxy.blackhole()
    try:
        _expect_state(page, "accounting", "down")
        for name in ("warehouse", "sales"):
            assert _tile(page, name).get_attribute("data-state") == "up"
            assert not _tile(page, name).locator('[data-field="outage"]').is_visible()
        outage = _tile(page, "accounting").locator('[data-field="outage"]')
        assert outage.is_visible()
        assert outage.inner_text().lower().startswith("serving from cache since "), outage.inner_text()
        since = server.get("/dashboard/state", role="reader").json()["sources"]["accounting"]["outage_since"]
        # The outage is dated from when it began, not from the latest poll.
        assert cut_at.timestamp() - 1 <= datetime.fromisoformat(since).timestamp() <= time.time()
        shown = re.search(r"since (\d\d:\d\d:\d\d)", outage.inner_text())
        assert shown, outage.inner_text()
        assert shown.group(1) == datetime.fromisoformat(since).astimezone().strftime("%H:%M:%S")
        page.wait_for_timeout(3000)  # the outage's age grows on screen
        page.screenshot(path=str(ARTIFACTS / "dashboard-accounting-down.png"), full_page=True)
    finally:
        accounting_proxy.pass_through()

    _expect_state(page, "accounting", "up")
    assert not _tile(page, "accounting").locator('[data-field="outage"]').is_visible()
    page.wait_for_timeout(4000)  # a couple more polls, so the charts show a stretch of traffic
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert page.evaluate("window.__notReloaded") is True, "the page was reloaded"
    assert problems == [], f"browser errors (a CSP violation shows up here): {problems}"

    key = KEYS["reader"]
    state_calls = [headers for url, headers in requests if url.endswith("/dashboard/state")]
    assert state_calls, "the page never polled /dashboard/state"
    assert all(h.get("authorization") == f"Bearer {key}" for h in state_calls)
    assert [url for url, _ in requests if key in url] == [f"{server.base}/dashboard?key={key}"]
    page.close()


def test_tiles_show_how_each_sources_changes_are_captured(server: Server, browser: Any) -> None:
    """Each tile says the change mode, that it watches and the lag; a reader's Accounting tile shows no more
    of Accounting's activity than up and breaker."""
    finance = browser.new_page(viewport={"width": 1200, "height": 820})
    finance.goto(f"{server.base}/dashboard?key={KEYS['finance']}")
    for name in SOURCES:
        finance.wait_for_function(
            """(name) => /^(log|poll) · watching · lag \\d/.test(
                 document.querySelector(`[data-tile="${name}"] [data-field="changes"]`).textContent)""",
            arg=name, timeout=STATE_TIMEOUT_MS)
    texts = {name: _tile(finance, name).locator('[data-field="changes"]').inner_text() for name in SOURCES}
    assert texts["accounting"].startswith("poll · "), texts
    finance.close()
    reader = browser.new_page(viewport={"width": 1200, "height": 820})
    reader.goto(f"{server.base}/dashboard?key={KEYS['reader']}")
    _expect_state(reader, "accounting", "up")
    reader.wait_for_function(
        """() => document.querySelector('[data-tile="sales"] [data-field="changes"]')
                 .textContent.includes("watching")""",
        timeout=STATE_TIMEOUT_MS)
    assert _tile(reader, "accounting").locator('[data-field="changes"]').inner_text() == "not shown"
    reader.close()


def test_dashboard_fits_a_phone_screen(server: Server, browser: Any) -> None:
    """At phone width the tiles stack without sideways scrolling and show their state as text."""
    page = browser.new_page(viewport={"width": 375, "height": 740}, device_scale_factor=2)
    page.goto(f"{server.base}/dashboard?key={KEYS['reader']}")
    _expect_state(page, "warehouse", "up")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px screen"
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    page.close()


def test_dashboard_page_headers_and_key(server: Server) -> None:
    """The page needs a key, and is served with a strict CSP, no framing and no referrer."""
    assert server.get("/dashboard").status_code == 401
    assert server.get("/dashboard", params={"key": "not-a-key"}).status_code == 401
    response = server.get("/dashboard", params={"key": KEYS["reader"]})
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    for directive in ("script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
                      "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in response.headers["cache-control"]
    assert "<script>" not in response.text
    assert " style=" not in response.text
    # The state endpoint takes the key only as a header, never from the URL.
    assert server.get("/dashboard/state", params={"key": KEYS["reader"]}).status_code == 401
    state = server.get("/dashboard/state", role="reader")
    assert state.status_code == 200
    assert set(state.json()["sources"]) == set(SOURCES)
    # So does the history, which holds only the last minutes, oldest first.
    assert server.get("/dashboard/history").status_code == 401
    assert server.get("/dashboard/history", params={"key": KEYS["reader"]}).status_code == 401
    history = server.get("/dashboard/history", role="reader")
    assert history.status_code == 200
    assert "no-store" in history.headers["cache-control"]
    body = history.json()
    times = [s["t"] for s in body["samples"]]
    assert times, "the server kept no history"
    assert times == sorted(times)
    assert body["now"] - times[0] <= 300_000 + 10_000
    assert all(set(s) == {"t", "requests", "cache"} for s in body["samples"])
