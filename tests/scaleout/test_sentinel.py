"""Redis without a single point of failure: bizfed follows a Sentinel failover by itself, without a 5xx."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.legacy.schema import LegacyTargets
from tests.scaleout.conftest import PATHS, Load
from tests.scaleout.redis_ha import DOWN_AFTER_MS, RedisHA, redis_server, sentinel_command
from tests.servers import Server, Upstreams, wait_for

# Long freshness, so what was cached before the crash is still fresh on the promoted replica.
LONG_FRESH = {f"BIZFED_FRESHNESS_{s}": "300,0,3600" for s in ("WAREHOUSE", "SALES", "ACCOUNTING")}


@pytest.fixture(name="ha", scope="module")
def _ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisHA]:
    """A primary, a replica and three sentinels, all stopped at the end of the module."""
    if redis_server() is None or sentinel_command(Path("x")) is None:
        pytest.skip("redis-server (Debian package redis-server) is not installed")
    ha = RedisHA(tmp_path_factory.mktemp("redis-ha"))
    try:
        yield ha.start()
    finally:
        ha.stop()


@pytest.fixture(name="server", scope="module")
def _server(ha: RedisHA, seeded: LegacyTargets, redis_url: str, launch: Callable[..., Server]) -> Server:
    env = {**Upstreams(seeded, redis_url).env(), **LONG_FRESH, "BIZFED_REDIS_URL": ha.url}
    return launch(env, name="sentinel")


def _cache_states(server: Server) -> set[str]:
    sources = server.get("/v1/orders?limit=20", role="finance").json()["meta"]["sources"]
    return {s["cache"] for s in sources.values() if "cache" in s}


def test_failover_under_load_gives_no_5xx_and_hits_return(ha: RedisHA, server: Server):
    """Killing the primary under load gives no 5xx, the sentinels promote the replica, and cache hits resume."""
    for path in PATHS:
        server.get(path, role="finance")
    wait_for(lambda: _cache_states(server) == {"hit"}, 10, "every source of /v1/orders answers from the cache")
    old_primary = ha.primary_port
    load = Load(server.base).start()
    try:
        wait_for(lambda: load.total > 20, 30, "the load thread is under way")
        before = load.total
        ha.kill_primary()
        killed_at = time.monotonic()
        wait_for(lambda: ha.master_port() == ha.replica_port, 20, "the sentinels elect the replica")
        elected_after = time.monotonic() - killed_at
        wait_for(lambda: ha.role(ha.replica_port) == "master", 10, "the replica takes the primary role")
        wait_for(lambda: _cache_states(server) == {"hit"}, 15, "cached reads come back from the new primary")
        recovered = load.total
        wait_for(lambda: load.total > recovered + 20, 30, "the load goes on against the new primary")
    finally:
        load.stop()
    print(f"failover: elected after {elected_after:.1f}s; {load.total} requests, {dict(load.statuses)}, "
          f"cache states {dict(load.cache_states)}")
    assert old_primary != ha.replica_port
    assert elected_after >= DOWN_AFTER_MS / 1000 * 0.9, "a failover before down-after-milliseconds means no kill"
    assert load.total - before > 20, f"the load thread stalled: {load.total - before} requests during the failover"
    assert load.errors == [], load.errors[:5]
    assert load.server_errors == 0, dict(load.statuses)
    assert set(load.statuses) == {200}, dict(load.statuses)
    # While no primary answered, requests went straight to the sources instead of failing.
    assert load.cache_states["bypass"] > 0, dict(load.cache_states)
    assert server.get("/v1/sources", role="reader").json()["data"]["cache"]["up"] is True
