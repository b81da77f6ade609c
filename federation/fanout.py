"""Run source calls concurrently; a failed secondary source yields None instead of an error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from federation.errors import SourceFailed

T = TypeVar("T")


async def optional(call: Awaitable[T]) -> T | None:
    """The call's value, or None when its source gave nothing (already recorded in the context)."""
    try:
        return await call
    except SourceFailed:
        return None


async def nothing() -> None:
    """Stands in for a call the caller may not make (e.g. Accounting for a reader)."""
    return


async def gather(*calls: Awaitable[Any]) -> list[Any]:
    """All calls at once; the first error cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_coroutine(c)) for c in calls]
    except BaseExceptionGroup as failed:
        # Two primary calls failing together is one outage, not two errors: report the first.
        raise _first_leaf(failed) from None
    return [t.result() for t in tasks]


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _as_coroutine(call: Awaitable[T]) -> T:
    return await call
