"""Redis as a dependency that fails: dead, closed or silent Redis never fails or stalls a fetch."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from redis.asyncio import BlockingConnectionPool

from cache.freshness import Freshness
from cache.readthrough import CacheUnavailable, RedisCache
from cache.redis_client import make_redis
from federation.codec import Codec
from tests.cache.support import Loader, RedisServer, free_port

FRESHNESS = {"warehouse": Freshness(ttl=30, stale_while_revalidate=0, stale_if_error=60)}


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


async def _timed_fetches(cache: RedisCache, n: int) -> tuple[float, list[str]]:
    load = Loader("from the source")
    started = time.monotonic()
    states = []
    for i in range(n):
        cached = await cache.fetch("warehouse", f"k{i}", ("WH-000001",), load)
        assert cached.value == "from the source"
        states.append(cached.state)
    return time.monotonic() - started, states


async def test_outage_bypasses_quickly_and_recovers_when_redis_returns(throwaway: RedisServer) -> None:
    """With Redis stopped fetches bypass it quickly; after a restart the same cache object hits again."""
    redis = make_redis(throwaway.url)
    cache = RedisCache(redis, FRESHNESS, codec=Codec(), backoff=0.3)
    try:
        load = Loader("v")
        assert (await cache.fetch("warehouse", "k", (), load)).state == "miss"
        assert (await cache.fetch("warehouse", "k", (), load)).state == "hit"

        throwaway.stop()
        elapsed, states = await _timed_fetches(cache, 10)
        assert elapsed < 1.0
        assert states == ["bypass"] * 10
        state = cache.state()
        assert state["up"] is False
        assert state["last_error"]
        assert state["bypass"] == 10
        with pytest.raises(CacheUnavailable):
            await cache.ping()

        throwaway.start()
        deadline = time.monotonic() + 5
        seen: list[str] = []
        while time.monotonic() < deadline and seen[-1:] != ["hit"]:
            seen.append((await cache.fetch("warehouse", "k", (), load)).state)
            await asyncio.sleep(0.05)
        assert seen[-1] == "hit", seen
        assert "miss" in seen  # the restarted server was empty: one load refilled it
        assert cache.state()["up"] is True
        await cache.ping()
    finally:
        await cache.aclose()
        await redis.aclose()


async def test_concurrent_fetches_during_an_outage_share_one_load_per_key(throwaway: RedisServer) -> None:
    """While Redis is down, 50 concurrent fetches of one key still cause a single load in this process."""
    redis = make_redis(throwaway.url)
    cache = RedisCache(redis, FRESHNESS, codec=Codec())
    try:
        await cache.ping()
        throwaway.stop()
        load = Loader("v", delay=0.1)
        started = time.monotonic()
        served = await asyncio.gather(*(cache.fetch("warehouse", "k", (), load) for _ in range(50)))
        assert time.monotonic() - started < 1.0
        assert {c.state for c in served} == {"bypass"}
        assert load.calls == 1
    finally:
        await cache.aclose()
        await redis.aclose()


async def test_closed_port_bypasses_and_admin_calls_raise_cache_unavailable() -> None:
    """Pointed at a port nobody listens on, fetches load directly while ping and invalidation raise."""
    redis = make_redis(f"redis://127.0.0.1:{free_port()}/0")
    cache = RedisCache(redis, FRESHNESS, codec=Codec())
    try:
        elapsed, states = await _timed_fetches(cache, 10)
        assert elapsed < 1.0
        assert states == ["bypass"] * 10
        with pytest.raises(CacheUnavailable):
            await cache.ping()
        with pytest.raises(CacheUnavailable):
            await cache.invalidate_tags(["WH-000001"])
    finally:
        await cache.aclose()
        await redis.aclose()


async def test_silent_redis_costs_one_timeout_then_is_skipped(silent_port: int) -> None:
    """A Redis that accepts but never answers delays one fetch by the tight timeout, then is bypassed."""
    redis = make_redis(f"redis://127.0.0.1:{silent_port}/0")
    cache = RedisCache(redis, FRESHNESS, codec=Codec())
    try:
        elapsed, states = await _timed_fetches(cache, 10)
        assert elapsed < 1.0
        assert states == ["bypass"] * 10
        assert cache.state()["redis_errors"] == 1
    finally:
        await cache.aclose()
        await redis.aclose()


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
