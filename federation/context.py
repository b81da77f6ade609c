"""Per-request state: who asks, the deadline, and what each source contributed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from federation.roles import FINANCE_ROLES

Status = Literal["ok", "stale", "unavailable"]
CacheState = Literal["hit", "miss", "stale", "none", "bypass"]

_STATUS_RANK = {"ok": 0, "stale": 1, "unavailable": 2}
_CACHE_RANK = {"hit": 0, "stale": 1, "bypass": 2, "miss": 3, "none": 4}


@dataclass(slots=True)
class SourceReport:
    status: Status
    cache: CacheState
    age_s: float = 0.0
    error: str | None = None
    ttl: float | None = None     # seconds the value stays fresh, for Cache-Control

    def merged(self, other: SourceReport) -> SourceReport:
        """Several calls to one source in one request: the worst status and cache state win."""
        worst = self if _STATUS_RANK[self.status] >= _STATUS_RANK[other.status] else other
        cache = self.cache if _CACHE_RANK[self.cache] >= _CACHE_RANK[other.cache] else other.cache
        ttls = [t for t in (self.ttl, other.ttl) if t is not None]
        return SourceReport(worst.status, cache, max(self.age_s, other.age_s),
                            worst.error or self.error or other.error, min(ttls) if ttls else None)


@dataclass
class RequestContext:
    role: str
    deadline: float                         # time.monotonic() by which the answer is due
    sources: dict[str, SourceReport] = field(default_factory=dict)
    redacted: list[str] = field(default_factory=list)
    # The tags of the cached parts the answer is made of; None once a part without tags is used, since
    # any invalidation may then concern it.
    tags: set[str] | None = field(default_factory=set)

    @classmethod
    def start(cls, role: str, budget: float) -> RequestContext:
        return cls(role=role, deadline=time.monotonic() + budget)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def finance(self) -> bool:
        return self.role in FINANCE_ROLES

    @property
    def partial(self) -> bool:
        return any(r.status == "unavailable" for r in self.sources.values())

    def record(self, source: str, report: SourceReport) -> None:
        previous = self.sources.get(source)
        self.sources[source] = previous.merged(report) if previous else report

    def depends_on(self, tags: tuple[str, ...]) -> None:
        if not tags:
            self.tags = None
        elif self.tags is not None:
            self.tags.update(tags)

    def redact(self, *fields: str) -> None:
        for name in fields:
            if name not in self.redacted:
                self.redacted.append(name)
