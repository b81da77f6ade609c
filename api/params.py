"""Query parameters: strict parsing with a 400 naming the parameter, and signed opaque cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

import orjson

from federation.errors import BadRequest
from federation.spelling import canonical_sku, is_valid_sku

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_TEXT = 100
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,8}$")
_ACCT = re.compile(r"^[A-Za-z0-9_-]{1,10}$")
_ORDER_NO = re.compile(r"^[A-Za-z0-9_./-]{1,20}$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,40}\Z")

Parser = Callable[[str, str], Any]


def is_printable(value: str) -> bool:
    """No control characters; anything else, in any script, is fine."""
    return _PRINTABLE.fullmatch(value) is not None


def text(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise BadRequest(name, f"'{name}' must not be empty")
    if len(value) > MAX_TEXT or not _PRINTABLE.match(value):
        raise BadRequest(name, f"'{name}' must be at most {MAX_TEXT} printable characters")
    return value


def cursor(name: str, raw: str) -> str:
    value = raw.strip()
    if not 0 < len(value) <= 512 or not re.fullmatch(r"[A-Za-z0-9_.=-]+", value):
        raise BadRequest(name, f"'{name}' is malformed")
    return value


def boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(name, f"'{name}' must be true or false")


def positive_int(name: str, raw: str) -> int:
    # [0-9], not \d: int() would also read other scripts' digits ("١٢" is 12). No padding either:
    # " 1" is not customer 1.
    if not re.fullmatch(r"[0-9]{1,10}", raw):
        raise BadRequest(name, f"'{name}' must be a positive integer")
    value = int(raw)
    if not 0 < value <= 2**31 - 1:
        raise BadRequest(name, f"'{name}' must be between 1 and {2**31 - 1}")
    return value


def limit(name: str, raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,4}", raw.strip()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(name, f"'{name}' must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def instant(name: str, raw: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 time; naive times are taken as UTC."""
    value = raw.strip()
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})?", value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        raise BadRequest(name, f"'{name}' must be a date (YYYY-MM-DD) or an ISO 8601 time") from None
    except OverflowError:
        # 0001-01-01T00:00+01:00 is a valid ISO time, but its UTC instant is before year 1.
        raise BadRequest(name, f"'{name}' is outside the years 0001 to 9999 once taken to UTC") from None


def time_span(values: Mapping[str, Any]) -> dict[str, Any]:
    """``since`` and ``until``, the first not later than the second: the list would be empty for a reason
    the caller did not mean."""
    since, until = values.get("since"), values.get("until")
    if since is not None and until is not None and since > until:
        raise BadRequest("since", f"'since' ({since.isoformat()}) is later than 'until' ({until.isoformat()})")
    return {"since": since, "until": until}


def choice(*allowed: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise BadRequest(name, f"'{name}' must be one of: {', '.join(allowed)}")
        return value
    return parse


def _code(pattern: re.Pattern[str], what: str) -> Parser:
    """A parser of codes written in capitals, whatever case they are sent in."""
    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper()
        if not pattern.match(value):
            raise BadRequest(name, f"'{name}' must be {what}")
        return value
    return parse


location_code = _code(_CODE, "a location code such as BCN1")
country = _code(_COUNTRY, "a two-letter ISO 3166 country code")
acct_no = _code(_ACCT, "an account number of at most 10 letters or digits")


def sku(name: str, raw: str) -> str:
    value = canonical_sku(unquote(raw))
    # The SKU pattern's \d also matches fullwidth and other scripts' digits.
    if value is None or not value.isascii() or not is_valid_sku(value):
        raise BadRequest(name, f"'{name}' must be a warehouse SKU such as WH-000123")
    return value


def order_no(name: str, raw: str) -> str:
    value = unquote(raw).strip().upper()
    if not _ORDER_NO.match(value):
        raise BadRequest(name, f"'{name}' must be an order number such as SO-2024-000042")
    return value


def parse_query(args: Mapping[str, list[str]], spec: Mapping[str, Parser]) -> dict[str, Any]:
    """Every parameter parsed by its spec; unknown or repeated parameters are a 400."""
    values: dict[str, Any] = {}
    for name, raws in args.items():
        parser = spec.get(name)
        if parser is None:
            known = ", ".join(sorted(spec)) or "none"
            # Name a typo back to its sender, but never reflect arbitrary text (markup, SQL) into a response.
            shown = name if _PARAM_NAME.match(name) else "?"
            raise BadRequest(shown, f"unknown query parameter '{shown}' (accepted: {known})")
        if len(raws) != 1:
            raise BadRequest(name, f"'{name}' may be given once")
        values[name] = parser(name, raws[0])
    return values


class Cursors:
    """Opaque page cursors, signed so a forged or foreign cursor is a 400, never a query."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()[:24]

    def encode(self, scope: str, key: Any) -> str:
        payload = orjson.dumps({"s": scope, "k": key})
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)

    def decode(self, scope: str, cursor: str) -> Any:
        """The keyset position in ``cursor``, which must have been made for ``scope``."""
        body, _, mac = cursor.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise BadRequest("cursor", "'cursor' is malformed") from None
        if not mac or not hmac.compare_digest(mac, self._sign(payload)):
            raise BadRequest("cursor", "'cursor' is not a cursor this API issued")
        # Signed is not proof of well-formed: a leaked or old secret must still not reach a 500.
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise BadRequest("cursor", "'cursor' is malformed") from None
        if not isinstance(data, dict) or "k" not in data:
            raise BadRequest("cursor", "'cursor' is malformed")
        if data.get("s") != scope:
            raise BadRequest("cursor", "'cursor' belongs to another list or other filters")
        return data["k"]


def scope_of(route: str, filters: Mapping[str, Any]) -> str:
    """Ties a cursor to its list and filters, so it cannot be replayed elsewhere."""
    canon = orjson.dumps({k: str(v) for k, v in sorted(filters.items()) if k not in ("cursor", "limit")})
    return route + ":" + hashlib.blake2b(canon, digest_size=8).hexdigest()
