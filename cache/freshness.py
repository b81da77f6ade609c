"""How long each source's cached answers stay fresh, and how long they may then be served stale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Phase = Literal["fresh", "revalidate", "expired"]


@dataclass(frozen=True)
class Freshness:
    """How long a kind of cached answer is fresh, and how long it may be served stale."""

    ttl: float
    stale_while_revalidate: float
    stale_if_error: float

    def __post_init__(self) -> None:
        if self.ttl <= 0 or self.stale_while_revalidate < 0 or self.stale_if_error < 0:
            raise ValueError(f"freshness needs ttl > 0 and non-negative stale windows, got {self}")

    @property
    def retention(self) -> float:
        """Seconds an entry is kept at all: past this age it can serve no purpose."""
        return self.ttl + max(self.stale_while_revalidate, self.stale_if_error)

    def phase(self, age: float) -> Phase:
        """Fresh (serve), revalidate (serve stale, refresh in the background) or expired (load)."""
        if age < self.ttl:
            return "fresh"
        if age < self.ttl + self.stale_while_revalidate:
            return "revalidate"
        return "expired"

    def usable_on_error(self, age: float) -> bool:
        """Whether a value this old may stand in for a source that just failed."""
        return age < self.ttl + self.stale_if_error
