"""What the routes and middleware use, built once per worker by the composition root (``api/wiring.py``).

The API's modules see the services through this typed container and the protocols below, never
the adapters themselves: the root alone knows which connector, cache or limiter stands behind them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sanic import Sanic

from federation.gateway import Gateway, ReadThrough
from federation.policy import SourcePolicy
from federation.ports import Source

if TYPE_CHECKING:   # the API's own modules import this one: at run time the names are only annotations
    from api.change_followers import ChangeFollowers
    from api.dashboard_history import History, OutageClock
    from api.health import HealthProbes
    from api.logs import RequestIds
    from api.metrics import Metrics
    from api.params import Cursors
    from api.settings import Settings
    from api.snapshots import Snapshots

log = logging.getLogger("bizfed.services")
Step = Callable[[], Awaitable[None]]


class Cache(ReadThrough, Protocol):
    """The read-through cache as the API administers and reports it."""

    async def invalidate_tags(self, tags: Iterable[str]) -> int: ...

    async def invalidate_key(self, source: str, key: str) -> int: ...

    async def invalidate_source(self, source: str) -> int: ...

    async def ping(self) -> None: ...

    def state(self) -> dict[str, Any]:
        """Up or down, the last error and this process's counters."""


class CaptureReports(Protocol):
    async def reports(self, sources: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Each source's change-capture status as its watcher (in whichever replica) last reported it."""


class Judgement(Protocol):
    @property
    def allowed(self) -> bool: ...
    @property
    def retry_after(self) -> int: ...


class Limiter(Protocol):
    async def check(self, key_digest: str) -> Judgement: ...


@dataclass
class Lifecycle:
    """Every service's start, stop and health ping, and the background loops, registered once where built."""

    pings: dict[str, Step] = field(default_factory=dict)
    starts: list[Step] = field(default_factory=list)
    stops: list[Step] = field(default_factory=list)
    loops: dict[str, Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def add(self, *, start: Step | None = None, stop: Step | None = None,
            ping: tuple[str, Step] | None = None) -> None:
        if ping is not None:
            self.pings[ping[0]] = ping[1]
        if start is not None:
            self.starts.append(start)
        if stop is not None:
            self.stops.append(stop)

    async def start(self) -> None:
        for step in self.starts:
            await step()
        # Plain tasks, not app.add_task: Sanic logs a WARNING for each of its tasks cancelled at a clean stop.
        self._tasks = [asyncio.create_task(loop(), name=name) for name, loop in self.loops.items()]

    async def halt(self) -> None:
        """Cancel the background loops: one caught mid-query at shutdown otherwise keeps the worker alive."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        self._tasks = []

    async def stop(self) -> None:
        """Stop every service, the last started first; one failing to stop does not keep the others open."""
        await self.halt()
        for step in reversed(self.stops):
            try:
                await step()
            except Exception:
                log.exception("a service did not stop cleanly")


@dataclass(frozen=True)
class Services:
    settings: Settings
    cursors: Cursors
    metrics: Metrics
    sources: Mapping[str, Source]
    policies: Mapping[str, SourcePolicy]
    gateway: Gateway
    cache: Cache | None
    snapshots: Snapshots | None
    limiter: Limiter | None
    probes: HealthProbes
    request_ids: RequestIds
    history: History
    outages: OutageClock
    lifecycle: Lifecycle
    changes: ChangeFollowers | None = None
    capture: CaptureReports | None = None


def services(app: Sanic[Any, Any]) -> Services:
    """The worker's services; they exist from ``before_server_start`` on."""
    found: Services = app.ctx.services
    return found
