"""Change events in a capped Redis stream: every replica appends and reads the same history.

Entries are flat string fields, opaque here. Ids are Redis stream ids (``<ms>-<seq>``), which
clients of ``/v1/changes`` get back as ``Last-Event-ID``: the stream keeps the last ``maxlen``
entries (approximately), and a reader asking from before them is told the window was missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

Entry = tuple[str, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Window:
    entries: list[Entry]
    missed: bool   # entries after the asked id were trimmed away: the reader lost some


class RedisChangeStream:
    def __init__(self, redis: Redis, *, key: str = "bizfed:v1:changes", maxlen: int = 10_000) -> None:
        self._redis = redis
        self._key = key
        self._maxlen = maxlen

    async def publish(self, entries: Sequence[Mapping[str, str]]) -> None:
        if not entries:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for fields in entries:
                pipe.xadd(self._key, dict[Any, Any](fields), maxlen=self._maxlen, approximate=True)
            await pipe.execute()

    async def last_id(self) -> str:
        """The newest entry's id ("0-0" when empty): reading after it gives only what comes next."""
        found = _entries(await self._redis.xrevrange(self._key, count=1))
        return found[0][0] if found else "0-0"

    async def latest(self, count: int) -> list[Entry]:
        """The newest ``count`` entries, oldest first."""
        return _entries(await self._redis.xrevrange(self._key, count=count))[::-1]

    async def after(self, last_id: str, count: int = 500) -> Window:
        """Entries after ``last_id``, oldest first, at most ``count``; whether some were trimmed away."""
        entries = _entries(await self._redis.xrange(self._key, min=f"({last_id}", count=count))
        missed = False
        if last_id != "0-0":
            # Nothing kept at or before the id: it was trimmed away, and maybe some after it too.
            kept_before = await self._redis.xrange(self._key, max=last_id, count=1)
            missed = not kept_before and await self._redis.xlen(self._key) > 0
        return Window(entries, missed)

    async def wait(self, last_id: str, block: float, count: int = 500) -> list[Entry]:
        """Entries after ``last_id``, waiting up to ``block`` seconds for one (``redis`` must allow that long)."""
        raw: Any = await self._redis.xread({self._key: last_id}, count=count, block=max(1, int(block * 1000)))
        if not raw:
            return []
        # RESP2 answers [[key, entries]], RESP3 {key: entries}
        streams = list(raw.values()) if isinstance(raw, dict) else [entries for _, entries in raw]
        return _entries(streams[0])


def _entries(raw: Any) -> list[Entry]:
    return [(_text(i), {_text(k): _text(v) for k, v in fields.items()}) for i, fields in raw or ()]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
