"""What the cache reports: per-source events for metrics, and this process's counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol


class CacheObserver(Protocol):
    """Receives one call per event, by source; must not block or raise."""

    def hit(self, source: str) -> None: ...
    def miss(self, source: str) -> None: ...
    def stale(self, source: str) -> None: ...
    def bypass(self, source: str) -> None: ...
    def singleflight_wait(self, source: str) -> None: ...
    def oversize(self, source: str) -> None: ...


class NullObserver:
    """The default observer: ignores every event."""

    def hit(self, source: str) -> None:
        pass

    def miss(self, source: str) -> None:
        pass

    def stale(self, source: str) -> None:
        pass

    def bypass(self, source: str) -> None:
        pass

    def singleflight_wait(self, source: str) -> None:
        pass

    def oversize(self, source: str) -> None:
        pass


@dataclass(slots=True)
class Counters:
    """What this process's cache did since it started; ``fetch`` outcomes plus the work behind them."""

    hits: int = 0
    misses: int = 0
    stale: int = 0
    bypass: int = 0
    loads: int = 0               # calls of load(), foreground and background
    refreshes: int = 0           # background stale-while-revalidate refreshes started
    singleflight_waits: int = 0  # fetches that waited for another's load instead of loading
    oversize: int = 0            # values not stored for being too large
    uncacheable: int = 0         # values the codec refused
    overtaken: int = 0           # loads not stored because an invalidation came while they ran
    redis_errors: int = 0       # failures that made Redis count as down
    pool_busy: int = 0           # Redis skipped for one call because every pooled connection was in use

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
