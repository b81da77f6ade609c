"""/docs in a real browser (Debian's Chromium) over `bizfed serve`: every operation shown, and "try it" works."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.observability.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS
from tests.servers import ARTIFACTS, KEYS, Server, Upstreams

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

METHODS = ("get", "put", "post", "delete", "patch")
UI_TIMEOUT_MS = 30_000


@pytest.fixture(name="server", scope="module")
def _server(upstreams: Upstreams, launch: Callable[..., Server]) -> Server:
    """`bizfed serve` over empty legacy databases: enough for the docs and for a 200 from a list."""
    return launch(upstreams.env(), name="docs")


@pytest.fixture(name="page", scope="module")
def _page(server: Server) -> Iterator[Any]:
    """A Chromium tab on /docs, once Swagger UI has drawn the operations; it records what went wrong."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.problems = []
            page.requested = []
            page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page.problems.append(str(e)))
            page.on("request", lambda r: page.requested.append(r.url))
            response = page.goto(f"{server.base}/docs")
            assert response is not None
            assert response.status == 200
            page.wait_for_selector(".opblock", timeout=UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def test_docs_list_every_operation_of_the_document(server: Server, page: Any) -> None:
    """The rendered page shows each (method, path) of /openapi.json once, and nothing it does not define."""
    document = server.get("/openapi.json").json()
    expected = sorted((method.upper(), path) for path, item in document["paths"].items()
                      for method in item if method in METHODS)
    shown = page.eval_on_selector_all(
        ".opblock", "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent.trim(),"
                    " b.querySelector('.opblock-summary-path').getAttribute('data-path')])")
    assert sorted(tuple(s) for s in shown) == expected
    assert page.locator(".errors-wrapper").count() == 0, page.locator(".errors-wrapper").inner_text()
    assert "Unable to render" not in page.content()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=False)


def test_try_it_with_a_key_gets_a_200(server: Server, page: Any) -> None:
    """A reader key entered in Authorize lets "Try it out" on GET /v1/locations execute and answer 200."""
    page.click("button.authorize")
    page.fill(".modal-ux input[type=text], .modal-ux input[type=password]", KEYS["reader"])
    page.click(".modal-ux .auth-btn-wrapper button.authorize")
    page.click(".modal-ux button.btn-done")

    operation = page.locator(".opblock", has=page.locator('.opblock-summary-path[data-path="/v1/locations"]'))
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: r.url.startswith(f"{server.base}/v1/locations")) as answer:
        operation.locator("button.execute").click()
    response = answer.value
    assert response.status == 200, response.text()
    assert response.request.headers.get("authorization") == f"Bearer {KEYS['reader']}"
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=UI_TIMEOUT_MS)
    assert status.inner_text().strip() == "200"
    page.screenshot(path=str(ARTIFACTS / "docs-try-it.png"), full_page=False)


def test_docs_load_only_their_own_assets(server: Server, page: Any) -> None:
    """Everything the page fetched came from the service itself, and the browser logged no error (CSP included)."""
    assert page.requested, "the page fetched nothing"
    assert all(url.startswith(server.base + "/") for url in page.requested), page.requested
    assert page.problems == [], page.problems
