"""Redis as a dependency that fails: dead, closed or silent Redis never fails or stalls a fetch."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool

from cache.freshness import Freshness
from cache.readthrough import CacheUnavailable, RedisCache
from cache.redis_client import make_redis
from federation.codec import Codec
from tests.cache.support import Loader, RedisServer
from tests.servers import free_port

FRESHNESS = {"warehouse": Freshness(ttl=30, stale_while_revalidate=0, stale_if_error=60)}
TIGHT_S = 0.25            # make_redis's default socket and connect timeouts
FAILED_ATTEMPT_S = 2 * TIGHT_S   # one Redis command that times out, and its one retry


@pytest.fixture(name="throwaway")
def _throwaway() -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free port, stopped afterwards."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="silent_port")
def _silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (via the kernel backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _cache_at(url: str, **options: Any) -> AsyncIterator[RedisCache]:
    """A cache over a production-tight client of ``url``; both closed afterwards."""
    redis = make_redis(url)
    cache = RedisCache(redis, FRESHNESS, codec=Codec(), **options)
    try:
        yield cache
    finally:
        await cache.aclose()
        await redis.aclose()


async def _bypassed_fetches(cache: RedisCache, n: int = 10) -> None:
    """``n`` fetches of cold keys all load directly, and all of them together cost at most about one failed
    Redis attempt (ten times it, as the bound): Redis is tried once, then skipped."""
    load = Loader("from the source")
    started = time.monotonic()
    states = []
    for i in range(n):
        cached = await cache.fetch("warehouse", f"k{i}", ("WH-000001",), load)
        assert cached.value == "from the source"
        states.append(cached.state)
    elapsed = time.monotonic() - started
    assert states == ["bypass"] * n
    assert cache.state()["redis_errors"] == 1, cache.state()
    assert elapsed < 10 * FAILED_ATTEMPT_S, f"{n} bypassed fetches took {elapsed:.2f}s"


async def test_outage_bypasses_quickly_and_recovers_when_redis_returns(throwaway: RedisServer) -> None:
    """With Redis stopped fetches bypass it quickly; after a restart the same cache object hits again."""
    backoff = 0.3
    async with _cache_at(throwaway.url, backoff=backoff) as cache:
        load = Loader("v")
        assert (await cache.fetch("warehouse", "k", (), load)).state == "miss"
        assert (await cache.fetch("warehouse", "k", (), load)).state == "hit"

        throwaway.stop()
        await _bypassed_fetches(cache)
        state = cache.state()
        assert state["up"] is False
        assert state["last_error"]
        assert state["bypass"] == 10
        with pytest.raises(CacheUnavailable):
            await cache.ping()

        throwaway.start()
        deadline = time.monotonic() + 10 * (backoff + FAILED_ATTEMPT_S)
        seen: list[str] = []
        while time.monotonic() < deadline and seen[-1:] != ["hit"]:
            seen.append((await cache.fetch("warehouse", "k", (), load)).state)
            await asyncio.sleep(0.05)
        assert seen[-1] == "hit", seen
        assert "miss" in seen  # the restarted server was empty: one load refilled it
        assert cache.state()["up"] is True
        await cache.ping()


async def test_concurrent_fetches_during_an_outage_share_one_load_per_key(throwaway: RedisServer) -> None:
    """While Redis is down, 50 concurrent fetches of one key still cause a single load in this process."""
    async with _cache_at(throwaway.url) as cache:
        await cache.ping()
        throwaway.stop()
        load = Loader("v", delay=0.1)
        started = time.monotonic()
        served = await asyncio.gather(*(cache.fetch("warehouse", "k", (), load) for _ in range(50)))
        assert time.monotonic() - started < 10 * (load.delay + FAILED_ATTEMPT_S)
        assert {c.state for c in served} == {"bypass"}
        assert load.calls == 1


async def test_closed_port_bypasses_and_admin_calls_raise_cache_unavailable() -> None:
    """Pointed at a port nobody listens on, fetches load directly while ping and invalidation raise."""
    async with _cache_at(f"redis://127.0.0.1:{free_port()}/0") as cache:
        await _bypassed_fetches(cache)
        with pytest.raises(CacheUnavailable):
            await cache.ping()
        with pytest.raises(CacheUnavailable):
            await cache.invalidate_tags(["WH-000001"])


async def test_silent_redis_costs_one_timeout_then_is_skipped(silent_port: int) -> None:
    """A Redis that accepts but never answers delays one fetch by the tight timeout, then is bypassed."""
    async with _cache_at(f"redis://127.0.0.1:{silent_port}/0") as cache:
        await _bypassed_fetches(cache)


async def test_a_full_connection_pool_bypasses_without_marking_redis_down(redis_url: str, namespace: str) -> None:
    """When every pooled connection is busy, fetches load directly but Redis stays 'up'."""
    redis = make_redis(redis_url, max_connections=1, pool_timeout=0.01)
    cache = RedisCache(redis, FRESHNESS, codec=Codec(), namespace=namespace)
    held = await redis.connection_pool.get_connection()
    try:
        served = await asyncio.gather(*(cache.fetch("warehouse", f"k{i}", (), Loader(i)) for i in range(5)))
        assert [(c.state, c.value) for c in served] == [("bypass", i) for i in range(5)]
        state = cache.state()
        assert state["pool_busy"] == 5
        assert (state["up"], state["redis_errors"]) == (True, 0)
    finally:
        await redis.connection_pool.release(held)
        await cache.aclose()
        await redis.aclose()
    assert cache.state()["up"] is True


async def test_make_redis_is_lazy_with_tight_timeouts_and_one_retry() -> None:
    """make_redis opens nothing, and its pool blocks briefly with sub-second socket timeouts and one retry."""
    redis = make_redis(f"redis://127.0.0.1:{free_port()}/3")
    pool = redis.connection_pool
    kwargs = pool.connection_kwargs
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.timeout == 0.25
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["db"]) == (0.25, 0.25, 3)
    assert kwargs["retry"].get_retries() == 1
    assert not pool._in_use_connections
    assert not pool._available_connections
    await redis.aclose()
