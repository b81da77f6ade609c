"""Out of the box a key is limited: the default is a real limit, not one no client ever reaches."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from api.settings import DEFAULT_RATE_LIMIT
from tests.security.conftest import server_env
from tests.servers import KEYS, Server, Upstreams, flush_redis_db

REDIS_DB = 11     # test_rate_limit.py's: its servers are gone when this module starts, and the db is flushed


def test_default_settings_refuse_a_runaway_client(launch: Callable[..., Server], upstreams: Upstreams,
                                                  redis_url: str) -> None:
    """With no BIZFED_RATE_LIMIT set, one key sending without pause gets a 429 with Retry-After within the
    default count, while another key is still served."""
    flush_redis_db(redis_url, REDIS_DB)
    env = {k: v for k, v in server_env(upstreams, REDIS_DB).items() if not k.startswith("BIZFED_RATE_")}
    server = launch(env, name="default-limit")
    assert DEFAULT_RATE_LIMIT <= 10_000, "a default no client reaches is no limit"
    refused = None
    started = time.monotonic()
    with httpx.Client(timeout=30.0, headers={"Authorization": f"Bearer {KEYS['reader']}"}) as client:
        for sent in range(1, DEFAULT_RATE_LIMIT * 2):
            response = client.get(server.base + "/v1/locations")
            if response.status_code == 429:
                refused = (sent, response)
                break
            assert response.status_code == 200, response.text[:200]
            assert time.monotonic() - started < 120, f"no 429 after {sent} requests in two minutes"
    assert refused is not None, "the default limit never refused"
    sent, response = refused
    # The limit counts per fixed window, so a burst may straddle two windows and get up to twice the count.
    assert DEFAULT_RATE_LIMIT <= sent <= 2 * DEFAULT_RATE_LIMIT + 1
    assert int(response.headers["retry-after"]) >= 1
    other = httpx.get(server.base + "/v1/locations", headers={"Authorization": f"Bearer {KEYS['finance']}"},
                      timeout=30.0)
    assert other.status_code == 200
