"""Rolling per-source figures for /v1/sources and the dashboard: latency, error rate, last outcomes."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    calls: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failing_since: datetime | None = None   # the first failure since the last success

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


class SourceStats:
    """The last ``window`` seconds of calls to one source, in this process."""

    def __init__(self, window: float = 300.0, max_samples: int = 5000) -> None:
        self._window = window
        self._samples: deque[tuple[float, float, bool]] = deque(maxlen=max_samples)
        self._last_success: datetime | None = None
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._failing_since: datetime | None = None

    @property
    def failing(self) -> str | None:
        """The error of the latest call when it failed; None once a call succeeds again."""
        return self._last_error if self._failing_since is not None else None

    def record(self, seconds: float, error: str | None) -> None:
        self._samples.append((time.monotonic(), seconds, error is None))
        if error is None:
            self._last_success, self._failing_since = datetime.now(UTC), None
        else:
            self._last_error, self._last_error_at = error, datetime.now(UTC)
            self._failing_since = self._failing_since or self._last_error_at

    def snapshot(self) -> StatsSnapshot:
        horizon = time.monotonic() - self._window
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()
        latencies = sorted(s[1] for s in self._samples)
        errors = sum(1 for s in self._samples if not s[2])

        def pct(q: float) -> float | None:
            if not latencies:
                return None
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

        return StatsSnapshot(len(latencies), errors, pct(0.5), pct(0.95),
                             self._last_success, self._last_error, self._last_error_at, self._failing_since)
