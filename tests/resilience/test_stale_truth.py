"""An answer served from cache because its source failed says so: ``stale`` with the error, and a true Cache-Status."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.resilience.conftest import Faults
from tests.servers import Server, flush_redis_db, wait_for

REDIS_DB = 15
TTL = 1.0      # Warehouse answers are fresh this long, then served stale while revalidating for ten minutes


@pytest.fixture(name="server", scope="module")
def _server(faults: Faults, redis_url: str, launch: Callable[..., Server]) -> Iterator[Server]:
    flush_redis_db(redis_url, REDIS_DB)
    env = faults.env(REDIS_DB, BIZFED_FRESHNESS_WAREHOUSE=f"{TTL},600,3600", BIZFED_LOCAL_CACHE_TTL="0")
    yield launch(env, name="stale-truth")
    faults.heal()


def _warehouse(server: Server, path: str) -> tuple[dict[str, object], str]:
    response = server.get(path, role="reader")
    assert response.status_code == 200, response.text[:300]
    return response.json()["meta"]["sources"]["warehouse"], response.headers.get("cache-status", "")


def test_a_failed_source_answered_from_cache_is_stale_with_its_error(server: Server, faults: Faults) -> None:
    """Past its freshness, with Warehouse cutting every connection, the answer says stale, its error, fwd=stale."""
    path = "/v1/locations"
    _warehouse(server, path)
    meta, status = _warehouse(server, path)
    assert meta["status"] == "ok"
    assert "hit" in status
    faults.warehouse.reset()
    try:
        def labelled() -> bool:
            meta, _ = _warehouse(server, path)
            return meta["status"] == "stale"

        # Fresh answers read "ok" until TTL has passed; the first answer past it starts the refresh that
        # finds the source down, and the next ones know.
        wait_for(labelled, 10 * TTL, "a stale label while Warehouse is down")
        response = server.get(path, role="reader")
        meta = response.json()["meta"]["sources"]["warehouse"]
        assert meta["cache"] == "stale"
        assert meta["error"], meta
        assert response.json()["meta"]["partial"] is False
        assert "fwd=stale" in response.headers["cache-status"]
        assert "max-age=0" in response.headers["cache-control"]
    finally:
        faults.warehouse.pass_through()

    def healed() -> bool:
        meta, _ = _warehouse(server, path)
        return meta["status"] == "ok"

    wait_for(healed, 30.0, "an ok label once Warehouse is back")


def test_redis_down_says_bypass_in_body_and_cache_status(server: Server, faults: Faults) -> None:
    """With Redis cutting every connection, answers come from the sources; body and Cache-Status say bypass."""
    faults.redis.reset()
    try:
        def bypassed() -> bool:
            meta, _ = _warehouse(server, "/v1/locations")
            return meta["cache"] == "bypass"

        wait_for(bypassed, 10.0, "a bypass while Redis is down")
        meta, status = _warehouse(server, "/v1/locations")
        assert meta["status"] == "ok"
        assert "fwd=bypass" in status, status
        assert "fwd=miss" not in status
    finally:
        faults.redis.pass_through()
