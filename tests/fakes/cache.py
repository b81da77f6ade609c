"""A dict-backed ``ReadThrough``: the freshness rules of ``cache/`` without Redis.

Values are stored as the core's codec encodes them (as the Redis cache stores them), so a hit or a stale
answer is a decoded copy, never the loader's own object. An entry is a *hit* while younger than ``ttl``; up to
``stale_while_revalidate`` later it is served *stale* while one background load refreshes it; when a load
raises ``SourceFailed``, an entry younger than ``ttl + stale_if_error`` is served *stale* with the failure's
reason; otherwise the load's value is a *miss* (and stored) or its error is raised. Time is ``clock``'s, so a
test can age entries without sleeping. Left out: Redis itself (no ``bypass``), single flight across callers,
the first level in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cache.freshness import Freshness
from federation.codec import Codec, CodecError
from federation.errors import SourceFailed

Load = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a fetch gives (the gateway's ``Cached``)."""

    value: Any
    state: str
    age_s: float
    ttl: float
    error: str | None = None


@dataclass(slots=True)
class _Entry:
    data: bytes
    stored_at: float
    tags: tuple[str, ...]


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeCache:
    """The ``ReadThrough`` port (and the watcher's ``Invalidator``) over a dict."""

    def __init__(self, ttl: float = 10.0, stale_while_revalidate: float = 0.0, stale_if_error: float = 3600.0, *,
                 clock: Callable[[], float] = time.monotonic, codec: Codec | None = None) -> None:
        self.freshness = Freshness(ttl, stale_while_revalidate, stale_if_error)
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.loads = 0
        self._clock = clock
        self._codec = codec or Codec()
        self._refreshes: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def fetch(self, source: str, key: str, tags: tuple[str, ...], load: Load) -> Fetched:
        name = (source, key)
        entry = self.entries.get(name)
        ttl = self.freshness.ttl
        if entry is not None:
            age = self._clock() - entry.stored_at
            phase = self.freshness.phase(age)
            if phase == "fresh":
                return Fetched(self._codec.decode(entry.data), "hit", age, ttl)
            if phase == "revalidate":
                if name not in self._refreshes:   # one refresh per key at a time
                    task = asyncio.ensure_future(self._refresh(name, tags, load))
                    self._refreshes[name] = task
                    task.add_done_callback(lambda _: self._refreshes.pop(name, None))
                return Fetched(self._codec.decode(entry.data), "stale", age, ttl)
        started = self._clock()
        self.loads += 1
        try:
            value = await load()
        except SourceFailed as exc:
            if entry is not None:
                age = self._clock() - entry.stored_at
                if self.freshness.usable_on_error(age):
                    return Fetched(self._codec.decode(entry.data), "stale", age, ttl, exc.reason)
            raise
        self._store(name, tags, value, started)
        return Fetched(value, "miss", 0.0, ttl)

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        wanted = set(tags)
        dropped = [name for name, entry in self.entries.items() if wanted.intersection(entry.tags)]
        for name in dropped:
            del self.entries[name]
        return len(dropped)

    async def invalidate_source(self, source: str) -> int:
        dropped = [name for name in self.entries if name[0] == source]
        for name in dropped:
            del self.entries[name]
        return len(dropped)

    async def settle(self) -> None:
        """Wait for the background refreshes started so far."""
        while self._refreshes:
            await asyncio.gather(*self._refreshes.values(), return_exceptions=True)

    async def _refresh(self, name: tuple[str, str], tags: tuple[str, ...], load: Load) -> None:
        started = self._clock()
        self.loads += 1
        try:
            value = await load()
        except SourceFailed:
            return   # the stale entry stays until it expires
        self._store(name, tags, value, started)

    def _store(self, name: tuple[str, str], tags: tuple[str, ...], value: Any, stored_at: float) -> None:
        try:
            data = self._codec.encode(value)
        except CodecError:
            return   # uncacheable: served this once, loaded again next time
        self.entries[name] = _Entry(data, stored_at, tags)
