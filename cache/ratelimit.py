"""Per-key rate limiting shared by every worker and replica through Redis (fixed window).

Far below the limit a process counts a key's requests in memory and adds them to Redis in
one INCRBY every ``sync_every`` seconds, so an ordinary request costs no Redis round trip
(a round trip per request was as much as the whole cached answer). Within ``headroom`` of
the limit, as last seen in Redis plus what is not yet sent, every request is counted in Redis
before it is judged, so the limit itself is exact. What other processes have not yet sent is
unseen: the limit can be overrun only if they take more than ``headroom`` requests of one key
within one sync interval.

It fails open: when Redis cannot answer, requests are served and the fail-open is
logged, since refusing everyone would turn a cache outage into a full outage. Whether
Redis is down is the process's one ``Availability``, shared with the cache and the
breaker sync: while it is down, no request waits on Redis to learn it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from cache.availability import Availability
from cache.redis_client import REDIS_FAILURES, pool_exhausted

log = logging.getLogger("bizfed.ratelimit")


@dataclass(slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


@dataclass(slots=True)
class _Count:
    slot: int
    seen: int = 0       # the window's count in Redis when this process last heard it
    pending: int = 0    # counted here, not yet added in Redis


class RateLimiter:
    def __init__(self, redis: Redis, limit: int, window: float, *, availability: Availability,
                 prefix: str = "bizfed:v1:rate:", sync_every: float = 0.1, headroom: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``headroom``: how close to the limit counting turns exact (default: a tenth of it, at least 50)."""
        self._redis = redis
        self._limit = limit
        self._window = window
        self._prefix = prefix
        self._sync_every = sync_every
        self._exact_from = limit - (headroom if headroom is not None else max(limit // 10, 50))
        self._clock = clock
        self._counts: dict[str, _Count] = {}
        self._sync: asyncio.Task[None] | None = None
        self._availability = availability
        self._failing_open = False   # this limiter's own state, to log each fail-open once

    async def check(self, key_digest: str) -> Verdict:
        """Count one request for ``key_digest`` (a hash, never the key) and judge it."""
        now = self._clock()
        slot = int(now // self._window)
        name = f"{self._prefix}{key_digest[:32]}:{slot}"
        count = self._counts.get(name)
        if count is None:
            count = self._counts[name] = _Count(slot)
            self._forget_before(slot)
        if count.seen > self._limit:
            return self._refused(slot, now)       # a window's count never goes down
        if count.seen + count.pending + 1 <= self._exact_from:
            count.pending += 1
            if self._sync is None:
                self._sync = asyncio.create_task(self._sync_later())
            return Verdict(True)
        adding, count.pending = count.pending + 1, 0
        total = await self._add({name: adding})
        if total is None:   # Redis down (counts dropped: fail open) or busy (counts kept for the next sync)
            if count.seen + count.pending > self._limit:
                return self._refused(slot, now)
            return Verdict(True)
        count.seen = max(count.seen, total[name])
        if total[name] > self._limit:
            return self._refused(slot, now)
        return Verdict(True)

    async def flush(self) -> None:
        """Add every count not yet sent to Redis now."""
        pending = {name: c.pending for name, c in self._counts.items() if c.pending}
        for name in pending:
            self._counts[name].pending = 0
        totals = await self._add(pending) if pending else None
        for name, total in (totals or {}).items():
            count = self._counts.get(name)
            if count is not None:
                count.seen = max(count.seen, total)

    async def aclose(self) -> None:
        """Stop the pending sync and send what it would have sent."""
        if self._sync is not None:
            self._sync.cancel()
        await self.flush()

    async def _sync_later(self) -> None:
        try:
            await asyncio.sleep(self._sync_every)
        finally:
            self._sync = None
        await self.flush()

    async def _add(self, counts: dict[str, int]) -> dict[str, int] | None:
        """Add ``counts`` to their windows in Redis; the windows' totals, or None if Redis failed."""
        if not self._availability.usable():
            self._fail_open("Redis is unavailable")
            return None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, n in counts.items():
                    pipe.incrby(name, n)
                    pipe.expire(name, int(self._window) + 1, nx=True)
                replies = await pipe.execute()
        except REDIS_FAILURES as exc:
            if pool_exhausted(exc):
                # Busy, not down: keep the counts for the next sync and judge this request on what is known.
                for name, n in counts.items():
                    if name in self._counts:
                        self._counts[name].pending += n
                return None
            self._availability.failed(exc)
            self._fail_open(type(exc).__name__)
            return None
        self._availability.succeeded()
        if self._failing_open:
            log.info("rate limit enforced again: Redis answers")
            self._failing_open = False
        return {name: int(total) for name, total in zip(counts, replies[::2], strict=True)}

    def _fail_open(self, why: str) -> None:
        if not self._failing_open:
            log.warning("rate limit not enforced while Redis is unavailable (%s)", why)
            self._failing_open = True

    def _refused(self, slot: int, now: float) -> Verdict:
        return Verdict(False, retry_after=max(1, int((slot + 1) * self._window - now + 0.999)))

    def _forget_before(self, slot: int) -> None:
        for name in [n for n, c in self._counts.items() if c.slot < slot and not c.pending]:
            del self._counts[name]
