"""Turning raw legacy column values into canonical ones: money, dates, times, rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from federation.model import CENT

log = logging.getLogger("connectors")

R = TypeVar("R")
T = TypeVar("T")

HUNDRED = Decimal(100)

# What a malformed value can raise while it is converted; anything else is a bug in our code and
# propagates (a 500), never a skipped row. Text columns are trimmed with ``str.strip(value)`` rather
# than ``value.strip()`` so that a NULL or a number where text belongs is a TypeError, not an
# AttributeError that would look like our own mistake.
ROW_ERRORS = (ValueError, TypeError, ArithmeticError)


def convert_rows(rows: Iterable[R], convert: Callable[[R], T | None], *, source: str, what: str) -> list[T]:
    """Convert each row, skipping (with a warning) rows that are unreadable or that ``convert`` rejects."""
    out: list[T] = []
    for row in rows:
        try:
            record = convert(row)
        except ROW_ERRORS as exc:
            skipped_row(source, what, exc)
            continue
        if record is not None:
            out.append(record)
    return out


def skipped_row(source: str, what: str, exc: BaseException) -> None:
    """Report a row left out because converting it raised one of ``ROW_ERRORS``."""
    log.warning("%s: skipped an unreadable %s row (%s)", source, what, type(exc).__name__)


def cents(value: int | Decimal) -> Decimal:
    """Integer cents as a Decimal amount with two places (1250 -> 12.50)."""
    # the same exact product as Decimal(int(value)) * CENT, without building the Decimal first
    return CENT * int(value)


def decimal(value: Any) -> Decimal:
    """A DECIMAL column as the driver returns it, a Decimal; anything else (a NULL) is unreadable."""
    if isinstance(value, Decimal):
        return value
    raise TypeError(f"not a decimal: {type(value).__name__}")


def money_amount(value: Any) -> Decimal:
    """A money column as a Decimal rounded half-up to cents."""
    return decimal(value).quantize(CENT, ROUND_HALF_UP)


def line_total(qty: int, unit_price: Decimal, discount_pct: Decimal) -> Decimal:
    """qty × unit_price × (1 − discount_pct/100), rounded half-up to cents, exactly."""
    return (unit_price * qty * (HUNDRED - discount_pct) / HUNDRED).quantize(CENT, ROUND_HALF_UP)


def yyyymmdd(value: int | None) -> date | None:
    """An integer ``YYYYMMDD`` date; 0 means none. Raises ValueError for an impossible date."""
    if value is None or value == 0:
        return None
    n = int(value)
    if n < 0:
        raise ValueError("negative date")
    return date(n // 10000, n // 100 % 100, n % 100)


def utc(value: Any) -> datetime | None:
    """A timestamp as aware UTC: naive values are UTC already; text is parsed; garbage is None."""
    if type(value) is datetime and value.tzinfo is None:
        # value.replace(tzinfo=UTC) at a fifth of the cost: replace() parses keyword arguments
        return datetime.combine(value, value.time(), UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return utc(parsed)
    return None


def text_or_none(value: str | None) -> str | None:
    """CHAR/VARCHAR value without padding; blank is None."""
    if value is None:
        return None
    stripped = str.strip(value)
    return stripped or None
