"""The dashboard's memory between page loads: a bounded history of totals, and when an outage began."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.dashboard_history import History, OutageClock


def _totals(count: float) -> dict[str, object]:
    return {"requests": {"count": count, "errors": 0.0, "sum_s": 0.0, "buckets": []}, "cache": {"hit": 0.0}}


def test_history_keeps_only_the_last_span_in_bounded_memory() -> None:
    """However long it runs, the history holds one span's worth of samples, the newest ones, oldest first."""
    kept = History(interval=2.0, span=10.0)
    for i in range(1000):
        kept.record(_totals(i), now=1_000_000.0 + 2.0 * i)
    samples = kept.samples(now=1_000_000.0 + 2.0 * 999)
    assert [s["requests"]["count"] for s in samples] == [994, 995, 996, 997, 998, 999]
    assert len(kept._samples) <= 6
    assert samples[-1]["t"] == round((1_000_000.0 + 2.0 * 999) * 1000)


def test_history_forgets_samples_older_than_its_span() -> None:
    """Samples from before the span (a worker that idled, a paused clock) are not returned."""
    kept = History(interval=2.0, span=10.0)
    kept.record(_totals(1), now=100.0)
    kept.record(_totals(2), now=200.0)
    assert [s["requests"]["count"] for s in kept.samples(now=205.0)] == [2]


def test_outage_starts_at_its_first_failed_call() -> None:
    """A failing source's outage is dated from its first failed call, and forgotten once it is fine again."""
    clock = OutageClock()
    first = datetime.now(UTC) - timedelta(seconds=30)
    assert clock.since("sales", True, first) == first
    assert clock.since("sales", True, first) == first
    assert clock.since("sales", False, None) is None


def test_outage_without_failed_calls_starts_when_first_seen() -> None:
    """With no call to date it, an outage starts when it was first seen, and that time stays put."""
    clock = OutageClock()
    before = datetime.now(UTC)
    seen = clock.since("accounting", True, None)
    assert seen is not None
    assert seen >= before
    assert clock.since("accounting", True, None) == seen


def test_failed_call_of_an_earlier_outage_does_not_date_the_next() -> None:
    """A failure from before the source was last seen fine belongs to the previous outage, not this one."""
    clock = OutageClock()
    old_failure = datetime.now(UTC) - timedelta(minutes=10)
    clock.since("warehouse", True, old_failure)
    clock.since("warehouse", False, old_failure)
    since = clock.since("warehouse", True, old_failure)
    assert since is not None
    assert since > old_failure
