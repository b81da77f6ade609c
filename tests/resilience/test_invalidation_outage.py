"""Invalidation while Redis is down: a 503 problem with Retry-After that claims nothing done, and the
entries it could not drop are still there to drop once Redis is back."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.resilience.conftest import Faults
from tests.security.support import check_problem
from tests.servers import Server, flush_redis_db, wait_for

REDIS_DB = 15


@pytest.fixture(autouse=True)
def _healed(faults: Faults) -> Iterator[None]:
    """Every test starts and ends with all proxies passing traffic."""
    faults.heal()
    yield
    faults.heal()


def _warehouse_cache(server: Server, path: str) -> str:
    return str(server.get(path, role="reader").json()["meta"]["sources"]["warehouse"]["cache"])


def test_invalidation_while_redis_is_down_is_a_503_that_claims_nothing(
        faults: Faults, redis_url: str, launch: Callable[..., Server]):
    """POST /v1/cache/invalidate with Redis resetting every connection is a 503 cache-unavailable problem
    with Retry-After; once Redis is back the entry is still cached, and repeating the invalidation drops it."""
    flush_redis_db(redis_url, REDIS_DB)
    server = launch({**faults.env(REDIS_DB), "BIZFED_LOCAL_CACHE_TTL": "0", "BIZFED_FRESHNESS_WAREHOUSE": "600,0,600"},
                    name="invalidation-outage")
    sku = server.get("/v1/products?limit=1", role="reader").json()["data"][0]["sku"]
    path = f"/v1/products/{sku}"
    server.get(path, role="reader")
    assert _warehouse_cache(server, path) == "hit"

    faults.redis.reset()
    response = server.post("/v1/cache/invalidate", role="admin", json={"tags": [sku]})
    body = check_problem(response, 503)
    assert body["type"].endswith("/cache-unavailable")
    assert int(response.headers["retry-after"]) >= 1
    assert "dropped" not in body

    faults.redis.pass_through()
    wait_for(lambda: _warehouse_cache(server, path) == "hit", 10, "the entry is served from Redis again")
    again = server.post("/v1/cache/invalidate", role="admin", json={"tags": [sku]})
    assert again.status_code == 200, again.text
    assert again.json()["data"]["dropped"] >= 1
    assert _warehouse_cache(server, path) == "miss"
