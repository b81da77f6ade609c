"""The process's one in-memory first level: values kept for at most ``ttl`` seconds, within a byte budget.

It holds the hot cache entries in front of Redis and, beside them, the whole answers the API
replays (``api/snapshots.py``). Staleness is bounded twice: by the short ttl, and by
invalidations, here or over Redis pub/sub from any other process, which clear all of it at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class LocalCache:
    def __init__(self, ttl: float, *, max_bytes: int = 64 << 20, max_entries: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, int, Any]] = {}   # name -> (kept until, size, value)
        self._bytes = 0

    def get(self, name: str) -> Any | None:
        found = self._entries.get(name)
        if found is None:
            return None
        if self._clock() >= found[0]:
            self._drop(name)
            return None
        return found[2]

    def put(self, name: str, value: Any, *, size: int, ttl: float | None = None) -> None:
        """Keep ``value`` (``size`` bytes) for ``ttl`` seconds, never longer than the first level's ttl."""
        if size > self._max_bytes:
            return
        self._drop(name)
        while self._entries and (self._bytes + size > self._max_bytes or len(self._entries) >= self._max_entries):
            # Oldest insertion first: dicts keep insertion order, and a short ttl makes recency matter little.
            self._drop(next(iter(self._entries)))
        kept_for = self.ttl if ttl is None else min(ttl, self.ttl)
        self._entries[name] = (self._clock() + kept_for, size, value)
        self._bytes += size

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, name: str) -> None:
        gone = self._entries.pop(name, None)
        if gone is not None:
            self._bytes -= gone[1]

    def __len__(self) -> int:
        return len(self._entries)
