"""Cache metrics over `bizfed serve` with its Redis behind a fault proxy: hits, misses, stale serves, bypasses."""

from __future__ import annotations

import pytest

from deploy.local.faultproxy import FaultProxy
from tests.observability.conftest import Serve
from tests.servers import Server, wait_for

pytestmark = pytest.mark.slow

# Seconds a Warehouse answer is fresh (then it is served stale while it is refreshed): long enough that the
# repeat read right after the first is a hit, with room to spare; short, so the stale read comes soon.
TTL = 3


@pytest.fixture(name="server", scope="module")
def _server(serve: Serve, redis_proxy: FaultProxy) -> Server:
    """One worker with the Redis cache on (no in-process first level), reaching Redis through the proxy."""
    return serve("cache-metrics", {"BIZFED_LOCAL_CACHE_TTL": "0", "BIZFED_FRESHNESS_WAREHOUSE": f"{TTL},60,3600"},
                 redis=redis_proxy.port)


def test_miss_then_hit_then_stale(server: Server) -> None:
    """A first read misses, a repeat hits, and a repeat after the freshness window serves stale."""
    misses = server.value("bizfed_cache_misses_total", source="warehouse")
    hits = server.value("bizfed_cache_hits_total", source="warehouse")
    stale = server.value("bizfed_cache_stale_serves_total", source="warehouse")

    first = server.get("/v1/locations", role="reader")
    assert first.status_code == 200
    assert server.value("bizfed_cache_misses_total", source="warehouse") >= misses + 1
    assert server.get("/v1/locations", role="reader").status_code == 200
    assert server.value("bizfed_cache_hits_total", source="warehouse") >= hits + 1

    def served_stale() -> bool:
        assert server.get("/v1/locations", role="reader").status_code == 200
        return server.value("bizfed_cache_stale_serves_total", source="warehouse") >= stale + 1

    wait_for(served_stale, 30 * TTL, f"a read served stale once the {TTL}s freshness window has passed")

    counts = server.get("/dashboard/state", role="reader").json()["cache"]["counts"]
    assert counts["hit"] >= 1
    assert counts["miss"] >= 1
    assert counts["stale"] >= 1


def test_redis_outage_counts_bypasses(server: Server, redis_proxy: FaultProxy) -> None:
    """With Redis silent, reads bypass the cache, the bypass counter moves and the Redis gauge reads 0."""
    wait_for(lambda: server.value("bizfed_redis_up") == 1, 10, "bizfed_redis_up reads 1")
    bypasses = server.value("bizfed_cache_bypasses_total", source="warehouse")
    redis_proxy.blackhole()
    try:
        assert server.get("/v1/locations", role="reader").status_code == 200
        assert server.value("bizfed_cache_bypasses_total", source="warehouse") >= bypasses + 1
        # Health probes are reused for a second, so the gauge may lag the outage by that much.
        wait_for(lambda: server.value("bizfed_redis_up") == 0, 10, "bizfed_redis_up reads 0")
        wait_for(lambda: server.get("/dashboard/state", role="reader").json()["cache"]["status"] == "down", 10,
                 "the dashboard's cache tile reads down")
    finally:
        redis_proxy.pass_through()
    wait_for(lambda: server.value("bizfed_redis_up") == 1, 20, "bizfed_redis_up back to 1")
