"""Fixtures for the cache tests: a client of the private Redis and caches in a namespace of their own.

The logic tests use patient timeouts so a busy test machine cannot turn a slow answer into a bypass
(which would add loads and break exact counts); test_outage.py covers the tight production defaults.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.freshness import Freshness
from cache.readthrough import RedisCache
from cache.redis_client import make_redis
from federation.codec import Codec
from federation.errors import SourceFailed

FRESHNESS = {
    "warehouse": Freshness(ttl=30, stale_while_revalidate=30, stale_if_error=60),
    "sales": Freshness(ttl=30, stale_while_revalidate=30, stale_if_error=60),
}
PATIENT = {"timeout": 2.0, "connect_timeout": 2.0, "pool_timeout": 2.0}

MakeCache = Callable[..., RedisCache]


@pytest.fixture(name="redis")
async def _redis(redis_url: str) -> AsyncIterator[Redis]:
    """A patient client of the private Redis, closed after the test."""
    client = make_redis(redis_url, **PATIENT)  # type: ignore[arg-type]
    yield client
    await client.aclose()


@pytest.fixture(name="namespace")
async def _namespace(redis: Redis) -> AsyncIterator[str]:
    """A key namespace used by one test only; its keys are deleted afterwards."""
    namespace = f"bizfedtest:{uuid.uuid4().hex[:12]}"
    yield namespace
    names = [name async for name in redis.scan_iter(match=f"{namespace}:*", count=1000)]
    if names:
        await redis.delete(*names)


@pytest.fixture(name="make_cache")
async def _make_cache(redis: Redis, namespace: str) -> AsyncIterator[MakeCache]:
    """Builds caches over the patient client in the test's namespace, closing them afterwards."""
    made: list[RedisCache] = []

    def make(freshness: Mapping[str, Freshness] = FRESHNESS, **options: Any) -> RedisCache:
        cache = RedisCache(redis, freshness, codec=Codec(), stale_on=(SourceFailed,),
                           **{"namespace": namespace, "op_timeout": 5.0, **options})
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.aclose()


@pytest.fixture(name="cache")
def _cache(make_cache: MakeCache) -> RedisCache:
    """A cache with long freshness windows."""
    return make_cache()
