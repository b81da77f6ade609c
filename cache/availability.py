"""Whether Redis is worth asking: after a failure it is skipped for a short backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Availability:
    """Up, or down until a backoff passes; then one caller per backoff period tries Redis again."""

    def __init__(self, backoff: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff = backoff
        self._clock = clock
        self._up = True
        self._retry_at = 0.0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    @property
    def up(self) -> bool:
        return self._up

    def usable(self) -> bool:
        if self._up:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        # Only this caller probes; the rest keep bypassing until it reports back.
        self._retry_at = now + self.backoff
        return True

    def failed(self, exc: BaseException) -> None:
        self._up = False
        self._retry_at = self._clock() + self.backoff
        self.last_error = describe(exc)
        self.last_error_at = datetime.now(UTC)

    def succeeded(self) -> None:
        self._up = True
