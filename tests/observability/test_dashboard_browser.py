"""The dashboard in a real browser (Debian's Chromium) over `bizfed serve`, with Accounting behind a fault proxy."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from deploy.local.faultproxy import FaultProxy
from tests.servers import ARTIFACTS, KEYS, Server, Upstreams, flush_redis_db

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SOURCES = ("warehouse", "sales", "accounting")
STATE_TIMEOUT_MS = 30_000


@pytest.fixture(name="accounting_proxy", scope="module")
def _accounting_proxy(upstreams: Upstreams, proxy_factory: Callable[[int], FaultProxy]) -> FaultProxy:
    return proxy_factory(upstreams.mariadb_port)


@pytest.fixture(name="server", scope="module")
def _server(upstreams: Upstreams, accounting_proxy: FaultProxy, launch: Callable[..., Server]) -> Server:
    """`bizfed serve` whose Accounting connection goes through the proxy; Warehouse and Sales are direct."""
    flush_redis_db(upstreams.redis_url)
    env = upstreams.env(accounting=accounting_proxy.port)
    env.update({"BIZFED_CONNECT_TIMEOUT": "1", "BIZFED_SOURCE_TIMEOUT": "1"})
    return launch(env, name="dashboard")


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

    accounting_proxy.blackhole()
    try:
        _expect_state(page, "accounting", "down")
        for name in ("warehouse", "sales"):
            assert _tile(page, name).get_attribute("data-state") == "up"
        page.screenshot(path=str(ARTIFACTS / "dashboard-accounting-down.png"), full_page=True)
    finally:
        accounting_proxy.pass_through()

    _expect_state(page, "accounting", "up")
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
