"""Who watches each source's changes, and what that watcher last reported, kept in Redis for all replicas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

# Renew the lease if we hold it, else take it if free: one key, so one hash slot on a Cluster too.
_HOLD = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCaptureBoard:
    """``scopes`` maps a source to the suffix its lease and report live under: replicas configured for the
    same database share one lease, while deployments over other databases in the same Redis do not."""

    def __init__(self, redis: Redis, *, scopes: Mapping[str, str] | None = None,
                 prefix: str = "bizfed:v1:capture:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._scopes = dict(scopes or {})
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    async def hold(self, source: str, owner: str, ttl: float) -> bool:
        held = await self._hold(keys=[self._key("lease", source)], args=[owner, max(1, int(ttl * 1000))])
        return bool(held)

    async def release(self, source: str, owner: str) -> None:
        await self._release(keys=[self._key("lease", source)], args=[owner])

    async def report(self, source: str, status: Mapping[str, Any], ttl: float) -> None:
        await self._redis.set(self._key("status", source), orjson.dumps(status), px=max(1, int(ttl * 1000)))

    async def reports(self, sources: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Each source's last report, None where no watcher reported within its lifetime."""
        # One GET per key rather than MGET: on a Cluster the keys sit in different slots.
        found: dict[str, dict[str, Any] | None] = {}
        for source in sources:
            raw = await self._redis.get(self._key("status", source))
            found[source] = orjson.loads(raw) if raw is not None else None
        return found

    def _key(self, kind: str, source: str) -> str:
        scope = self._scopes.get(source)
        return f"{self._prefix}{kind}:{source}" + (f":{scope}" if scope else "")
