"""An in-memory breaker board: what Redis holds for the breaker sync, shared by the processes given it."""

from __future__ import annotations

from collections.abc import Sequence

import pybreaker

from federation.breakers import BreakerBoard, Opening
from federation.policy import Breaker


class FakeBoard:
    """Openings by source; ``reachable = False`` makes every call answer as an unreachable board does."""

    def __init__(self) -> None:
        self.openings: dict[str, Opening] = {}
        self.reachable = True
        self.calls = 0

    async def publish(self, source: str, opening: Opening | None, ttl: float) -> bool:
        self.calls += 1
        if not self.reachable:
            return False
        if opening is None:
            self.openings.pop(source, None)
        else:
            self.openings[source] = opening
        return True

    async def read(self, sources: Sequence[str]) -> dict[str, Opening | None] | None:
        self.calls += 1
        if not self.reachable:
            return None
        return {name: self.openings.get(name) for name in sources}


def trial_passes(breaker: Breaker) -> bool:
    """Whether ``breaker`` lets a call through now (a closed breaker, or a half-open one's trial)."""
    try:
        breaker.call(lambda: None)
    except pybreaker.CircuitBreakerError:
        return False
    return True


_: BreakerBoard = FakeBoard()
