"""What the dashboard remembers between page loads: recent request/cache totals and when outages began."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

SAMPLE_INTERVAL_S = 2.0
HISTORY_SPAN_S = 300.0


class History:
    """The API's request and cache totals, one sample per ``interval`` seconds over the last ``span`` seconds.

    A reloaded page draws its charts from these instead of starting empty; the deque bounds the memory.
    """

    def __init__(self, interval: float = SAMPLE_INTERVAL_S, span: float = HISTORY_SPAN_S) -> None:
        self.interval = interval
        self.span = span
        self._samples: deque[dict[str, Any]] = deque(maxlen=int(span / interval) + 1)

    def record(self, totals: dict[str, Any], now: float | None = None) -> None:
        """Add one sample of ``Summary.as_dict()``-shaped totals, taken at ``now`` (epoch seconds)."""
        at = time.time() if now is None else now
        self._samples.append({"t": round(at * 1000), "requests": totals["requests"], "cache": totals["cache"]})

    def samples(self, now: float | None = None) -> list[dict[str, Any]]:
        """The samples of the last ``span`` seconds, oldest first, ``t`` in epoch milliseconds."""
        horizon = ((time.time() if now is None else now) - self.span) * 1000
        return [s for s in self._samples if s["t"] >= horizon]

    async def run(self, totals: Callable[[], dict[str, Any]]) -> None:
        """Sample ``totals()`` every ``interval`` seconds until cancelled."""
        while True:
            self.record(totals())
            await asyncio.sleep(self.interval)


class OutageClock:
    """When each failing source's current outage began, as far as this process has seen."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}
        self._fine: dict[str, datetime] = {}

    def since(self, source: str, failing: bool, first_failed_call: datetime | None) -> datetime | None:
        """The outage's start: its first failed call, or the first time it was seen failing if earlier.

        A source can be down with no call having failed (nobody asked for its data); then only the
        dashboard's own observation dates the outage.
        """
        now = datetime.now(UTC)
        if not failing:
            self._seen.pop(source, None)
            self._fine[source] = now
            return None
        seen = self._seen.setdefault(source, now)
        fine = self._fine.get(source)
        # A failed call from before the source was last seen fine belongs to an earlier outage.
        if first_failed_call is None or (fine is not None and first_failed_call <= fine):
            return seen
        return min(seen, first_failed_call)
