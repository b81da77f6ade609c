"""The cache counters the OpenAPI document describes are the ones the cache keeps."""

from __future__ import annotations

from dataclasses import fields

from api.docs import CACHE_COUNTERS
from cache.observer import Counters


def test_every_cache_counter_is_documented_and_no_other() -> None:
    assert list(CACHE_COUNTERS) == [f.name for f in fields(Counters)]
    assert all(text.strip() for text in CACHE_COUNTERS.values())
