"""The msgpack codec: exact round trips of every record type and the containers around them."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from federation import records
from federation.codec import RECORD_TYPES, Codec, CodecError

AT = datetime(2024, 5, 17, 13, 45, 12, 345678, tzinfo=UTC)
EUR = records.Money(Decimal("1234.50"), "EUR")

SAMPLES = [
    EUR,
    records.Location("B1", "Berlin hub", "Berlin", "DE", "Europe/Berlin"),
    records.Item("WH-000123", "Widget", None, "pcs", 250, True, AT),
    records.Item("WH-000124", "Gadget — große", "long text", "kg", None, False, AT),
    records.ItemStock("WH-000123", "Widget", "pcs", True, 10, 3),
    records.StockLevel("WH-000123", "B1", 10, 3),
    records.StockTotal("WH-000123", 10, 3),
    records.Customer(42, "ACME", "ops@acme.example", "DE", AT, "10042"),
    records.Customer(43, "Nobody", None, None, AT, None),
    records.OrderStats(3, AT),
    records.OrderStats(0, None),
    records.Product(7, "Widget", "WH-000123", EUR),
    records.ProductSales(12, 4, None),
    records.Order("SO-1001", 42, "shipped", AT, "B1", "EUR", Decimal("1234.50")),
    records.OrderLine("SO-1001", 1, 7, None, "Widget", 2, EUR, Decimal("0.05"), EUR),
    records.SoldItem("WH-000123", 12),
    records.Account("10042", "ACME", None, "EUR", Decimal("1234.50"), Decimal("1234.50"), Decimal("0.00"), 2),
    records.Invoice("INV-1", "10042", "SO-1001", date(2024, 5, 1), None, "EUR", Decimal("12.50"), Decimal("2.50"),
                    Decimal("0.00"), Decimal("12.50"), "open", True),
]


@pytest.fixture(name="codec")
def _codec() -> Codec:
    return Codec()


def test_every_record_type_in_connectors_is_registered() -> None:
    """Each dataclass defined in connectors/records.py is in the codec's registry."""
    defined = {cls for _, cls in inspect.getmembers(records, inspect.isclass)
               if dataclasses.is_dataclass(cls) and cls.__module__ == records.__name__}
    assert defined == set(RECORD_TYPES)
    assert {type(s) for s in SAMPLES} == defined


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_each_record_round_trips_exactly(codec: Codec, record: object) -> None:
    """A record decodes to an equal instance of the same class, with the same field types."""
    back = codec.decode(codec.encode(record))
    assert type(back) is type(record)
    assert back == record
    for field in dataclasses.fields(record):  # type: ignore[arg-type]
        assert type(getattr(back, field.name)) is type(getattr(record, field.name))


def test_containers_decimals_and_times_round_trip_exactly(codec: Codec) -> None:
    """Lists, tuples, dicts with tuple keys, None, Decimal exponents, dates and aware datetimes survive."""
    value: dict[object, Any] = {
        "lines": SAMPLES,
        "page": (SAMPLES[0], None, "cursor"),
        ("SO-1001", "WH-000123"): 3,
        "qty": {("SO-1001", "WH-000123"): 3, ("SO-1002", "WH-000124"): 0},
        "amounts": [Decimal("1.50"), Decimal("-0.000"), Decimal("1E+3"), Decimal("12345678901234567890.123456789")],
        "when": [AT, date(1999, 12, 31), datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=2)))],
        "flags": [True, False, None, 0, -1, 2**63 - 1, 1.5, b"raw", ""],
        "nested": [[(1, (2, [3]))]],
    }
    back = codec.decode(codec.encode(value))
    assert back == value
    assert type(back["page"]) is tuple
    assert type(back["nested"][0][0][1]) is tuple
    assert [str(d) for d in back["amounts"]] == ["1.50", "-0.000", "1E+3", "12345678901234567890.123456789"]
    assert back["when"][0].tzinfo is UTC
    assert back["when"][2] == value["when"][2]
    assert type(back["when"][1]) is date


def test_encoding_is_compact(codec: Codec) -> None:
    """A thousand order lines encode to well under 100 bytes each."""
    lines = [records.OrderLine("SO-1001", i, 7, "WH-000123", "Widget", 2, EUR, Decimal("0.05"), EUR)
             for i in range(1000)]
    assert len(codec.encode(lines)) < 100_000


def test_unsupported_values_are_refused_not_pickled(codec: Codec) -> None:
    """Sets, naive datetimes and unregistered classes raise CodecError when encoded."""

    @dataclasses.dataclass(frozen=True)
    class Stranger:
        x: int

    for value in ({1}, datetime(2024, 1, 1), Stranger(1), object()):
        with pytest.raises(CodecError):
            codec.encode(value)


def test_unregistered_names_and_garbage_are_refused_when_decoded(codec: Codec) -> None:
    """Bytes naming a class outside the registry, or not msgpack at all, raise CodecError."""
    only_money = Codec([records.Money])
    with pytest.raises(CodecError, match="not registered"):
        only_money.decode(codec.encode(SAMPLES[1]))
    with pytest.raises(CodecError):
        codec.decode(b"\xc1\xc1")
