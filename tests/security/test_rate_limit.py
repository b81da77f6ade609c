"""Per-key rate limiting shared by two server processes through Redis, and failing open when Redis is gone."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from deploy.local.faultproxy import FaultProxy
from tests.security.conftest import server_env
from tests.security.support import check_problem, leak_markers, leaks
from tests.servers import KEYS, Server, Upstreams, flush_redis_db, wait_for

REDIS_DB = 11
LIMIT = 20
WINDOW = 10
LIMITED = {"BIZFED_RATE_LIMIT": str(LIMIT), "BIZFED_RATE_WINDOW": str(WINDOW)}


@pytest.fixture(name="pair", scope="module")
def _pair(launch: Callable[..., Server], upstreams: Upstreams, redis_url: str) -> tuple[Server, Server]:
    """Two separate `bizfed serve` processes that share one Redis database, as two replicas would."""
    flush_redis_db(redis_url, REDIS_DB)
    env = server_env(upstreams, REDIS_DB, **LIMITED)
    return launch(env, name="replica-a"), launch(env, name="replica-b")


def _start_of_window() -> int:
    """Wait for a fresh fixed window, so a burst is not split across two; return the window's number."""
    while time.time() % WINDOW > 0.3:
        time.sleep(0.05)
    return int(time.time() // WINDOW)


def _burst(pair: tuple[Server, Server], key: str, count: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=30.0, headers=headers) as client:
        return [client.get(pair[n % 2].base + "/v1/locations") for n in range(count)]


def test_limit_is_shared_across_processes_and_per_key(pair: tuple[Server, Server]) -> None:
    """Alternating between two processes, a key gets LIMIT answers a window, then 429s; another key is unaffected."""
    for _attempt in range(2):
        window = _start_of_window()
        responses = _burst(pair, KEYS["finance"], LIMIT + 6)
        other = _burst(pair, KEYS["reader"], 4)
        if int(time.time() // WINDOW) == window:
            break  # the whole burst fell in one window; otherwise a slow machine split it: try once more
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * LIMIT + [429] * 6, statuses
    assert {r.status_code for r in other} == {200}, "another key was limited too"
    for response in responses[LIMIT:]:
        check_problem(response, 429)
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= WINDOW
    retry_after = int(responses[-1].headers["retry-after"])
    # Polled, not slept past: the key is served again once its window ends, Retry-After seconds away at most.
    wait_for(lambda: _burst(pair, KEYS["finance"], 1)[-1].status_code == 200, 10 * retry_after,
             f"the key served again after its Retry-After of {retry_after}s")


def test_unknown_keys_are_refused_before_they_are_counted(pair: tuple[Server, Server]) -> None:
    """A flood of unknown keys gets 401s (not 429s) and does not use up a real key's allowance."""
    flood = _burst(pair, "not-a-key", LIMIT + 5)
    assert {r.status_code for r in flood} == {401}
    assert {r.status_code for r in _burst(pair, KEYS["admin"], 3)} == {200}


def test_limiter_fails_open_and_says_so_when_redis_is_down(launch: Callable[..., Server], upstreams: Upstreams,
                                                            proxy_factory: Callable[[int], FaultProxy]) -> None:
    """With Redis refusing connections requests are served past the limit, and the fail-open is logged."""
    redis = proxy_factory(upstreams.redis_port)
    redis.refuse()
    refused = upstreams.env(redis=redis.port, redis_db=REDIS_DB)["BIZFED_REDIS_URL"]
    server = launch({**server_env(upstreams, REDIS_DB, **LIMITED), "BIZFED_REDIS_URL": refused}, name="redis-down")
    statuses = [r.status_code for r in _burst((server, server), KEYS["finance"], LIMIT + 10)]
    assert statuses == [200] * (LIMIT + 10), statuses
    wait_for(lambda: "rate limit not enforced" in server.log_text(), 10, "the fail-open warning in the log")
    for path in ("/health/ready", "/v1/sources"):
        text = server.get(path, role="reader").text
        assert '"cache"' in text, text
        assert not leaks(text, leak_markers(upstreams.targets)), f"{path} leaks: {text[:300]}"
