"""A small in-process first level in front of Redis: hot entries kept for at most ``ttl`` seconds.

Staleness is bounded twice: by the short ttl, and by invalidation messages
over Redis pub/sub that clear every worker's first level at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cache.store import Entry


class LocalCache:
    def __init__(self, ttl: float, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Entry]] = {}
        # Bumped by every clear(), so whatever was built from these entries can tell it is outdated.
        self.generation = 0

    def get(self, name: str) -> Entry | None:
        found = self._entries.get(name)
        if found is None:
            return None
        kept_until, entry = found
        if self._clock() >= kept_until:
            del self._entries[name]
            return None
        return entry

    def put(self, name: str, entry: Entry) -> None:
        if len(self._entries) >= self._max and name not in self._entries:
            # Oldest insertion first: dicts keep insertion order, and a short ttl makes recency matter little.
            del self._entries[next(iter(self._entries))]
        self._entries[name] = (self._clock() + self._ttl, entry)

    def clear(self) -> None:
        self._entries.clear()
        self.generation += 1

    def __len__(self) -> int:
        return len(self._entries)
