"""The one path every source call takes: read-through cache (if any) → resilience policy → connector."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from federation.context import RequestContext, SourceReport
from federation.errors import PrimaryUnavailable, SourceFailed
from federation.policy import SourcePolicy

T = TypeVar("T")


class Cached(Protocol):
    """What a cache fetch gives: the value, and how fresh it is."""

    @property
    def value(self) -> Any: ...
    @property
    def state(self) -> str: ...          # "hit", "miss", "stale" or "bypass"
    @property
    def age_s(self) -> float: ...
    @property
    def ttl(self) -> float: ...
    @property
    def error(self) -> str | None: ...   # why a stale value stood in for a fresh one


class ReadThrough(Protocol):
    """What the federation needs of a cache (implemented in ``cache/``)."""

    async def fetch(self, source: str, key: str, tags: tuple[str, ...],
                    load: Callable[[], Awaitable[Any]]) -> Cached:
        """The cached value, or ``load()``'s; a stale value when ``load`` raises ``SourceFailed``
        within the stale-if-error window; else ``load``'s error."""


def cache_key(op: str, args: tuple[Any, ...]) -> str:
    # repr of the frozen filter dataclasses and key lists is deterministic.
    digest = hashlib.blake2b(repr(args).encode(), digest_size=12).hexdigest()
    return f"{op}:{digest}"


class Gateway:
    def __init__(self, connectors: Mapping[str, Any], policies: Mapping[str, SourcePolicy],
                 cache: ReadThrough | None = None) -> None:
        self.connectors = connectors
        self.policies = policies
        self.cache = cache

    async def ask(self, ctx: RequestContext, source: str, op: str, *args: Any,
                  tags: tuple[str, ...] = ()) -> Any:
        """``connectors[source].op(*args)`` under the source's policy, through the cache.

        Records the outcome in ``ctx``; raises ``SourceFailed`` when no data could be had.
        """
        method = getattr(self.connectors[source], op)
        policy = self.policies[source]

        def load() -> Awaitable[Any]:
            return policy.run(lambda: method(*args), ctx.remaining())

        if self.cache is None:
            try:
                value = await load()
            except SourceFailed as exc:
                ctx.record(source, SourceReport("unavailable", "none", error=exc.reason))
                raise
            ctx.record(source, SourceReport("ok", "none"))
            return value
        ctx.depends_on(tags)
        try:
            cached = await self.cache.fetch(source, cache_key(op, args), tags, load)
        except SourceFailed as exc:
            ctx.record(source, SourceReport("unavailable", "none", error=exc.reason))
            raise
        error = cached.error
        if cached.state == "stale" and error is None:
            # Served past its freshness while revalidating: if the source is failing right now
            # the refresh will fail too, so the answer is stale for that reason, not "ok".
            error = policy.stats.failing
        status = "stale" if cached.state == "stale" and error else "ok"
        ctx.record(source, SourceReport(status, cached.state,  # type: ignore[arg-type]
                                        round(cached.age_s, 1), error, cached.ttl))
        return cached.value

    async def primary(self, ctx: RequestContext, source: str, op: str, *args: Any,
                      tags: tuple[str, ...] = ()) -> Any:
        """Like ``ask`` for the resource's primary source: no data from it means 503."""
        try:
            return await self.ask(ctx, source, op, *args, tags=tags)
        except SourceFailed as exc:
            breaker = self.policies[source].breaker
            retry_after = max(1, round(breaker.reset_timeout)) if exc.reason == "circuit open" else 5
            raise PrimaryUnavailable(source, exc.reason, retry_after) from exc
