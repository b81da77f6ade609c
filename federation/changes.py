"""What a source's change feed reports, in the canonical model's ids, and what it means for cached answers.

A feed (one per source, in ``connectors/``) turns committed rows into ``Change`` values naming the
things they touch (``Ref``: an order, a customer, an account, a SKU). The core maps those to the
cache's tags (which answers to drop) and to resource paths (what clients following ``/v1/changes``
are told). Feeds never know about tags or paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal, Protocol

from federation.errors import LogUnavailable

__all__ = ["LogUnavailable"]   # feeds raise it from start(); it lives in the one error tree

# The kinds of thing a change can touch, each with its canonical spelling:
ORDER: Final = "order"         # Sales order number, e.g. "SO-2024-000042" (unpadded, upper case)
CUSTOMER: Final = "customer"   # Sales customer id as a decimal string, e.g. "123"
ACCOUNT: Final = "account"     # Accounting customer number unpadded, e.g. "C0000123"
SKU: Final = "sku"             # warehouse spelling, upper case, e.g. "WH-000123"

Kind = Literal["order", "customer", "account", "sku"]
Mode = Literal["log", "poll"]


@dataclass(frozen=True, slots=True)
class Ref:
    kind: Kind
    key: str


@dataclass(frozen=True, slots=True)
class Change:
    """One committed row change (insert, update or delete) and everything it touches."""

    table: str
    refs: frozenset[Ref]
    committed_at: datetime | None = None   # the source's commit time when it tells (log), else None


@dataclass(frozen=True, slots=True)
class Batch:
    """What a feed saw since its last acknowledged position.

    ``complete`` is False when the feed lost track of what changed (its log was cut, a round saw more
    rows than it may hold): everything cached from the source must go.
    """

    changes: tuple[Change, ...] = ()
    complete: bool = True
    position: object = None   # opaque to the core; handed back to ``ack``


class ChangeFeed(Protocol):
    """A source's changes, read without touching its schema.

    ``poll`` never advances past what was returned: only ``ack`` does, after the changes were applied,
    so a failure between the two repeats the batch instead of losing it.
    """

    source: str

    @property
    def mode(self) -> Mode: ...

    @property
    def queries(self) -> int:
        """Statements sent to the source so far: what watching costs it."""

    def details(self) -> dict[str, object]:
        """A few JSON-able facts for ``/v1/sources`` (slot, binlog position, rows held), no secrets."""

    async def start(self) -> None:
        """Take the current position: changes are reported from here on. Raises ``ConnectorError``."""

    async def poll(self) -> Batch:
        """Changes committed after the acknowledged position (possibly none). Raises ``ConnectorError``."""

    async def ack(self, batch: Batch) -> None:
        """Make ``batch.position`` the position the next ``poll`` starts from."""

    async def close(self) -> None: ...


@dataclass(slots=True)
class FeedStatus:
    """What ``/v1/sources``, the dashboard and the metrics say of one source's change capture."""

    source: str
    mode: Mode | None = None
    state: str = "starting"          # starting | watching | failing | standby (another replica watches)
    last_change_at: float | None = None   # epoch seconds of the newest change seen
    last_round_at: float | None = None    # epoch seconds of the last round that reached the source
    changes: int = 0
    error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def order_refs(order_nos: Iterable[str]) -> set[Ref]:
    return {Ref(ORDER, str(no).strip().upper()) for no in order_nos if no is not None and str(no).strip()}


def sku_refs(skus: Iterable[str | None]) -> set[Ref]:
    return {Ref(SKU, str(s).strip().upper()) for s in skus if s is not None and str(s).strip()}


def customer_refs(ids: Iterable[int | str | None]) -> set[Ref]:
    return {Ref(CUSTOMER, str(int(i))) for i in ids if i is not None}


def account_refs(acct_nos: Iterable[str | None]) -> set[Ref]:
    return {Ref(ACCOUNT, str(a).strip()) for a in acct_nos if a is not None and str(a).strip()}
