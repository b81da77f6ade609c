"""The resilience policy's logic, driven by hand-written fake source calls."""

from __future__ import annotations

import asyncio
import time

import pytest

from federation.errors import QueryFailed, SourceFailed, SourceTimeout, SourceUnavailable
from federation.policy import NullObserver, PolicyConfig, RetryBudget, SourcePolicy, Timeouts, make_breaker


class FlakySource:
    """Fails the first ``failures`` calls with ``error``, then answers ``"ok"``."""

    def __init__(self, failures: int, error: Exception, delay: float = 0.0) -> None:
        self.failures = failures
        self.error = error
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def _policy(*, timeout: float = 0.5, attempts: int = 3, fail_max: int = 3, reset: float = 0.3,
            concurrency: int = 4, bulkhead_wait: float = 0.05) -> SourcePolicy:
    timeouts = Timeouts(connect=timeout, attempt=timeout, deadline=5.0)
    return SourcePolicy("src", PolicyConfig(timeouts=timeouts, concurrency=concurrency, bulkhead_wait=bulkhead_wait,
                                            attempts=attempts),
                        make_breaker("src", fail_max, reset, NullObserver()))


async def test_transient_error_is_retried():
    """A transient failure followed by success returns the value after a retry."""
    source = FlakySource(1, SourceUnavailable("src", "down"))
    assert await _policy().run(source, 5) == "ok"
    assert source.calls == 2


async def test_query_error_is_not_retried_and_does_not_trip():
    """A rejected query fails at once, is never retried and never opens the breaker."""
    policy = _policy(fail_max=1)
    source = FlakySource(10, QueryFailed("src", "bad"))
    for _ in range(3):
        with pytest.raises(SourceFailed, match="query failed"):
            await policy.run(source, 5)
    assert source.calls == 3
    assert policy.breaker_state == "closed"


async def test_timeout_bounds_each_attempt():
    """A hung call is abandoned after the per-attempt timeout, well within a generous bound."""
    policy = _policy(timeout=0.1, attempts=1)
    started = time.monotonic()
    with pytest.raises(SourceFailed, match="timeout"):
        await policy.run(FlakySource(0, RuntimeError(), delay=5), 5)
    assert time.monotonic() - started < 0.1 * 5


async def test_deadline_caps_retries():
    """Retries stop when the request's remaining budget is spent."""
    policy = _policy(timeout=0.2, attempts=10, fail_max=100)
    started = time.monotonic()
    with pytest.raises(SourceFailed):
        await policy.run(FlakySource(100, RuntimeError(), delay=5), 0.5)
    assert time.monotonic() - started < 0.5 * 3


async def test_breaker_opens_then_fails_fast_then_recovers():
    """After fail_max transient failures calls fail fast; after the reset timeout a probe closes it."""
    policy = _policy(attempts=1, fail_max=3, reset=0.3)
    broken = FlakySource(100, SourceTimeout("src", "timeout"))
    for _ in range(3):
        with pytest.raises(SourceFailed):
            await policy.run(broken, 5)
    assert policy.breaker_state == "open"
    started = time.monotonic()
    with pytest.raises(SourceFailed, match="circuit open"):
        await policy.run(broken, 5)
    assert time.monotonic() - started < 0.05
    assert broken.calls == 3
    await asyncio.sleep(0.35)
    assert await policy.run(FlakySource(0, RuntimeError()), 5) == "ok"
    assert policy.breaker_state == "closed"


async def test_bulkhead_rejects_when_full():
    """Calls beyond the concurrency limit wait briefly and then fail as overloaded."""
    policy = _policy(concurrency=2, bulkhead_wait=0.05)
    slow = FlakySource(0, RuntimeError(), delay=0.3)
    results = await asyncio.gather(*(policy.run(slow, 5) for _ in range(4)), return_exceptions=True)
    overloaded = [r for r in results if isinstance(r, SourceFailed) and r.reason == "overloaded"]
    assert len(overloaded) == 2
    assert results.count("ok") == 2


def test_retry_budget_limits_retries():
    """Without deposits the budget allows only its burst, then refuses retries."""
    budget = RetryBudget(ratio=0.1, burst=2)
    assert budget.try_spend()
    assert budget.try_spend()
    assert not budget.try_spend()
    for _ in range(11):  # ten deposits of 0.1 fall a float's hair short of one token
        budget.deposit()
    assert budget.try_spend()


@pytest.mark.parametrize("attempts", [1, 2, 3, 5])
async def test_a_failing_call_runs_at_most_the_configured_attempts(attempts: int):
    """However often the source fails transiently, one call executes it no more than ``attempts`` times."""
    policy = _policy(attempts=attempts, fail_max=100)
    source = FlakySource(100, SourceUnavailable("src", "down"))
    with pytest.raises(SourceFailed, match="unreachable"):
        await policy.run(source, 5)
    assert source.calls == attempts


async def test_the_last_failed_attempt_spends_no_retry_token():
    """A token is spent only for a retry that runs: two calls of two attempts each use two of a burst of two."""
    policy = _policy(attempts=2, fail_max=100)
    policy._budget = RetryBudget(ratio=0.0, burst=2)
    source = FlakySource(100, SourceUnavailable("src", "down"))
    for _ in range(2):
        with pytest.raises(SourceFailed):
            await policy.run(source, 5)
    assert source.calls == 4
    with pytest.raises(SourceFailed):
        await policy.run(source, 5)
    assert source.calls == 5, "the budget is spent: the third call is tried once"
