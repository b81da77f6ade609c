"""Breaker state shared across workers and replicas through Redis, without blocking the event loop.

pybreaker is synchronous and its Redis storage makes blocking round trips on
every call (and reads "closed" while Redis is down). Instead each process keeps
a local in-memory breaker, the hot path never touches Redis, and a background
task publishes local openings to Redis and applies openings seen by others.
When Redis is down the task just retries later: every process still has its
own working local breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pybreaker
from redis.asyncio import Redis

from cache.availability import Availability
from cache.redis_client import REDIS_FAILURES

log = logging.getLogger("bizfed.breakers")


class _Relay(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: SharedBreakers, source: str) -> None:
        self._owner = owner
        self._source = source

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        self._owner.local_change(self._source, new_state.name)


class SharedBreakers:
    def __init__(self, redis: Redis, breakers: Mapping[str, pybreaker.CircuitBreaker], *,
                 prefix: str = "bizfed:v1:breaker:", poll: float = 0.5, identity: str | None = None,
                 availability: Availability | None = None) -> None:
        """``availability``: the process's one record of whether Redis answers, shared with the cache."""
        self._redis = redis
        self._breakers = breakers
        self._prefix = prefix
        self._poll = poll
        self._me = identity or f"{os.uname().nodename}:{os.getpid()}"
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._applying = False
        self._from_remote: set[str] = set()
        self._availability = availability or Availability(backoff=poll)
        for source, breaker in breakers.items():
            breaker.add_listener(_Relay(self, source))

    @property
    def redis_ok(self) -> bool:
        return self._availability.up

    def local_change(self, source: str, state: str) -> None:
        """Called synchronously by pybreaker; only queues, never does I/O."""
        if self._applying:
            return
        if state != pybreaker.STATE_OPEN:
            self._from_remote.discard(source)
        self._outbox.put_nowait((source, state))

    async def run(self) -> None:
        """Publish local changes and apply remote openings until cancelled."""
        while True:
            try:
                if self._availability.usable():
                    await self._flush()
                    await self._pull()
                    self._availability.succeeded()
            except REDIS_FAILURES as exc:
                if self._availability.up:
                    log.warning("breaker sync: Redis unavailable (%s); breakers are local until it returns",
                                type(exc).__name__)
                self._availability.failed(exc)
            with contextlib.suppress(TimeoutError):
                # Wake early when a local change is waiting to be published.
                await asyncio.wait_for(self._wait_for_outbox(), self._poll)

    async def _wait_for_outbox(self) -> None:
        item = await self._outbox.get()
        self._outbox.put_nowait(item)

    async def _flush(self) -> None:
        while not self._outbox.empty():
            source, state = self._outbox.get_nowait()
            breaker = self._breakers[source]
            key = self._prefix + source
            if state == pybreaker.STATE_OPEN:
                opened = time.time()
                ttl_ms = max(1, int(breaker.reset_timeout * 1000))
                await self._redis.set(key, orjson.dumps({"opened_at": opened, "by": self._me}), px=ttl_ms)
            elif state == pybreaker.STATE_CLOSED:
                await self._redis.delete(key)

    async def _pull(self) -> None:
        names = list(self._breakers)
        values = await self._redis.mget([self._prefix + n for n in names])
        for source, raw in zip(names, values, strict=True):
            breaker = self._breakers[source]
            if raw is None:
                if source in self._from_remote and breaker.current_state == pybreaker.STATE_OPEN:
                    self._set(breaker, pybreaker.STATE_CLOSED)
                self._from_remote.discard(source)
                continue
            remote = orjson.loads(raw)
            if remote.get("by") == self._me or breaker.current_state != pybreaker.STATE_CLOSED:
                continue
            self._set(breaker, pybreaker.STATE_OPEN, float(remote["opened_at"]))
            self._from_remote.add(source)
            log.info("breaker %s opened by %s", source, remote.get("by"))

    def _set(self, breaker: pybreaker.CircuitBreaker, state: str, opened_at: float | None = None) -> None:
        self._applying = True
        try:
            if state == pybreaker.STATE_OPEN:
                breaker.open()
                # Keep the opener's clock so every process half-opens at about the same time.
                breaker._state_storage.opened_at = datetime.fromtimestamp(opened_at or time.time(), UTC)
            else:
                breaker.close()
        finally:
            self._applying = False
