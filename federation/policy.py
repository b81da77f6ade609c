"""The resilience policy around every source call: deadline → bulkhead → breaker → retry → connector."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import pybreaker
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from federation.errors import ConnectorError, PoolExhausted, QueryFailed, SourceFailed, SourceTimeout, SourceUnavailable
from federation.stats import SourceStats

T = TypeVar("T")


class Observer(Protocol):
    """Where the policy reports what happened; the API wires Prometheus in here."""

    def call_finished(self, source: str, seconds: float, outcome: str) -> None: ...

    def retried(self, source: str) -> None: ...

    def bulkhead_rejected(self, source: str) -> None: ...

    def breaker_changed(self, source: str, state: str) -> None: ...


class NullObserver:
    def call_finished(self, source: str, seconds: float, outcome: str) -> None:
        pass

    def retried(self, source: str) -> None:
        pass

    def bulkhead_rejected(self, source: str) -> None:
        pass

    def breaker_changed(self, source: str, state: str) -> None:
        pass


@dataclass(frozen=True)
class Timeouts:
    """The one set of time limits for every source call; connectors and the policy read it alike."""

    connect: float   # to make a connection (the connectors' pool wait, too)
    attempt: float   # one attempt against the source; also the server-side statement timeout
    deadline: float  # a whole request, every call and retry within it


@dataclass(frozen=True)
class PolicyConfig:
    timeouts: Timeouts
    concurrency: int          # bulkhead: calls in flight at once
    bulkhead_wait: float      # how long a call may queue for the bulkhead
    attempts: int             # tries per call, retries included
    retry_ratio: float = 0.2  # retries may add at most this share of calls


class RetryBudget:
    """Token bucket: each call deposits ``ratio`` of a token, each retry spends one.

    During an outage every first attempt fails, so without a budget retries
    would multiply the load on a source that is already struggling.
    """

    def __init__(self, ratio: float, burst: float = 10.0) -> None:
        self._ratio = ratio
        self._burst = burst
        self._tokens = burst

    def deposit(self) -> None:
        self._tokens = min(self._burst, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class _BudgetSpent(stop_base):
    """Stops retrying once the budget has no token left; spends one for each retry it lets run."""

    def __init__(self, budget: RetryBudget) -> None:
        self._budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        return not self._budget.try_spend()


# What a source call can fail with when the source (or the way to it) is at fault. Anything else
# raised under the policy is a bug in our code: it passes through untouched, to become a 500, and
# is neither a source failure in the stats nor a reason to retry or open the breaker.
SOURCE_FAULTS = (ConnectorError, TimeoutError, pybreaker.CircuitBreakerError)


def _reason(exc: ConnectorError | TimeoutError | pybreaker.CircuitBreakerError) -> str:
    """What went wrong with the source, in words safe to show (one of ``SOURCE_FAULTS``)."""
    if isinstance(exc, pybreaker.CircuitBreakerError):
        return "circuit open"
    if isinstance(exc, SourceTimeout | TimeoutError):
        return "timeout"
    if isinstance(exc, SourceUnavailable):
        return "unreachable"
    if isinstance(exc, PoolExhausted):
        return "overloaded"
    if isinstance(exc, QueryFailed):
        return "query failed"
    return exc.message


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or (isinstance(exc, ConnectorError) and exc.transient)


class StateListener(pybreaker.CircuitBreakerListener):
    """Tells ``on_change(source, state)`` of each state a source's breaker enters."""

    def __init__(self, source: str, on_change: Callable[[str, str], None]) -> None:
        self._source = source
        self._on_change = on_change

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        self._on_change(self._source, new_state.name)


class Breaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker, keeping its state storage at hand.

    When the breaker opened lives in the storage, which pybreaker keeps private: the policy reads it
    to fail fast while open, and the shared breakers set it to the opener's clock.
    """

    def __init__(self, *, state_storage: pybreaker.CircuitBreakerStorage, **kwargs: Any) -> None:
        super().__init__(state_storage=state_storage, **kwargs)
        self.storage = state_storage

    @property
    def opened_at(self) -> float | None:
        """When the breaker last opened, as a POSIX time; None if it never has."""
        opened = self.storage.opened_at
        return opened.timestamp() if opened is not None else None

    @opened_at.setter
    def opened_at(self, when: float) -> None:
        self.storage.opened_at = datetime.fromtimestamp(when, UTC)


def make_breaker(source: str, fail_max: int, reset_timeout: float, observer: Observer,
                 storage: pybreaker.CircuitBreakerStorage | None = None) -> Breaker:
    """A breaker that only counts transient failures (unreachable, timeout, reset)."""
    return Breaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        # A rejected query or our own full pool says nothing about the source's health.
        exclude=[lambda exc: not _transient(exc)],
        listeners=[StateListener(source, observer.breaker_changed)],
        state_storage=storage or pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED),
        name=source,
    )


class SourcePolicy:
    """Runs one source's calls under its timeout, bulkhead, breaker and retry budget."""

    def __init__(self, source: str, config: PolicyConfig, breaker: Breaker,
                 observer: Observer | None = None, stats: SourceStats | None = None) -> None:
        self.source = source
        self.config = config
        self.breaker = breaker
        self.stats = stats or SourceStats()
        self._observer = observer or NullObserver()
        self._budget = RetryBudget(config.retry_ratio)
        self._bulkhead: asyncio.Semaphore | None = None
        self._probing = False

    def _semaphore(self) -> asyncio.Semaphore:
        # Created on first use so it belongs to the worker's running loop.
        if self._bulkhead is None:
            self._bulkhead = asyncio.Semaphore(self.config.concurrency)
        return self._bulkhead

    @property
    def breaker_state(self) -> str:
        return str(self.breaker.current_state)

    async def run(self, call: Callable[[], Awaitable[T]], remaining: float) -> T:
        """The call's result, or ``SourceFailed`` with a reason safe to show when the source failed.

        Any other exception (a bug of ours, a cancellation) is raised as itself and not recorded.
        """
        started = time.monotonic()
        deadline = started + remaining
        try:
            result = await self._guarded(call, deadline)
        except SourceFailed as exc:
            self._finish(started, exc.reason, exc.reason)
            raise
        except SOURCE_FAULTS as exc:
            reason = _reason(exc)
            self._finish(started, reason, reason)
            raise SourceFailed(self.source, reason) from exc
        self._finish(started, "ok", None)
        return result

    def _finish(self, started: float, outcome: str, error: str | None) -> None:
        seconds = time.monotonic() - started
        self.stats.record(seconds, error)
        self._observer.call_finished(self.source, seconds, outcome)

    async def _guarded(self, call: Callable[[], Awaitable[T]], deadline: float) -> T:
        if deadline - time.monotonic() <= 0:
            raise SourceFailed(self.source, "deadline exceeded")
        self._refuse_if_open()
        semaphore = self._semaphore()
        if semaphore.locked():
            try:
                async with asyncio.timeout(min(self.config.bulkhead_wait, max(deadline - time.monotonic(), 0.001))):
                    await semaphore.acquire()
            except TimeoutError:
                self._observer.bulkhead_rejected(self.source)
                raise SourceFailed(self.source, "overloaded") from None
        else:
            await semaphore.acquire()  # a slot is free: taken at once, no timer to arm
        probe = False
        try:
            # Half-open lets every concurrent caller through in pybreaker; one probe per process is enough.
            if self.breaker.current_state != pybreaker.STATE_CLOSED:
                if self._probing:
                    raise SourceFailed(self.source, "circuit open")
                probe = self._probing = True
            with self.breaker.calling():
                return await self._with_retries(call, deadline)
        finally:
            if probe:
                self._probing = False
            semaphore.release()

    def _refuse_if_open(self) -> None:
        """Fail fast while open, before queueing for the bulkhead."""
        if self.breaker.current_state == pybreaker.STATE_OPEN:
            opened = self.breaker.opened_at
            if opened is None or time.time() < opened + self.breaker.reset_timeout:
                raise SourceFailed(self.source, "circuit open")

    async def _with_retries(self, call: Callable[[], Awaitable[T]], deadline: float) -> T:
        """The first attempt runs bare; tenacity, the one retry layer, takes over only once it has failed."""
        self._budget.deposit()
        try:
            return await self._attempt(call, deadline)
        except SOURCE_FAULTS as exc:
            # The first retry goes at once: its usual cause is a pooled connection the server had dropped.
            if self.config.attempts < 2 or not _transient(exc) or not self._budget.try_spend():
                raise
        self._observer.retried(self.source)
        retrying = AsyncRetrying(
            # Stops are tried in order, so a budget token is spent only on a retry that will run.
            stop=stop_any(stop_after_attempt(self.config.attempts - 1),
                          stop_before_delay(max(deadline - time.monotonic(), 0)),
                          _BudgetSpent(self._budget)),
            wait=wait_random_exponential(multiplier=0.05, max=0.5),
            retry=retry_if_exception(_transient),
            before_sleep=lambda _state: self._observer.retried(self.source),
            reraise=True,
        )
        return await retrying(self._attempt, call, deadline)

    async def _attempt(self, call: Callable[[], Awaitable[T]], deadline: float) -> T:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SourceTimeout(self.source, "deadline exceeded")
        try:
            async with asyncio.timeout(min(self.config.timeouts.attempt, left)):
                return await call()
        except TimeoutError:
            raise SourceTimeout(self.source, "timeout") from None
