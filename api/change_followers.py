"""One reader of the shared change stream per worker, fanning its entries out to that worker's SSE clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("bizfed.changes")
Entry = tuple[str, dict[str, str]]
QUEUE_LIMIT = 1000   # entries a slow client may fall behind by before it is told it missed some
END: Entry = ("", {})   # put on a follower's queue when the worker stops


class Window(Protocol):
    @property
    def entries(self) -> list[Entry]: ...
    @property
    def missed(self) -> bool: ...


class ChangeStream(Protocol):
    async def last_id(self) -> str: ...

    async def latest(self, count: int) -> list[Entry]: ...

    async def after(self, last_id: str, count: int = 500) -> Window: ...

    async def wait(self, last_id: str, block: float, count: int = 500) -> list[Entry]: ...


class HistoryUnavailable(Exception):
    """The shared change history could not be read (Redis away); asking again shortly is safe."""


@dataclass(eq=False)
class Follower:
    queue: asyncio.Queue[Entry] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False


class ChangeFollowers:
    def __init__(self, stream: ChangeStream, *, block: float = 2.0, retry: float = 1.0) -> None:
        self.stream = stream
        self._block = block
        self._retry = retry
        self._followers: set[Follower] = set()
        self._closed = False

    def follow(self) -> Follower:
        follower = Follower()
        self._followers.add(follower)
        return follower

    def leave(self, follower: Follower) -> None:
        self._followers.discard(follower)

    async def run(self) -> None:
        """Read the stream from its end on, handing each entry to every follower; until cancelled."""
        try:
            await self._follow()
        finally:
            self.close()

    async def _follow(self) -> None:
        last: str | None = None
        while True:
            try:
                if last is None:
                    last = await self.stream.last_id()
                for entry in await self.stream.wait(last, self._block):
                    last = entry[0]
                    self._hand_out(entry)
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # Redis away: followers keep their connections and catch up after
                log.debug("change stream unreadable: %s", type(exc).__name__)
                await asyncio.sleep(self._retry)

    def close(self) -> None:
        """Tell every follower the worker is stopping, so their streams end instead of holding shutdown."""
        self._closed = True
        for follower in list(self._followers):
            _offer(follower, END)

    @property
    def closed(self) -> bool:
        return self._closed

    def _hand_out(self, entry: Entry) -> None:
        for follower in list(self._followers):
            _offer(follower, entry)


def _offer(follower: Follower, entry: Entry) -> None:
    try:
        follower.queue.put_nowait(entry)
    except asyncio.QueueFull:
        follower.overflowed = True


def visible(fields: Mapping[str, str], may_see_restricted: bool) -> bool:
    return may_see_restricted or fields.get("restricted") != "1"


def parse_id(value: str) -> tuple[int, int] | None:
    """A stream id ``<ms>-<seq>`` as a comparable pair, None if it is not one."""
    ms, sep, seq = value.strip().partition("-")
    if not ms.isdigit() or (sep and not seq.isdigit()) or len(ms) > 15 or len(seq) > 15:
        return None
    return int(ms), int(seq or 0)
