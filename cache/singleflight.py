"""In-process single-flight: concurrent callers for one key share one running call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """One task per key; callers await it shielded, so one caller's cancellation spares the rest."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Task[T]] = {}

    def running(self, key: str) -> bool:
        return key in self._calls

    def start(self, key: str, call: Callable[[], Coroutine[Any, Any, T]]) -> tuple[asyncio.Task[T], bool]:
        """The task for ``key``, started from ``call`` unless one runs; and whether it was already running."""
        task = self._calls.get(key)
        if task is not None:
            return task, True
        task = asyncio.create_task(call())
        self._calls[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return task, False

    async def do(self, key: str, call: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, bool]:
        """The result of the one call for ``key``, and whether this caller joined another's call."""
        task, joined = self.start(key, call)
        return await asyncio.shield(task), joined

    async def aclose(self) -> None:
        """Cancel every running call and wait for them to end."""
        tasks = list(self._calls.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        # Every caller may have gone (cancelled); retrieve the error so it is not reported as lost.
        if not task.cancelled():
            task.exception()
