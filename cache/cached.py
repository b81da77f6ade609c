"""What a cache fetch returns, and the failure a loader raises when its source gave nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class LoadFailed(Exception):
    """A load produced no value; ``reason`` is safe to show. Stale values may stand in for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Cached:
    value: Any
    state: str            # "hit", "miss", "stale" or "bypass" (Redis unavailable)
    age_s: float
    ttl: float
    error: str | None = None   # why a stale value was served instead of a fresh one
