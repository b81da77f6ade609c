"""Key batching for many-key lookups, and LIKE patterns for substring filters."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# One statement per chunk: small enough for every driver's parameter limit,
# large enough that a 500-key page is a single round trip.
CHUNK = 500

LIKE_ESCAPE = "/"


def unique(keys: Iterable[K | None]) -> list[K]:
    """The keys without duplicates or None, first occurrence order kept."""
    return list(dict.fromkeys(k for k in keys if k is not None))


def chunked(keys: Sequence[K], size: int = CHUNK) -> Iterator[Sequence[K]]:
    for start in range(0, len(keys), size):
        yield keys[start:start + size]


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards escaped with ``LIKE_ESCAPE``."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%"
