"""Breaker openings travel between processes through Redis, and breakers stay local when Redis is gone."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

import pybreaker
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cache.availability import Availability
from cache.breakers import RedisBreakerBoard
from federation.breakers import Opening, SharedBreakers
from federation.errors import SourceTimeout
from federation.policy import Breaker, NullObserver, make_breaker
from tests.fakes.breakers import trial_passes

RESET = 1.0   # seconds an open breaker waits before it lets a trial call through
POLL = 0.05   # seconds between the sync task's rounds


def _breakers() -> dict[str, Breaker]:
    return {"accounting": make_breaker("accounting", 2, RESET, NullObserver())}


@pytest.fixture(name="prefix")
def _prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}:breaker:"


def _shared(redis: Redis, breakers: dict[str, Breaker], prefix: str,
            identity: str | None = None) -> SharedBreakers:
    board = RedisBreakerBoard(redis, Availability(backoff=POLL), Opening, prefix=prefix)
    return SharedBreakers(board, breakers, poll=POLL, identity=identity)


async def _running(sync: SharedBreakers) -> asyncio.Task[None]:
    task = asyncio.create_task(sync.run())
    await asyncio.sleep(0)
    return task


async def _open(breaker: Breaker) -> None:
    for _ in range(2):
        with contextlib.suppress(SourceTimeout, pybreaker.CircuitBreakerError), breaker.calling():
            raise SourceTimeout("accounting", "timeout")


async def _until(check: Callable[[], bool], what: str, timeout: float = 100 * POLL) -> float:
    """Poll ``check`` until it holds (failing after ``timeout`` seconds); the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout:.0f}s: {what}"
        await asyncio.sleep(POLL / 5)
    return time.monotonic() - started


async def test_opening_in_one_process_opens_the_other(redis_url, prefix):
    """An outage seen by one breaker set opens the same breaker in another set sharing Redis."""
    a, b = _breakers(), _breakers()
    redis_a, redis_b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    sync_a = _shared(redis_a, a, prefix)
    sync_b = _shared(redis_b, b, prefix, identity="other-replica")
    tasks = [await _running(sync_a), await _running(sync_b)]
    try:
        await _open(a["accounting"])
        assert a["accounting"].current_state == "open"
        await _until(lambda: b["accounting"].current_state == "open", "the other set sees the opening")
        a["accounting"].close()
        await _until(lambda: b["accounting"].current_state == "closed", "the other set sees the closing")
    finally:
        for t in tasks:
            t.cancel()
        await redis_a.aclose()
        await redis_b.aclose()


async def test_breakers_stay_local_when_redis_is_down(prefix):
    """With Redis unreachable the sync task reports it and keeps running, and the local breaker does its whole
    job without Redis: it opens, refuses calls while open, and lets a trial through once its reset time is up."""
    breakers = _breakers()
    breaker = breakers["accounting"]
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.1, socket_timeout=0.1,
                 retry=Retry(NoBackoff(), 0))
    sync = _shared(dead, breakers, prefix)
    task = await _running(sync)
    try:
        await _until(lambda: sync.shared is False, "the sync task reports Redis down")
        await _open(breaker)
        assert breaker.current_state == "open"
        assert not trial_passes(breaker), "an open breaker let a call through"
        # Meanwhile the sync task fails to publish the opening, round after round; that must neither undo
        # the opening nor keep renewing it, so the trial comes once the reset time is up.
        waited = await _until(lambda: trial_passes(breaker), "a trial call let through", timeout=10 * RESET)
        assert waited > RESET / 2, f"the breaker let a call through {waited:.2f}s after opening"
        assert breaker.current_state == "closed"
        assert sync.shared is False
        assert not task.done(), task
    finally:
        task.cancel()
        await dead.aclose()
