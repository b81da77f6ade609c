"""Health probes shared by everything that reports on the dependencies, one set per worker process.

/health/ready, /v1/sources, /metrics and the dashboard all read through ``HealthProbes``: each backend is
pinged at most once per ``reuse`` seconds, callers arriving while a ping is in flight wait for that one,
and a ping that outlives its limit is not repeated until it has ended, so no load on these routes turns
into load on the backends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from federation.errors import SourceUnavailable
from federation.sources import Probe, ProbeResult, probe

REUSE_S = 1.0
PROBE_TIMEOUT = 1.0   # seconds a due probe may take before its backend counts as not answering
CACHE = "cache"


@dataclass
class _Backend:
    check: Probe
    result: ProbeResult | None = None
    taken_at: float = 0.0
    flight: asyncio.Task[ProbeResult] | None = None
    running: asyncio.Task[None] | None = None   # the last check, which may outlive its probe


class HealthProbes:
    """The latest probe of each backend, refreshed on demand at most once per ``reuse`` seconds."""

    def __init__(self, checks: Mapping[str, Probe], *, reuse: float = REUSE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._backends = {name: _Backend(check) for name, check in checks.items()}
        self._reuse = reuse
        self._clock = clock

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._backends)

    async def results(self, limit: float) -> dict[str, ProbeResult]:
        """Every backend's outcome no older than ``reuse`` seconds, probing (within ``limit``) those that are."""
        names = list(self._backends)
        found = await asyncio.gather(*(self.result(name, limit) for name in names))
        return dict(zip(names, found, strict=True))

    async def result(self, name: str, limit: float) -> ProbeResult:
        backend = self._backends[name]
        if backend.result is not None and self._clock() - backend.taken_at < self._reuse:
            return backend.result
        if backend.flight is None:
            backend.flight = asyncio.get_running_loop().create_task(self._probe(backend, limit),
                                                                    name=f"health-probe-{name}")
        # Shielded: a caller that hangs up must not cancel the probe others are waiting for.
        return await asyncio.shield(backend.flight)

    async def _probe(self, backend: _Backend, limit: float) -> ProbeResult:
        started = self._clock()
        try:
            if backend.running is not None and not backend.running.done():
                # The previous check is still unanswered (and cancelled): the backend still is not answering.
                result = ProbeResult(False, None, "timeout")
            else:
                backend.running = asyncio.get_running_loop().create_task(_run(backend.check))
                result = await probe(backend.running, limit)
            # Dated from its start, so pings begin at least ``reuse`` seconds apart.
            backend.result, backend.taken_at = result, started
            return result
        finally:
            backend.flight = None


async def _run(check: Probe) -> None:
    try:
        await check()
    except SourceUnavailable:
        # A connection the server dropped (a restart, a network cut) fails the first call made on it,
        # and the connector has let go of its idle ones by then: a second ping, on a new connection,
        # says whether the source itself answers. Both stay within the probe's limit.
        await check()

