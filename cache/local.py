"""The process's one in-memory first level: values kept for at most ``ttl`` seconds, within a byte budget.

It holds the hot cache entries in front of Redis and, beside them, the whole answers the API
replays (``api/snapshots.py``). Staleness is bounded twice: by the short ttl, and by
invalidations, here or over Redis pub/sub from any other process: an invalidation by tag drops
the entries put under one of those tags and every entry put without tags; any other invalidation
clears it all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any


class LocalCache:
    def __init__(self, ttl: float, *, max_bytes: int = 64 << 20, max_entries: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, int, Any, tuple[str, ...]]] = {}   # name -> (until, size, value, tags)
        self._by_tag: dict[str, set[str]] = {}
        self._untagged: set[str] = set()
        self._bytes = 0

    def get(self, name: str) -> Any | None:
        found = self._entries.get(name)
        if found is None:
            return None
        if self._clock() >= found[0]:
            self._drop(name)
            return None
        return found[2]

    def put(self, name: str, value: Any, *, size: int, ttl: float | None = None, tags: tuple[str, ...] = ()) -> None:
        """Keep ``value`` (``size`` bytes) for ``ttl`` seconds, never longer than the first level's ttl."""
        if size > self._max_bytes:
            return
        self._drop(name)
        while self._entries and (self._bytes + size > self._max_bytes or len(self._entries) >= self._max_entries):
            # Oldest insertion first: dicts keep insertion order, and a short ttl makes recency matter little.
            self._drop(next(iter(self._entries)))
        kept_for = self.ttl if ttl is None else min(ttl, self.ttl)
        self._entries[name] = (self._clock() + kept_for, size, value, tags)
        self._bytes += size
        if not tags:
            self._untagged.add(name)
        for tag in tags:
            self._by_tag.setdefault(tag, set()).add(name)

    def drop_tags(self, tags: Iterable[str]) -> None:
        """Drop what was put under any of ``tags``, and whatever was put without tags."""
        names = set(self._untagged)
        for tag in tags:
            names |= self._by_tag.get(tag, set())
        for name in names:
            self._drop(name)

    def clear(self) -> None:
        self._entries.clear()
        self._by_tag.clear()
        self._untagged.clear()
        self._bytes = 0

    def _drop(self, name: str) -> None:
        gone = self._entries.pop(name, None)
        if gone is None:
            return
        self._bytes -= gone[1]
        if not gone[3]:
            self._untagged.discard(name)
        for tag in gone[3]:
            named = self._by_tag.get(tag)
            if named is not None:
                named.discard(name)
                if not named:
                    del self._by_tag[tag]

    def __len__(self) -> int:
        return len(self._entries)
