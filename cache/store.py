"""The cache's Redis round trips: entries, the fill lock, tag sets and invalidation epochs.

Every method may raise ``RedisError``; deciding what a failure means is the read-through's job.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from cache.keys import Keys

log = logging.getLogger("bizfed.cache")


class Codec(Protocol):
    """Turns what is cached into bytes and back; the cache never looks inside.

    Both raise ``ValueError`` (or ``TypeError``) for a value or bytes they refuse.
    """

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...

# Stores only if no invalidation bumped an epoch since the load began, so a load that read
# the source before a change cannot put the old answer back after the change's invalidation;
# then releases the fill lock if this loader still holds it.
# KEYS: entry, lock, tag sets..., epochs...   ARGV: payload, retention ms, tag count, lock token, epochs...
_STORE = """
local ntags = tonumber(ARGV[3])
local stored = 1
for i = 1, #KEYS - 2 - ntags do
  if (redis.call('GET', KEYS[2 + ntags + i]) or '') ~= ARGV[4 + i] then stored = 0 break end
end
if stored == 1 then
  local ms = tonumber(ARGV[2])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ms)
  for i = 3, 2 + ntags do
    redis.call('SADD', KEYS[i], KEYS[1])
    if redis.call('PTTL', KEYS[i]) < ms then redis.call('PEXPIRE', KEYS[i], ms) end
  end
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return stored
"""

# KEYS: tag sets..., their epochs...   ARGV: tag count, epoch ttl ms
_DROP_TAGS = """
local n = tonumber(ARGV[1])
local dropped = 0
for i = 1, n do
  redis.call('INCR', KEYS[n + i])
  redis.call('PEXPIRE', KEYS[n + i], ARGV[2])
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 1000 do
    dropped = dropped + redis.call('DEL', unpack(members, j, math.min(j + 999, #members)))
  end
  redis.call('DEL', KEYS[i])
end
return dropped
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Entry:
    value: Any
    stored_at: float      # time.time() of the writer; replicas share wall-clock time, not monotonic
    size: int = 0         # bytes it takes stored

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)


@dataclass(frozen=True, slots=True)
class Claim:
    """One attempt at the fill lock, with the entry and epochs read in the same round trip."""

    token: str
    acquired: bool
    entry: Entry | None
    epochs: tuple[str, ...]


class EntryStore:
    def __init__(self, redis: Redis, keys: Keys, codec: Codec, *, lock_ttl: float, epoch_ttl: float) -> None:
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the cache stores msgpack bytes: its Redis client needs decode_responses=False")
        self._redis = redis
        self._keys = keys
        self._codec = codec
        self._lock_ms = max(1, round(lock_ttl * 1000))
        self._epoch_ms = max(1, round(epoch_ttl * 1000))
        self._store = redis.register_script(_STORE)
        self._drop_tags = redis.register_script(_DROP_TAGS)
        self._release = redis.register_script(_RELEASE)

    def encode(self, value: Any, stored_at: float) -> bytes:
        """The stored bytes of one entry; ``ValueError`` or ``TypeError`` for values the codec refuses."""
        return self._codec.encode([stored_at, value])

    def _decode(self, raw: bytes | str | None, name: str) -> Entry | None:
        if not isinstance(raw, bytes):
            return None
        try:
            stored_at, value = self._codec.decode(raw)
        except (ValueError, TypeError) as exc:
            log.warning("cache entry %s is unreadable, treating as a miss: %s", name, exc)
            return None
        return Entry(value, float(stored_at), len(raw))

    async def ping(self) -> None:
        await self._redis.ping()

    async def get(self, source: str, key: str) -> Entry | None:
        name = self._keys.entry(source, key)
        return self._decode(await self._redis.get(name), name)

    async def claim(self, source: str, key: str, tags: tuple[str, ...], token: str | None = None) -> Claim:
        """Try to take the fill lock (SET NX PX) and read the entry and epochs, in one round trip."""
        token = token or secrets.token_hex(8)
        name = self._keys.entry(source, key)
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._keys.lock(source, key), token, nx=True, px=self._lock_ms)
        pipe.get(name)
        pipe.mget(self._keys.epochs(source, key, tags))
        acquired, raw, epochs = await pipe.execute()
        return Claim(token, bool(acquired), self._decode(raw, name),
                     tuple((e or b"").decode() for e in epochs))

    async def release(self, source: str, key: str, claim: Claim) -> None:
        if claim.acquired:
            await self._release(keys=[self._keys.lock(source, key)], args=[claim.token])

    async def put(self, source: str, key: str, tags: tuple[str, ...], payload: bytes, retention: float,
                  claim: Claim) -> bool:
        """Store unless an invalidation moved an epoch since ``claim`` read them, and release its lock.

        True if stored.
        """
        keys = [self._keys.entry(source, key), self._keys.lock(source, key), *(self._keys.tag(t) for t in tags),
                *self._keys.epochs(source, key, tags)]
        token = claim.token if claim.acquired else ""
        args: list[Any] = [payload, max(1, round(retention * 1000)), len(tags), token, *claim.epochs]
        return bool(await self._store(keys=keys, args=args))

    async def drop_tags(self, tags: tuple[str, ...]) -> int:
        if not tags:
            return 0
        keys = [*(self._keys.tag(t) for t in tags), *(self._keys.tag_epoch(t) for t in tags)]
        return int(await self._drop_tags(keys=keys, args=[len(tags), self._epoch_ms]))

    async def drop_key(self, source: str, key: str) -> int:
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(self._keys.key_epoch(source, key))
        pipe.pexpire(self._keys.key_epoch(source, key), self._epoch_ms)
        pipe.delete(self._keys.entry(source, key))
        *_, dropped = await pipe.execute()
        return int(dropped)

    async def drop_source(self, source: str) -> int:
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(self._keys.source_epoch(source))
        pipe.pexpire(self._keys.source_epoch(source), self._epoch_ms)
        await pipe.execute()
        dropped = 0
        batch: list[bytes] = []
        async for name in self._redis.scan_iter(match=self._keys.source_pattern(source), count=1000):
            batch.append(name)
            if len(batch) >= 500:
                dropped += int(await self._redis.unlink(*batch))
                batch.clear()
        if batch:
            dropped += int(await self._redis.unlink(*batch))
        return dropped
