"""Breaker openings shared by every worker and replica, without a round trip on the request path.

Each process keeps its own in-memory breakers (``federation/policy.py``), so the hot path never
waits on shared state. A background task publishes local openings and closings to a
``BreakerBoard`` (Redis in production: ``cache/breakers.py``) and applies openings published by
others. While the board is unreachable the task just tries again later: every process still
has its own working breakers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pybreaker

from federation.policy import Breaker, StateListener

log = logging.getLogger("bizfed.breakers")


@dataclass(frozen=True, slots=True)
class Opening:
    opened_at: float   # time.time() of the process that opened: replicas share wall-clock time
    by: str            # which process opened it


class BreakerBoard(Protocol):
    """Where breaker openings are shared. Unreachable: ``False``/``None`` answers, never an exception."""

    async def publish(self, source: str, opening: Opening | None, ttl: float) -> bool:
        """Record ``source`` open (for ``ttl`` seconds) or, given None, closed; False if the board is unreachable."""

    async def read(self, sources: Sequence[str]) -> dict[str, Opening | None] | None:
        """Each source's current opening (None: closed); None if the board is unreachable."""


class SharedBreakers:
    def __init__(self, board: BreakerBoard, breakers: Mapping[str, Breaker], *,
                 poll: float = 0.5, identity: str | None = None) -> None:
        self._board = board
        self._breakers = breakers
        self._poll = poll
        self._me = identity or f"{os.uname().nodename}:{os.getpid()}"
        # The latest local state of each source not yet published: only the latest matters, and it is
        # kept until the board takes it, so an opening made while the board was unreachable still travels.
        self._unpublished: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._applying = False
        self._from_remote: set[str] = set()
        self.shared = True   # whether the last round reached the board
        for source, breaker in breakers.items():
            breaker.add_listener(StateListener(source, self.local_change))

    def local_change(self, source: str, state: str) -> None:
        """Called synchronously by pybreaker; only queues, never does I/O."""
        if self._applying:
            return
        if state != pybreaker.STATE_OPEN:
            self._from_remote.discard(source)
        if state != pybreaker.STATE_HALF_OPEN:
            self._unpublished[source] = state
            self._changed.set()

    async def run(self) -> None:
        """Publish local changes and apply remote openings until cancelled."""
        while True:
            self._changed.clear()
            reached = await self._flush() and await self._pull()
            if self.shared and not reached:
                log.warning("breaker sync: shared state unreachable; breakers are local until it returns")
            self.shared = reached
            with contextlib.suppress(TimeoutError):
                # Wake early when a local change is waiting to be published.
                await asyncio.wait_for(self._changed.wait(), self._poll)

    async def _flush(self) -> bool:
        for source, state in list(self._unpublished.items()):
            breaker = self._breakers[source]
            opening = Opening(time.time(), self._me) if state == pybreaker.STATE_OPEN else None
            if not await self._board.publish(source, opening, breaker.reset_timeout):
                return False
            if self._unpublished.get(source) == state:
                del self._unpublished[source]
        return True

    async def _pull(self) -> bool:
        names = list(self._breakers)
        openings = await self._board.read(names)
        if openings is None:
            return False
        for source in names:
            breaker, remote = self._breakers[source], openings.get(source)
            if remote is None:
                if source in self._from_remote and breaker.current_state == pybreaker.STATE_OPEN:
                    self._set(breaker, pybreaker.STATE_CLOSED)
                self._from_remote.discard(source)
                continue
            if remote.by == self._me or breaker.current_state != pybreaker.STATE_CLOSED:
                continue
            self._set(breaker, pybreaker.STATE_OPEN, remote.opened_at)
            self._from_remote.add(source)
            log.info("breaker %s opened by %s", source, remote.by)
        return True

    def _set(self, breaker: Breaker, state: str, opened_at: float | None = None) -> None:
        self._applying = True
        try:
            if state == pybreaker.STATE_OPEN:
                breaker.open()
                # Keep the opener's clock so every process half-opens at about the same time.
                breaker.opened_at = opened_at or time.time()
            else:
                breaker.close()
        finally:
            self._applying = False
