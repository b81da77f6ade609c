"""How the rate limiter counts against real Redis: in batches far from the limit, exactly near it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from cache.availability import Availability
from cache.ratelimit import RateLimiter
from cache.redis_client import make_redis


@pytest.fixture(name="redis")
async def _redis(redis_url: str) -> AsyncIterator[Redis]:
    client = make_redis(redis_url, timeout=2.0, connect_timeout=2.0, pool_timeout=2.0)
    yield client
    names = [name async for name in client.scan_iter(match="bizfedtest:rate:*")]
    if names:
        await client.delete(*names)
    await client.aclose()


def _limiter(redis: Redis, limit: int, **options: float) -> RateLimiter:
    # A fixed clock keeps every check in one window however slow the machine is.
    return RateLimiter(redis, limit, 60, availability=Availability(1.0), prefix="bizfedtest:rate:",  # type: ignore[arg-type]
                       clock=lambda: 600.0, **options)


async def _window_count(redis: Redis, digest: str) -> int:
    value = await redis.get(f"bizfedtest:rate:{digest}:10")
    return int(value) if value is not None else 0


async def test_far_from_the_limit_requests_reach_redis_in_batches(redis: Redis) -> None:
    """Forty requests well under the limit cost no Redis round trip each; one sync adds them all."""
    digest = uuid.uuid4().hex
    limiter = _limiter(redis, 10_000, sync_every=0.2)
    verdicts = [await limiter.check(digest) for _ in range(40)]
    assert all(v.allowed for v in verdicts)
    assert await _window_count(redis, digest) == 0, "counted in Redis one by one"
    for _ in range(50):
        if await _window_count(redis, digest) == 40:
            break
        await asyncio.sleep(0.1)
    assert await _window_count(redis, digest) == 40
    await limiter.aclose()


async def test_near_the_limit_two_processes_share_it_exactly(redis: Redis) -> None:
    """Two limiters (two workers) alternating on one key allow exactly the limit between them."""
    digest = uuid.uuid4().hex
    a = _limiter(redis, 100, sync_every=30, headroom=40)
    b = _limiter(redis, 100, sync_every=30, headroom=40)
    allowed = 0
    for n in range(160):
        if n % 10 == 0:          # each sync interval, at most 10 requests go unseen by the other
            await a.flush()
            await b.flush()
        allowed += (await (a if n % 2 else b).check(digest)).allowed
    assert allowed == 100
    refused = await a.check(digest)
    assert not refused.allowed
    assert 1 <= refused.retry_after <= 60
    await a.aclose()
    await b.aclose()


async def test_small_limits_are_always_exact(redis: Redis) -> None:
    """With a limit inside the headroom every request is counted in Redis as it comes."""
    digest = uuid.uuid4().hex
    limiter = _limiter(redis, 5)
    statuses = [(await limiter.check(digest)).allowed for _ in range(8)]
    assert statuses == [True] * 5 + [False] * 3
    assert await _window_count(redis, digest) == 6   # the sixth was counted, then refusals are judged locally
    await limiter.aclose()
