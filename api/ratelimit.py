"""Per-key rate limiting shared by every worker and replica through Redis (fixed window).

It fails open: when Redis cannot answer, requests are served and the
fail-open is logged and counted, since refusing everyone would turn a
cache outage into a full outage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from cache.redis_client import REDIS_FAILURES

log = logging.getLogger("bizfed.ratelimit")


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    remaining: int | None = None


class RateLimiter:
    def __init__(self, redis: Redis, limit: int, window: float, *, prefix: str = "bizfed:v1:rate:") -> None:
        self._redis = redis
        self._limit = limit
        self._window = window
        self._prefix = prefix
        self.fail_opens = 0
        self.failing_open = False

    async def check(self, key_digest: str) -> Verdict:
        """Count one request for ``key_digest`` (a hash, never the key) and judge it."""
        now = time.time()
        slot = int(now // self._window)
        name = f"{self._prefix}{key_digest[:32]}:{slot}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, int(self._window) + 1, nx=True)
                count, _ = await pipe.execute()
        except REDIS_FAILURES as exc:
            self.fail_opens += 1
            if not self.failing_open:
                log.warning("rate limit not enforced while Redis is unavailable (%s)", type(exc).__name__)
            self.failing_open = True
            return Verdict(True)
        if self.failing_open:
            log.info("rate limit enforced again: Redis answers")
            self.failing_open = False
        if int(count) > self._limit:
            return Verdict(False, retry_after=max(1, int((slot + 1) * self._window - now + 0.999)), remaining=0)
        return Verdict(True, remaining=self._limit - int(count))
