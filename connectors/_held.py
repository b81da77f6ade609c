"""Driver connections made by a SQLAlchemy async engine and held, lent to one call at a time.

SQLAlchemy makes each connection (the URL's driver options, the engine's connect event) and closes it
in the end; holding them checked out of its pool saves its checkout and checkin on every call, about
0.1 ms each way on asyncmy, which is as much as a simple query takes. What a pool's pre-ping would
catch is handled the other way round: a connection that failed is dropped with every idle one, and
one left idle longer than ``max_idle`` is remade before use. The call that met the dead connection
fails as transient; retrying it is the policy's job, the only retry layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection

from federation.errors import PoolExhausted, SourceUnavailable


@dataclass(eq=False)
class _Held:
    proxied: PoolProxiedConnection
    used_at: float   # when it was last given back (or made): how long it has sat idle

    @property
    def driver(self) -> Any:
        return self.proxied.driver_connection


class HeldConnections:
    """At most ``size`` connections of ``engine``, each lent to one caller at a time."""

    def __init__(self, source: str, engine: AsyncEngine, size: int, *, max_idle: float,
                 keeps: Callable[[BaseException], bool], clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self._source = source
        self._engine = engine
        self._max_idle = max_idle
        self._keeps = keeps   # whether a call's error leaves its connection fit to lend again
        self._clock = clock
        self._slots = asyncio.Semaphore(size)
        self._idle: deque[_Held] = deque()
        self._lent = 0
        self.waiting = 0
        self._closed = False

    @property
    def lent(self) -> int:
        return self._lent

    @property
    def idle(self) -> int:
        return len(self._idle)

    @contextlib.asynccontextmanager
    async def lease(self, wait: float) -> AsyncIterator[Any]:
        """A driver connection for the block; ``PoolExhausted`` if none is free within ``wait`` seconds."""
        await self._take_slot(wait)
        held: _Held | None = None
        try:
            held = self._pick() or await self._make()
            self._lent += 1
            try:
                yield held.driver
            finally:
                self._lent -= 1
        except BaseException as exc:
            if held is not None and not self._keeps(exc):
                self._drop(held, with_idle=True)
                held = None
            raise
        finally:
            if held is not None:
                self._give_back(held)
            self._slots.release()

    async def _take_slot(self, wait: float) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        self.waiting += 1
        try:
            async with asyncio.timeout(wait):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolExhausted(self._source, "no connection free in time") from None
        finally:
            self.waiting -= 1

    def _pick(self) -> _Held | None:
        now = self._clock()
        while self._idle:
            held = self._idle.pop()   # the most recently used: the likeliest to be alive
            if now - held.used_at <= self._max_idle:
                return held
            self._drop(held)
        return None

    async def _make(self) -> _Held:
        try:
            proxied = await self._engine.raw_connection()
        except (sa_exc.SQLAlchemyError, OSError, EOFError, RuntimeError) as exc:
            # Only the driver runs here. Besides its errors (wrapped by SQLAlchemy) and the socket's,
            # asyncmy lets a RuntimeError out when the server resets the connection just after the
            # TCP handshake ("Transport does not expose socket instance").
            raise SourceUnavailable(self._source, "cannot connect") from exc
        return _Held(proxied, self._clock())

    def _give_back(self, held: _Held) -> None:
        if self._closed:
            self._drop(held)
            return
        held.used_at = self._clock()
        self._idle.append(held)

    def _drop(self, held: _Held, *, with_idle: bool = False) -> None:
        """Close ``held`` for good; with ``with_idle``, the idle ones too: a server that dropped one
        connection (a restart, a network cut) has most likely dropped them all."""
        while with_idle and self._idle:
            self._invalidate(self._idle.pop())
        self._invalidate(held)

    @staticmethod
    def _invalidate(held: _Held) -> None:
        # Invalidation terminates the driver connection without a round trip: safe on a dead socket.
        with contextlib.suppress(Exception):
            held.proxied.invalidate()

    async def close(self) -> None:
        """Close the idle connections now; lent ones close as they come back."""
        self._closed = True
        while self._idle:
            self._invalidate(self._idle.pop())


async def close_held(held: HeldConnections | None, engine: AsyncEngine | None) -> None:
    """Close what a Sales reader holds: its connections, then the engine that made them."""
    if held is not None:
        await held.close()
    if engine is not None:
        await engine.dispose()
