"""Run source calls concurrently; a failed secondary source yields None instead of an error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, TypeVar

from federation.errors import FederationError, SourceFailed

T = TypeVar("T")


async def optional(call: Awaitable[T]) -> T | None:
    """The call's value, or None when its source gave nothing (already recorded in the context).

    Only a source's failure is optional: any other error (a bug) is raised, to be answered as a 500.
    """
    try:
        return await call
    except SourceFailed:
        return None


def abandon(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel calls whose answer is no longer wanted; a failure one had or has meanwhile is let go.

    Unretrieved, such a failure would be logged as "Task exception was never retrieved".
    """
    for task in tasks:
        task.cancel()
        task.add_done_callback(_let_go)


def _let_go(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def nothing() -> None:
    """Stands in for a call the caller may not make (e.g. Accounting for a reader)."""
    return


async def gather(*calls: Awaitable[Any]) -> list[Any]:
    """All calls at once; the first error cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_coroutine(c)) for c in calls]
    except BaseExceptionGroup as failed:
        # Two primary calls failing together is one outage, not two errors: report the first. A bug
        # outranks any outage beside it, which would otherwise hide it behind a 503.
        leaves = list(_leaves(failed))
        raise next((e for e in leaves if not isinstance(e, FederationError)), leaves[0]) from None
    return [t.result() for t in tasks]


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


async def _as_coroutine(call: Awaitable[T]) -> T:
    return await call
