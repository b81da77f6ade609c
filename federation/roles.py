"""The roles an API key carries, each granting what the one before it does and more."""

from __future__ import annotations

ROLES = ("reader", "finance", "admin")
FINANCE_ROLES = frozenset({"finance", "admin"})   # may read Accounting: invoices, balances, costs


def grants(role: str, required: str) -> bool:
    """Whether a key of ``role`` may use what ``required`` guards."""
    return ROLES.index(role) >= ROLES.index(required)
