"""The Redis key layout of the cache: namespaced, with the entry format version in every key."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Bump when the stored entry format or codec changes: a deploy then never reads old bytes.
FORMAT_VERSION = 2  # 2: invoices, orders and accounts carry one currency and Decimal amounts
RESERVED = frozenset({"lock", "tag", "epoch"})
_GLOB = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True, slots=True)
class Keys:
    """``<namespace>:v<format>:<source>:<key>`` for entries; locks, tag sets and epochs beside them."""

    namespace: str = "bizfed:cache"

    @property
    def root(self) -> str:
        return f"{self.namespace}:v{FORMAT_VERSION}"

    @property
    def invalidations(self) -> str:
        """The pub/sub channel that tells every process to drop its first-level entries."""
        return f"{self.root}:invalidations"

    def entry(self, source: str, key: str) -> str:
        return f"{self.root}:{source}:{key}"

    def lock(self, source: str, key: str) -> str:
        return f"{self.root}:lock:{source}:{key}"

    def tag(self, tag: str) -> str:
        return f"{self.root}:tag:{tag}"

    def tag_epoch(self, tag: str) -> str:
        return f"{self.root}:epoch:tag:{tag}"

    def source_epoch(self, source: str) -> str:
        return f"{self.root}:epoch:src:{source}"

    def key_epoch(self, source: str, key: str) -> str:
        return f"{self.root}:epoch:key:{source}:{key}"

    def epochs(self, source: str, key: str, tags: tuple[str, ...]) -> list[str]:
        """The counters an invalidation of this entry bumps; a load stores only if none moved."""
        return [self.source_epoch(source), self.key_epoch(source, key), *(self.tag_epoch(t) for t in tags)]

    def source_pattern(self, source: str) -> str:
        """A SCAN pattern for every entry of one source (sources may not use reserved names)."""
        return _GLOB.sub(r"\\\1", f"{self.root}:{source}:") + "*"
