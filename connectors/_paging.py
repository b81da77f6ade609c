"""Keyset pages that stay full when unreadable rows are skipped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

K = TypeVar("K")
R = TypeVar("R")
T = TypeVar("T")


async def keyset_page(fetch: Callable[[K | None, int], Awaitable[Sequence[R]]], key: Callable[[R], K],
                      convert: Callable[[Sequence[R]], list[T]], after: K | None, limit: int) -> list[T]:
    """Up to ``limit`` converted rows after ``after``.

    ``convert`` turns a fetched batch of rows into records, leaving out (and
    reporting) the unreadable ones. A skipped row must not shorten the page:
    a short page reads as the last one to the caller, so the rows after it
    would never be listed. Only when rows were skipped does this cost another
    round trip.
    """
    out: list[T] = []
    while len(out) < limit:
        want = limit - len(out)
        rows = await fetch(after, want)
        out.extend(convert(rows))
        if len(rows) < want:
            break
        after = key(rows[-1])
    return out
