"""Breaker openings kept in Redis, for every worker and replica to read (``federation/breakers.py``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import orjson
from redis.asyncio import Redis

from cache.availability import Availability
from cache.redis_client import REDIS_FAILURES

log = logging.getLogger("bizfed.breakers")


class _Opening(Protocol):
    @property
    def opened_at(self) -> float: ...
    @property
    def by(self) -> str: ...


OpeningT = TypeVar("OpeningT", bound=_Opening)


class RedisBreakerBoard(Generic[OpeningT]):
    """One key per open breaker, expiring with its reset timeout; no key means closed.

    ``make_opening(opened_at, by)`` builds the caller's record of an opening from what is stored:
    the board keeps bytes and knows none of the core's types.
    """

    def __init__(self, redis: Redis, availability: Availability, make_opening: Callable[[float, str], OpeningT], *,
                 prefix: str = "bizfed:v1:breaker:") -> None:
        self._redis = redis
        self._availability = availability
        self._make = make_opening
        self._prefix = prefix

    async def publish(self, source: str, opening: OpeningT | None, ttl: float) -> bool:
        key = self._prefix + source
        if opening is None:
            reached, _ = await self._call(lambda: self._redis.delete(key))
        else:
            value = orjson.dumps({"opened_at": opening.opened_at, "by": opening.by})
            reached, _ = await self._call(lambda: self._redis.set(key, value, px=max(1, int(ttl * 1000))))
        return reached

    async def read(self, sources: Sequence[str]) -> dict[str, OpeningT | None] | None:
        reached, values = await self._call(lambda: self._redis.mget([self._prefix + name for name in sources]))
        if not reached:
            return None
        found: dict[str, OpeningT | None] = {}
        for source, raw in zip(sources, values, strict=True):
            stored = orjson.loads(raw) if raw is not None else None
            found[source] = self._make(float(stored["opened_at"]), str(stored.get("by"))) if stored else None
        return found

    async def _call(self, op: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """(whether Redis answered, its answer); a failure marks Redis down for everything that shares it."""
        if not self._availability.usable():
            return False, None
        try:
            result = await op()
        except REDIS_FAILURES as exc:
            if self._availability.up:
                log.warning("breaker board: Redis unavailable (%s)", type(exc).__name__)
            self._availability.failed(exc)
            return False, None
        self._availability.succeeded()
        return True, result
