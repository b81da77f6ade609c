"""A page of a keyset-paginated list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    rows: list[T]
    next_key: Any | None      # keyset position after the last row, None on the last page
    limit: int


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], Any]) -> tuple[list[T], Any | None]:
    """Rows fetched with ``limit + 1``: the page and the position after it, if there is more."""
    if len(rows) > limit:
        kept = list(rows[:limit])
        return kept, key(kept[-1])
    return list(rows), None
