"""Breaker openings travel between processes through Redis, and breakers stay local when Redis is gone."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pybreaker
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cache.breakers import SharedBreakers
from federation.policy import NullObserver, make_breaker


def _breakers() -> dict[str, pybreaker.CircuitBreaker]:
    return {"accounting": make_breaker("accounting", 2, 1.0, NullObserver())}


@pytest.fixture(name="prefix")
def _prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}:breaker:"


async def _running(sync: SharedBreakers) -> asyncio.Task[None]:
    task = asyncio.create_task(sync.run())
    await asyncio.sleep(0)
    return task


async def _open(breaker: pybreaker.CircuitBreaker) -> None:
    from federation.errors import SourceTimeout

    for _ in range(2):
        with contextlib.suppress(SourceTimeout, pybreaker.CircuitBreakerError), breaker.calling():
            raise SourceTimeout("accounting", "timeout")


async def test_opening_in_one_process_opens_the_other(redis_url, prefix):
    """An outage seen by one breaker set opens the same breaker in another set sharing Redis."""
    a, b = _breakers(), _breakers()
    redis_a, redis_b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    sync_a = SharedBreakers(redis_a, a, prefix=prefix, poll=0.05)
    sync_b = SharedBreakers(redis_b, b, prefix=prefix, poll=0.05, identity="other-replica")
    tasks = [await _running(sync_a), await _running(sync_b)]
    try:
        await _open(a["accounting"])
        assert a["accounting"].current_state == "open"
        for _ in range(40):
            if b["accounting"].current_state == "open":
                break
            await asyncio.sleep(0.05)
        assert b["accounting"].current_state == "open"
        a["accounting"].close()
        for _ in range(40):
            if b["accounting"].current_state == "closed":
                break
            await asyncio.sleep(0.05)
        assert b["accounting"].current_state == "closed"
    finally:
        for t in tasks:
            t.cancel()
        await redis_a.aclose()
        await redis_b.aclose()


async def test_breakers_stay_local_when_redis_is_down(prefix):
    """With Redis unreachable the sync task reports it and the local breaker still opens."""
    breakers = _breakers()
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.1, socket_timeout=0.1,
                 retry=Retry(NoBackoff(), 0))
    sync = SharedBreakers(dead, breakers, prefix=prefix, poll=0.05)
    task = await _running(sync)
    try:
        await _open(breakers["accounting"])
        await asyncio.sleep(0.3)
        assert breakers["accounting"].current_state == "open"
        assert sync.redis_ok is False
    finally:
        task.cancel()
        await dead.aclose()
