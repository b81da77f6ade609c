"""How each system spells shared identifiers, and the one canonical spelling."""

from __future__ import annotations

import re

SKU_RE = re.compile(r"^WH-\d{6}$")


def canonical_sku(raw: str | None) -> str | None:
    """Any spelling of a warehouse SKU (case, padding) in warehouse form, or None."""
    if raw is None:
        return None
    sku = str.strip(raw).upper()
    return sku or None


def is_valid_sku(sku: str) -> bool:
    return SKU_RE.match(sku) is not None


def sales_sku(sku: str) -> str:
    return sku.lower()


def padded(value: str, width: int) -> str:
    """A fixed-width CHAR value as the package stores it (right-padded with spaces)."""
    return value.ljust(width)
