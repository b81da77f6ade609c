"""Compact msgpack encoding of cached values: records, Decimal, dates, tuples — never pickle.

The core's codec, handed to the cache, which stores the bytes without knowing what they hold.

Aware datetimes use msgpack's timestamp type (decoded as UTC); record dataclasses
are encoded by class name and decoded only if that name is in the codec's registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgpack

from federation import records

RECORD_TYPES: tuple[type, ...] = (
    records.Money, records.Location, records.Item, records.ItemStock, records.StockLevel,
    records.StockTotal, records.Customer, records.OrderStats, records.Product, records.ProductSales,
    records.Order, records.OrderLine, records.SoldItem, records.Account, records.Invoice,
)

_DECIMAL = 1
_DATE = 2
_TUPLE = 3
_RECORD = 4


class CodecError(ValueError):
    """A value the codec will not encode, or bytes it cannot decode (a ``ValueError``, as the cache expects)."""


class Codec:
    """Encodes and decodes cached values; only the registered record classes are ever built."""

    def __init__(self, record_types: Iterable[type] = RECORD_TYPES) -> None:
        self._records: dict[str, type] = {}
        self._fields: dict[type, tuple[str, ...]] = {}
        for cls in record_types:
            if not dataclasses.is_dataclass(cls) or any(not f.init for f in dataclasses.fields(cls)):
                raise TypeError(f"{cls!r} is not a dataclass whose fields are all constructor arguments")
            if cls.__name__ in self._records:
                raise TypeError(f"two record types are named {cls.__name__}")
            self._records[cls.__name__] = cls
            self._fields[cls] = tuple(f.name for f in dataclasses.fields(cls))

    def encode(self, value: Any) -> bytes:
        try:
            return self._pack(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"cannot encode: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        try:
            return self._unpack(data)
        except CodecError:
            raise
        except Exception as exc:  # msgpack raises several unrelated types on malformed input
            raise CodecError(f"cannot decode: {type(exc).__name__}: {exc}") from exc

    def _pack(self, value: Any) -> bytes:
        # strict_types sends tuples and subclasses (e.g. IntEnum, str subclasses) to _default.
        return msgpack.packb(value, default=self._default, strict_types=True, datetime=True,  # type: ignore[no-any-return]
                             use_bin_type=True)

    def _unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=self._ext_hook, timestamp=3, strict_map_key=False, raw=False)

    def _default(self, value: Any) -> msgpack.ExtType:
        cls = type(value)
        if cls is Decimal:
            return msgpack.ExtType(_DECIMAL, str(value).encode())
        if cls is tuple:
            return msgpack.ExtType(_TUPLE, self._pack(list(value)))
        if cls is date:
            return msgpack.ExtType(_DATE, value.isoformat().encode())
        if cls is datetime:
            raise TypeError("naive datetime (times must be timezone-aware)")
        names = self._fields.get(cls)
        if names is not None:
            return msgpack.ExtType(_RECORD, self._pack([cls.__name__, *(getattr(value, n) for n in names)]))
        raise TypeError(f"unsupported type {cls.__module__}.{cls.__qualname__}")

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == _DECIMAL:
            return Decimal(data.decode())
        if code == _TUPLE:
            return tuple(self._unpack(data))
        if code == _DATE:
            return date.fromisoformat(data.decode())
        if code == _RECORD:
            name, *values = self._unpack(data)
            cls = self._records.get(name)
            if cls is None:
                raise CodecError(f"record type {name!r} is not registered")
            return cls(*values)
        raise CodecError(f"unknown msgpack extension {code}")
