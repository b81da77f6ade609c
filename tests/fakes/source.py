"""What every fake source shares: the ``Source`` port's lifecycle and health calls, a log of the
calls made, and failures or slowness on demand, raised as the core's connector errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from federation.errors import ConnectorError, SourceUnavailable

Failure = type[ConnectorError] | Exception


@dataclass
class _Fault:
    failure: Failure | None     # None: slow only
    ops: frozenset[str]         # empty: every call, ping included
    times: int | None           # calls left to fail; None: until healed
    delay: float = 0.0

    def applies(self, op: str) -> bool:
        return (not self.ops or op in self.ops) and (self.times is None or self.times > 0)


class FakeSource:
    """Base of the in-memory sources: ``fail``, ``slow`` and ``heal`` change how its calls go.

    A fake is open from the start (it has nothing to connect); after ``close()`` every call raises
    ``SourceUnavailable``, as a real connector's does.
    """

    name: str

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._faults: list[_Fault] = []
        self._open = True
        self._in_use = 0

    def fail(self, failure: Failure = SourceUnavailable, *ops: str, times: int | None = None) -> None:
        """Make calls to ``ops`` (all calls when none are named) raise ``failure``.

        A ``ConnectorError`` class is raised as ``failure(self.name, "injected")``, the way a connector
        names itself; an exception instance (e.g. a bug of ours, not a source failure) is raised as it is.
        ``times`` bounds how many calls fail; the fault then lapses.
        """
        self._faults.append(_Fault(failure, frozenset(ops), times))

    def slow(self, seconds: float, *ops: str) -> None:
        """Make calls to ``ops`` (all calls when none are named) take ``seconds`` before answering."""
        self._faults.append(_Fault(None, frozenset(ops), None, seconds))

    def heal(self) -> None:
        """Every call answers again, at once."""
        self._faults.clear()

    def calls_to(self, op: str) -> int:
        return self.calls.count(op)

    @asynccontextmanager
    async def _call(self, op: str) -> AsyncIterator[None]:
        """Around each port method: log it, apply the faults, count it in use while it runs."""
        self.calls.append(op)
        self._in_use += 1
        try:
            if not self._open:
                raise SourceUnavailable(self.name, "connector is not open")
            for fault in [f for f in self._faults if f.applies(op)]:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.failure is not None:
                    if fault.times is not None:
                        fault.times -= 1
                    if isinstance(fault.failure, Exception):
                        raise fault.failure
                    raise fault.failure(self.name, "injected")
            yield
        finally:
            self._in_use -= 1

    # -- the Source port ------------------------------------------------------

    async def ping(self) -> None:
        async with self._call("ping"):
            return

    def pool_state(self) -> dict[str, int]:
        # No pool: each call is "in use" while it runs (e.g. while slowed down), nothing ever waits.
        return {"max": 0, "size": 0, "in_use": self._in_use, "idle": 0, "waiting": 0}

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False
