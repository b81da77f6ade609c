"""The read-through cache in front of every source: freshness windows, single flight, invalidation.

Redis is treated as a dependency that fails: any Redis error or timeout turns a fetch into a
plain ``load()`` (state "bypass") and Redis is skipped for a short backoff before being tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import orjson
import redis
from redis.asyncio import Redis

from cache.availability import Availability
from cache.cached import Cached, LoadFailed
from cache.freshness import Freshness
from cache.keys import RESERVED, Keys
from cache.local import LocalCache
from cache.observer import CacheObserver, Counters, NullObserver
from cache.redis_client import REDIS_FAILURES, pool_exhausted
from cache.singleflight import SingleFlight
from cache.store import Claim, Codec, Entry, EntryStore

T = TypeVar("T")
Load = Callable[[], Awaitable[Any]]
log = logging.getLogger("bizfed.cache")
_REDIS_CLIENT = os.path.dirname(redis.__file__) + os.sep



class CacheUnavailable(Exception):
    """Redis did not answer an operation that cannot do without it (ping, invalidation).

    The operation may be half done (entries dropped, other processes not told); repeating it is safe.
    """

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class _RedisDown(Exception):
    pass


class _PoolBusy(_RedisDown):
    """Every pooled connection was in use: this process is busy, Redis is not down."""


class RedisCache:
    """``ReadThrough`` over Redis; build one per process and share it between requests."""

    def __init__(self, redis: Redis, freshness: Mapping[str, Freshness], *,
                 observer: CacheObserver | None = None,
                 namespace: str = "bizfed:cache",
                 lock_ttl: float = 5.0,
                 wait: float = 2.5,
                 op_timeout: float = 0.5,
                 admin_timeout: float = 10.0,
                 backoff: float = 1.0,
                 availability: Availability | None = None,
                 max_bytes: int = 1 << 20,
                 epoch_ttl: float = 600.0,
                 codec: Codec,
                 stale_on: tuple[type[BaseException], ...] = (LoadFailed,),
                 local: LocalCache | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``lock_ttl``: how long one process may hold a key's fill lock (longer than a load);
        ``wait``: how long others poll for that fill before loading themselves;
        ``op_timeout``: a last bound on each Redis round trip of a fetch (the client's own timeouts
        should be tighter, see ``make_redis``);
        ``backoff``: how long Redis is skipped after it failed, unless ``availability`` (the process's one
        record of whether Redis is up, shared with whatever else uses it) is given;
        ``max_bytes``: larger values are not stored;
        ``epoch_ttl``: how long an invalidation keeps loads begun before it from storing (≫ a load);
        ``local``: the process's first level, where entries are served from memory without asking Redis.
        ``codec``: turns values into the bytes stored; ``stale_on``: the load failures (a source's, not a bug)
        for which an entry within its stale-if-error window stands in.
        """
        clash = RESERVED.intersection(freshness)
        if clash:
            raise ValueError(f"source names reserved by the cache key layout: {sorted(clash)}")
        self._freshness = dict(freshness)
        self._observer: CacheObserver = observer or NullObserver()
        self._keys = Keys(namespace)
        self._store = EntryStore(redis, self._keys, codec, lock_ttl=lock_ttl, epoch_ttl=epoch_ttl)
        self._wait = wait
        self._op_timeout = op_timeout
        self._admin_timeout = admin_timeout
        self._max_bytes = max_bytes
        self._clock = clock
        self._availability = availability or Availability(backoff)
        self._flights: SingleFlight[Cached] = SingleFlight()
        self._redis_client = redis
        self._local = local
        self._stale_on = stale_on
        self.counters = Counters()

    async def fetch(self, source: str, key: str, tags: tuple[str, ...], load: Load) -> Cached:
        """The cached value, or ``load()``'s; a stale value when ``load`` raises one of ``stale_on``
        within the stale-if-error window; else ``load``'s error. Never raises a Redis error."""
        fresh = self._freshness_of(source)
        name = self._keys.entry(source, key)
        entry = self._local.get(name) if self._local is not None else None
        if entry is None:
            if not self._availability.usable():
                return await self._bypass(source, key, fresh, load)
            try:
                entry = await self._redis(self._store.get(source, key))
            except _RedisDown:
                return await self._bypass(source, key, fresh, load)
            if entry is not None and self._local is not None:
                self._local.put(name, entry, size=entry.size, tags=tags)
        if entry is not None:
            age = entry.age(self._clock())
            phase = fresh.phase(age)
            if phase == "fresh":
                return self._count(source, Cached(entry.value, "hit", age, fresh.ttl))
            if phase == "revalidate":
                self._revalidate(source, key, tags, load, entry)
                return self._count(source, Cached(entry.value, "stale", age, fresh.ttl))
        cached, joined = await self._flights.do(
            name, lambda: self._fill(source, key, tags, load, entry, background=False))
        if joined:
            self._waited(source)
        return self._count(source, cached)

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Drop every entry stored under any of ``tags``; the number of entries dropped."""
        unique = tuple(dict.fromkeys(tags))
        dropped = await self._admin(self._store.drop_tags(unique))
        await self._forget_everywhere(unique)
        return dropped

    async def invalidate_key(self, source: str, key: str) -> int:
        """Drop one entry (``key`` as given to ``fetch``); 1 if it existed, else 0."""
        dropped = await self._admin(self._store.drop_key(source, key))
        await self._forget_everywhere()
        return dropped

    async def invalidate_source(self, source: str) -> int:
        """Drop every entry of one source; the number dropped. ``KeyError`` for an unknown source."""
        self._freshness_of(source)
        dropped = await self._admin(self._store.drop_source(source))
        await self._forget_everywhere()
        return dropped

    async def _forget_everywhere(self, tags: tuple[str, ...] | None = None) -> None:
        """Drop from the first level, here and through pub/sub in every other worker and replica, what was
        put under ``tags`` (and anything put without tags); with no tags given, all of it.

        ``CacheUnavailable`` when the others could not be told: until they are, they may serve what
        was dropped, so the invalidation is not done.
        """
        if self._local is not None:
            _forget(self._local, tags)
        message = b"clear" if tags is None else orjson.dumps(tags)
        await self._admin(self._redis_client.publish(self._keys.invalidations, message))

    async def follow_invalidations(self) -> None:
        """Clear the first level whenever any process invalidates; run as a background task."""
        if self._local is None:
            return
        while True:
            pubsub = self._redis_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.invalidations)
                # Entries read while unsubscribed may have missed a message.
                self._local.clear()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        _forget(self._local, _told(message.get("data")))
            except REDIS_FAILURES:
                self._local.clear()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(*REDIS_FAILURES):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # unannotated before redis-py 8.2

    async def ping(self) -> None:
        """Return if Redis answers within the operation timeout; else raise ``CacheUnavailable``."""
        await self._admin(self._store.ping(), self._op_timeout)

    def state(self) -> dict[str, Any]:
        """Up or down, the last Redis error, and this process's counters."""
        at = self._availability.last_error_at
        return {
            "up": self._availability.up,
            "last_error": self._availability.last_error,
            "last_error_at": at.isoformat() if at else None,
            **self.counters.as_dict(),
        }

    async def aclose(self) -> None:
        """Cancel running loads and refreshes; the Redis client stays the caller's to close."""
        await self._flights.aclose()

    def _freshness_of(self, source: str) -> Freshness:
        try:
            return self._freshness[source]
        except KeyError:
            raise KeyError(f"no cache freshness configured for source {source!r}") from None

    async def _fill(self, source: str, key: str, tags: tuple[str, ...], load: Load, seen: Entry | None,
                    *, background: bool) -> Cached:
        """Load once across processes: take the key's lock, or wait briefly for its holder's value."""
        fresh = self._freshness[source]
        try:
            claim = await self._redis(self._store.claim(source, key, tags))
            deadline = time.monotonic() + self._wait
            delay, waited = 0.01, False
            while True:
                done = self._fresh_since(claim.entry, seen, fresh)
                if done is not None:
                    await self._release(source, key, claim)
                    return done
                # Past the wait, load without the lock: a crashed holder must not make us fail.
                if claim.acquired or background or time.monotonic() >= deadline:
                    break
                if not waited:
                    self._waited(source)
                    waited = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)
                claim = await self._redis(self._store.claim(source, key, tags, claim.token))
        except _RedisDown:
            return await self._load(fresh, load, seen, "bypass")
        if background and not claim.acquired:
            # Another process is refreshing it; the value already served stays the answer.
            assert seen is not None
            return Cached(seen.value, "stale", seen.age(self._clock()), fresh.ttl)
        released = False
        try:
            started = self._clock()  # the answer is as old as the moment the source was asked
            cached = await self._load(fresh, load, seen, "miss")
            if cached.state == "miss":
                released = await self._save(source, key, tags, cached.value, started, claim)
            return cached
        finally:
            if not released:
                await self._release(source, key, claim)

    async def _load(self, fresh: Freshness, load: Load, seen: Entry | None, state: str) -> Cached:
        self.counters.loads += 1
        try:
            value = await load()
        except self._stale_on as exc:
            if seen is not None:
                age = seen.age(self._clock())
                if fresh.usable_on_error(age):
                    return Cached(seen.value, "stale", age, fresh.ttl, getattr(exc, "reason", None) or str(exc))
            raise
        return Cached(value, state, 0.0, fresh.ttl)

    async def _bypass(self, source: str, key: str, fresh: Freshness, load: Load) -> Cached:
        # Still one load per key in this process: a Redis outage is when sources can least take a stampede.
        cached, joined = await self._flights.do(
            self._keys.entry(source, key), lambda: self._load(fresh, load, None, "bypass"))
        if joined:
            self._waited(source)
        return self._count(source, cached)

    def _revalidate(self, source: str, key: str, tags: tuple[str, ...], load: Load, seen: Entry) -> None:
        name = self._keys.entry(source, key)
        if self._flights.running(name):
            return
        self.counters.refreshes += 1
        task, _ = self._flights.start(name, lambda: self._fill(source, key, tags, load, seen, background=True))
        task.add_done_callback(self._log_refresh_failure)

    def _log_refresh_failure(self, task: asyncio.Task[Cached]) -> None:
        """A background refresh that failed for a source is expected; anything else is a bug worth its traceback."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, self._stale_on):
            log.error("background cache refresh failed", exc_info=exc)

    async def _save(self, source: str, key: str, tags: tuple[str, ...], value: Any, stored_at: float,
                    claim: Claim) -> bool:
        """Store ``value`` if it may be; True if that also released the claim's lock."""
        try:
            payload = self._store.encode(value, stored_at)
        except (ValueError, TypeError) as exc:
            self.counters.uncacheable += 1
            log.warning("not caching a %s value for %s: %s", type(value).__name__, source, exc)
            return False
        if len(payload) > self._max_bytes:
            self.counters.oversize += 1
            self._observer.oversize(source)
            return False
        try:
            stored = await self._redis(self._store.put(source, key, tags, payload,
                                                       self._freshness[source].retention, claim))
        except _RedisDown:
            return False
        if stored and self._local is not None:
            self._local.put(self._keys.entry(source, key), Entry(value, stored_at, len(payload)), size=len(payload),
                            tags=tags)
        if not stored:
            self.counters.overtaken += 1
        return True

    async def _release(self, source: str, key: str, claim: Claim) -> None:
        if not claim.acquired:
            return
        with contextlib.suppress(_RedisDown):  # the lock expires by itself after lock_ttl
            await self._redis(self._store.release(source, key, claim))

    def _fresh_since(self, entry: Entry | None, seen: Entry | None, fresh: Freshness) -> Cached | None:
        """A fresh entry that someone else stored since ``seen`` was read, as a hit."""
        if entry is None or (seen is not None and entry.stored_at <= seen.stored_at):
            return None
        age = entry.age(self._clock())
        return Cached(entry.value, "hit", age, fresh.ttl) if fresh.phase(age) == "fresh" else None

    async def _redis(self, op: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._op_timeout):
                result = await op
        except REDIS_FAILURES as exc:
            if not _redis_fault(exc):
                raise
            if pool_exhausted(exc):
                self.counters.pool_busy += 1
                raise _PoolBusy from exc
            self._failed(exc, self._op_timeout)
            raise _RedisDown from exc
        self._availability.succeeded()
        return result

    async def _admin(self, op: Awaitable[T], limit: float | None = None) -> T:
        try:
            async with asyncio.timeout(limit or self._admin_timeout):
                result = await op
        except REDIS_FAILURES as exc:
            if not _redis_fault(exc):
                raise
            if not pool_exhausted(exc):
                self._failed(exc, limit or self._admin_timeout)
            raise CacheUnavailable(f"redis: {type(exc).__name__}",
                                   retry_after=max(1, math.ceil(self._availability.backoff))) from exc
        self._availability.succeeded()
        return result

    def _failed(self, exc: BaseException, limit: float) -> None:
        if isinstance(exc, TimeoutError) and not str(exc):
            exc = TimeoutError(f"no answer within {limit} s")
        if self._availability.up:
            log.warning("redis cache unavailable, bypassing it for %s s: %s", self._availability.backoff, exc)
        self.counters.redis_errors += 1
        self._availability.failed(exc)

    def _waited(self, source: str) -> None:
        self.counters.singleflight_waits += 1
        self._observer.singleflight_wait(source)

    def _count(self, source: str, cached: Cached) -> Cached:
        if cached.state == "hit":
            self.counters.hits += 1
            self._observer.hit(source)
        elif cached.state == "stale":
            self.counters.stale += 1
            self._observer.stale(source)
        elif cached.state == "bypass":
            self.counters.bypass += 1
            self._observer.bypass(source)
        else:
            self.counters.misses += 1
            self._observer.miss(source)
        return cached


def _redis_fault(exc: BaseException) -> bool:
    """Whether one of ``REDIS_FAILURES`` came from talking to Redis rather than from our own code.

    A RuntimeError is only Redis's when raised under the client (uvloop's write to a closed
    transport); one of ours (say, a dict changed while iterated) must surface as the bug it is,
    not pass for an outage that bypasses the cache.
    """
    if not isinstance(exc, RuntimeError):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(_REDIS_CLIENT):
            return True
        tb = tb.tb_next
    return False


def _forget(local: LocalCache, tags: tuple[str, ...] | None) -> None:
    if tags is None:
        local.clear()
    else:
        local.drop_tags(tags)


def _told(data: Any) -> tuple[str, ...] | None:
    """The tags an invalidation message names; None (clear everything) for ``clear`` or anything unexpected."""
    if not isinstance(data, bytes | str) or data in (b"clear", "clear"):
        return None
    try:
        tags = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return None
    return tuple(tags)
