"""Deterministic, realistic and deliberately messy demo data for the three legacy systems.

``generate(scale, seed)`` returns plain row tuples per table, ready for ``deploy.legacy.seed`` to load.
"""

from __future__ import annotations

import random
import re
import unicodedata
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate
from typing import Generic, NamedTuple, TypeAlias, TypeVar

# Every date is anchored here, never to the clock, so a seed means the same data on any day.
EPOCH = datetime(2023, 1, 1)
AS_OF = datetime(2026, 10, 31, 23, 59, 59)
MAX_SCALE = 1000

LocationRow: TypeAlias = tuple[str, str, str, str, str]
ItemRow: TypeAlias = tuple[str, str, str | None, str, int | None, bool, datetime]
StockRow: TypeAlias = tuple[str, str, int, int, datetime]
MovementRow: TypeAlias = tuple[int, str, str, int, str, str | None, datetime]
CustomerRow: TypeAlias = tuple[int, str, str | None, str | None, datetime, str | None]
ProductRow: TypeAlias = tuple[int, str, str | None, Decimal, str]
OrderRow: TypeAlias = tuple[str, int, str, datetime, str | None, str]
OrderLineRow: TypeAlias = tuple[str, int, int, int, Decimal, Decimal]
ArcustRow: TypeAlias = tuple[str, str, int, str, str]
ArinvhRow: TypeAlias = tuple[str, str, str, int, int, str, int, int, str]
ArpaymRow: TypeAlias = tuple[str, str, int, int, str]
IcitemRow: TypeAlias = tuple[str, int, int]

COLUMNS: dict[str, tuple[str, ...]] = {
    "locations": ("code", "name", "city", "country", "timezone"),
    "items": ("sku", "name", "description", "unit", "weight_grams", "active", "updated_at"),
    "stock": ("sku", "location_code", "on_hand", "reserved", "updated_at"),
    "movements": ("id", "sku", "location_code", "qty", "kind", "reference", "moved_at"),
    "customers": ("id", "name", "email", "country", "created_at", "acct_no"),
    "products": ("id", "title", "sku", "list_price", "currency"),
    "orders": ("order_no", "customer_id", "status", "ordered_at", "ship_from", "currency"),
    "order_lines": ("order_no", "line_no", "product_id", "qty", "unit_price", "discount_pct"),
    "ARCUST": ("CUSTNO", "CUSTNM", "CRLIMIT", "CURRCD", "STATUS"),
    "ARINVH": ("INVNO", "CUSTNO", "ORDREF", "INVDT", "DUEDT", "CURRCD", "AMTCENTS", "TAXCENTS", "STATUS"),
    "ARPAYM": ("PAYNO", "INVNO", "PAYDT", "AMTCENTS", "METHOD"),
    "ICITEM": ("ITEMNO", "STDCOST", "LASTUPD"),
}
SYSTEM_TABLES: dict[str, tuple[str, ...]] = {
    "warehouse": ("locations", "items", "stock", "movements"),
    "sales": ("customers", "products", "orders", "order_lines"),
    "accounting": ("ARCUST", "ARINVH", "ARPAYM", "ICITEM"),
}

_CENT = Decimal("0.01")
_EUR_RATE = {"EUR": Decimal("1"), "USD": Decimal("1.08"), "SGD": Decimal("1.45")}


@dataclass(frozen=True)
class Dataset:
    """Rows per table as each legacy system stores them (padding, cents, integer dates included)."""

    locations: tuple[LocationRow, ...]
    items: tuple[ItemRow, ...]
    stock: tuple[StockRow, ...]
    movements: tuple[MovementRow, ...]
    customers: tuple[CustomerRow, ...]
    products: tuple[ProductRow, ...]
    orders: tuple[OrderRow, ...]
    order_lines: tuple[OrderLineRow, ...]
    arcust: tuple[ArcustRow, ...]
    arinvh: tuple[ArinvhRow, ...]
    arpaym: tuple[ArpaymRow, ...]
    icitem: tuple[IcitemRow, ...]

    def tables(self) -> dict[str, Sequence[tuple[object, ...]]]:
        """Every table by its legacy name, in load order (parents before children)."""
        return {
            "locations": self.locations, "items": self.items, "stock": self.stock, "movements": self.movements,
            "customers": self.customers, "products": self.products, "orders": self.orders,
            "order_lines": self.order_lines,
            "ARCUST": self.arcust, "ARINVH": self.arinvh, "ARPAYM": self.arpaym, "ICITEM": self.icitem,
        }

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables().items()}


def line_total(qty: int, unit_price: Decimal, discount_pct: Decimal) -> Decimal:
    """qty × unit_price × (1 − discount_pct/100), rounded half-up to cents, as Sales defines it."""
    return (qty * unit_price * (100 - discount_pct) / 100).quantize(_CENT, rounding=ROUND_HALF_UP)


def ymd(day: date) -> int:
    """A date as Accounting stores it: the integer YYYYMMDD."""
    return day.year * 10000 + day.month * 100 + day.day


def _converted(list_price: Decimal, currency: str, order_currency: str) -> Decimal:
    """A list price in another currency, to the cent (never below one cent)."""
    return max(_CENT, (list_price / _EUR_RATE[currency] * _EUR_RATE[order_currency])
               .quantize(_CENT, rounding=ROUND_HALF_UP))


def generate(scale: int, seed: int) -> Dataset:
    """The demo data for ``scale`` (1 ≈ a few thousand rows per system), identical for identical arguments."""
    if not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be between 1 and {MAX_SCALE}, not {scale}")
    return _Builder(scale, seed).build()


class _Site(NamedTuple):
    code: str
    name: str
    city: str
    country: str
    timezone: str
    currency: str


_SITES = (
    _Site("BCN1", "Barcelona – Zona Franca", "Barcelona", "ES", "Europe/Madrid", "EUR"),
    _Site("NYC1", "New York – Brooklyn Navy Yard", "New York", "US", "America/New_York", "USD"),
    _Site("SGP1", "Singapore – Tuas", "Singapore", "SG", "Asia/Singapore", "SGD"),
    _Site("LDZ1", "Łódź – Magazyn Centralny", "Łódź", "PL", "Europe/Warsaw", "EUR"),
    _Site("MUC1", "München – Außenlager", "München", "DE", "Europe/Berlin", "EUR"),
    _Site("TYO1", "東京倉庫", "Tokyo", "JP", "Asia/Tokyo", "SGD"),
    _Site("CHI1", "Chicago – O'Hare cross-dock", "Chicago", "US", "America/Chicago", "USD"),
    _Site("DUB1", "Dublin – Ballymount", "Dublin", "IE", "Europe/Dublin", "EUR"),
)


class _Region(NamedTuple):
    country: str
    currency: str
    tax_pct: Decimal
    weight: int
    first: tuple[str, ...]
    last: tuple[str, ...]
    suffixes: tuple[str, ...]
    joiner: str = " "


_REGIONS = (
    _Region("ES", "EUR", Decimal(21), 14, ("José", "María", "Núria", "Jordi", "Iñaki"),
            ("García", "Puig", "Núñez", "Peña", "Ibáñez"), ("S.L.", "S.A.", "y Asociados S.L.")),
    _Region("DE", "EUR", Decimal(19), 12, ("Jürgen", "Käthe", "Uwe", "Björn"),
            ("Müller", "Schröder", "Weiß", "Groß", "Köhler"), ("GmbH", "AG", "& Söhne KG")),
    _Region("PL", "EUR", Decimal(23), 6, ("Łukasz", "Zofia", "Wojciech", "Agnieszka"),
            ("Wójcik", "Kowalczyk", "Zieliński", "Łódzki"), ("Sp. z o.o.", "S.A.")),
    _Region("IE", "EUR", Decimal(23), 6, ("Siobhán", "Seán", "Aoife", "Pádraig"),
            ("O'Brien", "O'Neill", "Ó Súilleabháin", "D'Arcy"), ("Ltd", "& Sons Ltd", "Teoranta")),
    _Region("FR", "EUR", Decimal(20), 6, ("Zoë", "Hélène", "François", "Anaïs"),
            ("L'Écuyer", "Lefèvre", "D'Artagnan", "Bénard"), ("SARL", "SA", "et Fils")),
    _Region("GR", "EUR", Decimal(24), 3, ("Γιώργος", "Ελένη", "Νίκος"),
            ("Παπαδόπουλος", "Οικονόμου", "Ωmega"), ("Α.Ε.", "Ε.Π.Ε.")),
    _Region("BG", "EUR", Decimal(20), 3, ("Иван", "Мария", "Георги"),
            ("Иванов", "Тест", "Петрова"), ("ООД", "ЕООД", "АД")),
    _Region("DK", "EUR", Decimal(25), 3, ("Søren", "Åse", "Bjørn"),
            ("Ødegård", "Jørgensen", "Ørsted"), ("ApS", "A/S")),
    _Region("US", "USD", Decimal(0), 22, ("John", "Mary", "DeShawn", "Emily", "José"),
            ("O'Connor", "Smith", "McDonald", "Nguyen", "Johnson"), ("Inc.", "LLC", "Corp.", "& Co.")),
    _Region("SG", "SGD", Decimal(9), 12, ("Wei Ling", "Rajesh", "Siti", "Jun Jie"),
            ("Tan", "Lim", "Ng", "Teo", "Abdullah"), ("Pte. Ltd.", "Pte Ltd")),
    _Region("JP", "USD", Decimal(10), 6, ("太郎", "花子", "Kenji"),
            ("山田", "佐藤", "東京", "Suzuki"), ("株式会社", "商事", "物産"), joiner=""),
)
_REGION_BY_COUNTRY = {r.country: r for r in _REGIONS}

# Present in every dataset, so the awkward spellings are always there to test against.
_SPECIAL_CUSTOMERS = (
    ("Müller & Söhne GmbH", "DE"),
    ("O'Brien's Bar Supplies Ltd", "IE"),
    ("Łódź Logistyka Sp. z o.o.", "PL"),
    ("東京商事株式会社", "JP"),
    ("Ωmega Systems Α.Ε.", "GR"),
    ("Тест ЕООД", "BG"),
    ("Compañía Internacional de Suministros Industriales del Mediterráneo S.A.", "ES"),
    ("D'Angelo & O'Hara Trading Co.", "US"),
    ("Zoë L'Écuyer", "FR"),
    ("Ødegård & Søn ApS", "DK"),
)
_SPECIAL_ITEMS = (
    "Müller Klemmschraube M8", "Łódź Pallet Wrap 500 mm", "Ωmega Pressure Sensor", "Тест Cable 3 m",
    "東京 Connector Ø32", "O'Brien Hook, galvanised", "Ærø Rope 12 mm",
)
_BRANDS = ("Müller", "Łódź", "Ωmega", "Тест", "東京", "O'Brien", "Ærø", "Zoë's", "Peña", "Škoda")
_MATERIALS = ("Steel", "Stainless", "Brass", "Aluminium", "Nylon", "Oak", "Copper", "Rubber", "Glass",
              "Zinc-plated", "PVC", "Carbon")
_NOUNS = ("Bracket", "Hinge", "Bolt", "Washer", "Cable", "Clamp", "Hose", "Valve", "Sensor", "Panel", "Gasket",
          "Spring", "Rope", "Chain", "Pipe", "Fitting", "Handle", "Castor", "Shelf", "Crate")
_SIZES = ("M4", "M6", "M8", "M10", "10 mm", "25 mm", "40 mm", '1/2"', '3/4"', "XL", "S", "250 ml", "2 m", "Ø32")
_USES = ("indoor use", "marine environments", "food-grade lines", "heavy loads up to 200 kg",
         'the "Classic" frame series', "Anlagenbau & Wartung", "retrofits; see datasheet", "l'industrie légère")
_TITLE_TAGS = ("ProLine", "Value pack", "Industrial", "Premium", "Eco")
_SERVICES = ("Installation (per hour)", "Extended warranty – 2 years", "Express delivery surcharge",
             "On-site training day", "Calibration service", "Consultoría técnica", "Wartungsvertrag Premium",
             "設置サービス", "Handling fee")
_RECEIPT_TEXT = ("return from customer", "GRN 4471 – pallet damaged", "Lieferung Müller", "réception partielle",
                 "sample stock", "found in aisle 7")
_ADJUST_TEXT = ("cycle count", "damaged in handling", "Inventur 2025", "stock count Q3", "écart d'inventaire",
                "water damage")
# Each of these rounds a half cent up (0.025 → 0.03, 0.075 → 0.08, 0.125 → 0.13).
_HALF_CENT_LINES = ((1, Decimal("0.05"), Decimal("50.00")), (3, Decimal("0.05"), Decimal("50.00")),
                    (1, Decimal("0.25"), Decimal("50.00")), (1, Decimal("0.15"), Decimal("50.00")))

T = TypeVar("T")


class _Weighted(Generic[T]):
    """Options with their relative weights, summed once so drawing is a bisection."""

    def __init__(self, options: Sequence[T], weights: Sequence[float]) -> None:
        self.options = tuple(options)
        self.cumulative = list(accumulate(weights))


_UNITS = _Weighted(("EA", "BOX", "KG", "M"), (75, 10, 8, 7))
_DISCOUNTS = _Weighted(tuple(Decimal(d).quantize(_CENT) for d in ("0", "2.5", "5", "10", "12.5", "15", "20",
                                                                    "33.33", "50", "100")),
                       (70, 3, 8, 7, 3, 4, 2, 1, 1, 0.3))
_QTYS = _Weighted((1, 2, 3, 4, 5, 10, 12, 20, 24, 50), (25, 15, 10, 8, 10, 10, 6, 6, 5, 5))
_LINE_COUNTS = _Weighted((1, 2, 3, 4, 5, 6), (30, 25, 20, 12, 8, 5))
_RECEIPT_COUNTS = _Weighted((1, 2, 3), (55, 35, 10))
_CURRENCIES = _Weighted(("EUR", "USD", "SGD"), (70, 20, 10))
_PROSPECT_STATUS = _Weighted(("draft", "cancelled"), (60, 40))
_OLD_STATUS = _Weighted(("delivered", "shipped", "confirmed"), (85, 10, 5))
_RECENT_STATUS = _Weighted(("delivered", "shipped", "confirmed"), (30, 40, 30))
_NEW_STATUS = _Weighted(("shipped", "confirmed"), (30, 70))
_ACCOUNT_STATUS = _Weighted(("A", "H", "X"), (85, 10, 5))
_ORPHAN_ACCOUNT_STATUS = _Weighted(("A", "X"), (40, 60))
_TERMS = _Weighted((30, 60, 14, 90), (60, 25, 10, 5))
_METHODS = _Weighted(("BT", "CC", "CH"), (70, 20, 10))
_SETTLE_DUE = _Weighted(("paid", "open_none", "open_partial"), (86, 6, 8))
_SETTLE_NOT_DUE = _Weighted(("paid", "open_none", "open_partial"), (35, 45, 20))


@dataclass
class _Customer:
    id: int
    name: str
    country: str | None
    created_at: datetime
    acct_no: str | None
    account_currency: str | None
    weight: float


@dataclass
class _Order:
    customer: _Customer
    status: str
    ordered_at: datetime
    ship_from: str | None
    currency: str
    order_no: str = ""
    lines: list[tuple[int, int, Decimal, Decimal]] = field(default_factory=list)
    first_shipped: datetime | None = None
    split_sku: bool = False    # one SKU on two lines, shipped short of their sum


@dataclass
class _Invoice:
    custno: str
    ordref: str
    invdt: date
    duedt: date
    currency: str
    amount: int
    tax: int
    kind: str = ""
    status: str = ""
    payments: list[tuple[date, int, str]] = field(default_factory=list)


class _Builder:
    """One generation run: a private random stream and the intermediate state the tables share."""

    def __init__(self, scale: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.sites = _SITES[:min(len(_SITES), 4 + scale // 25)]
        self.cost_cents: dict[str, int] = {}
        self.item_units: dict[str, str] = {}
        self.stocked: dict[str, list[str]] = {}
        self.stock_target: dict[tuple[str, str], tuple[int, int]] = {}
        self.moves: list[tuple[str, str, int, str, str | None, datetime]] = []
        self.net: dict[tuple[str, str], int] = {}
        self.customers: list[_Customer] = []
        self.orders: list[_Order] = []
        self.product_rows: list[ProductRow] = []
        self.accounts: list[ArcustRow] = []

    def build(self) -> Dataset:
        locations = tuple((s.code, s.name, s.city, s.country, s.timezone) for s in self.sites)
        items = self._items()
        self._plan_stock(items)
        customers = self._customers()
        products = self._products(items)
        orders, lines = self._orders()
        self._shipments()
        self._transfers_and_adjustments()
        self._receipts()
        stock, movements = self._ledger()
        arcust = self._accounts()
        arinvh, arpaym = self._invoices()
        icitem = self._costing(items)
        return Dataset(locations, items, stock, movements, customers, products, orders, lines,
                       arcust, arinvh, arpaym, icitem)

    def _chance(self, p: float) -> bool:
        return self.rng.random() < p

    def _pick(self, weighted: _Weighted[T]) -> T:
        cumulative = weighted.cumulative
        return weighted.options[bisect(cumulative, self.rng.random() * cumulative[-1], 0, len(cumulative) - 1)]

    def _forced(self, n: int, k: int, exclude: set[int] | None = None) -> set[int]:
        """``k`` of ``n`` positions that get a quirk whatever the dice say, so every seed has it."""
        pool = [i for i in range(n) if not exclude or i not in exclude]
        return set(self.rng.sample(pool, min(k, len(pool))))

    def _split(self, total: int, parts: int) -> list[int]:
        """``total`` cut into at most ``parts`` positive amounts; nothing when total is 0."""
        parts = min(parts, total)
        if parts <= 0:
            return []
        cuts = sorted(self.rng.sample(range(1, total), parts - 1))
        return [hi - lo for lo, hi in zip([0, *cuts], [*cuts, total], strict=True)]

    def _moment(self, start: datetime, end: datetime) -> datetime:
        span = int((end - start).total_seconds())
        return start + timedelta(seconds=self.rng.randrange(max(span, 1)))

    def _day(self, start: date, end: date) -> date:
        return start + timedelta(days=self.rng.randrange(max((end - start).days, 0) + 1))

    def _items(self) -> tuple[ItemRow, ...]:
        n = 300 * self.scale
        numbers = sorted(self.rng.sample(range(1, 900_000), n))
        special = dict(zip(sorted(self._forced(n, len(_SPECIAL_ITEMS))), _SPECIAL_ITEMS, strict=True))
        inactive = self._forced(n, 3)
        no_desc = self._forced(n, 3)
        no_weight = self._forced(n, 3)
        rows: list[ItemRow] = []
        for i, number in enumerate(numbers):
            sku = f"WH-{number:06d}"
            material, noun = self.rng.choice(_MATERIALS), self.rng.choice(_NOUNS)
            unit = self._pick(_UNITS)
            if i in special:
                name = special[i]
            elif self._chance(0.04):
                name = f"{self.rng.choice(_BRANDS)} {noun} {self.rng.choice(_SIZES)}"
            else:
                name = f"{material} {noun} {self.rng.choice(_SIZES)}"
            description: str | None = f"{material} {noun.lower()} for {self.rng.choice(_USES)}."
            if self._chance(0.03):
                description = f"{description}\nReplaces WH-{self.rng.randrange(1, 900_000):06d}."
            if i in no_desc or self._chance(0.15):
                description = None
            weight: int | None = {"EA": self.rng.randint(5, 25_000), "BOX": self.rng.randint(500, 40_000),
                                  "KG": 1000, "M": self.rng.randint(10, 2_000)}[unit]
            if i in no_weight or self._chance(0.10):
                weight = None
            active = not (i in inactive or self._chance(0.08))
            updated = self._moment(EPOCH, AS_OF).replace(tzinfo=UTC)
            rows.append((sku, name, description, unit, weight, active, updated))
            self.cost_cents[sku] = int(10 ** self.rng.uniform(1.0, 5.0))
            self.item_units[sku] = unit
        return tuple(rows)

    def _plan_stock(self, items: Sequence[ItemRow]) -> None:
        codes = [s.code for s in self.sites]
        never = self._forced(len(items), 2)
        partial = self._forced(len(items), 3, never)
        spread = _Weighted(range(1, len(codes) + 1), [2.0 ** -k for k in range(1, len(codes) + 1)])
        for i, item in enumerate(items):
            sku = item[0]
            if i in never or self._chance(0.01):
                k = 0
            elif i in partial:
                k = self.rng.randint(1, len(codes) - 1)
            else:
                k = self._pick(spread)
            chosen = sorted(self.rng.sample(codes, k), key=codes.index)
            self.stocked[sku] = chosen
            for code in chosen:
                on_hand = 0 if self._chance(0.10) else int(10 ** self.rng.uniform(0.5, 3.0))
                reserved = 0 if on_hand == 0 or self._chance(0.55) else self.rng.randint(0, on_hand)
                self.stock_target[(sku, code)] = (on_hand, reserved)
        zero = self.rng.choice(sorted(self.stock_target))
        self.stock_target[zero] = (0, 0)

    def _customers(self) -> tuple[CustomerRow, ...]:
        n = 200 * self.scale
        special = dict(zip(sorted(self._forced(n, len(_SPECIAL_CUSTOMERS))), _SPECIAL_CUSTOMERS, strict=True))
        prospects = self._forced(n, 3, set(special))
        dangling = self._forced(n, 2, set(special) | prospects)
        no_email = self._forced(n, 2, set(special))
        no_country = self._forced(n, 2, set(special))
        numbers = self.rng.sample(range(1, 1_000_000), n)
        regions = self.rng.choices(_REGIONS, [r.weight for r in _REGIONS], k=n)
        emails: list[str | None] = []
        for i in range(n):
            region = regions[i]
            if i in special:
                name, country_code = special[i]
                region = _REGION_BY_COUNTRY[country_code]
            elif self._chance(0.7):
                last = self.rng.choice(region.last)
                if self._chance(0.15):
                    last = f"{last} & {self.rng.choice(region.last)}"
                name = f"{last}{region.joiner}{self.rng.choice(region.suffixes)}"
            else:
                first, last = self.rng.choice(region.first), self.rng.choice(region.last)
                name = f"{last} {first}" if region.joiner == "" else f"{first} {last}"
            country: str | None = region.country
            if i in no_country or (i not in special and self._chance(0.08)):
                country = None
            wants_email = i not in no_email and (i in special or not self._chance(0.12))
            emails.append(self._email(numbers[i], name) if wants_email else None)
            if self._chance(0.75):
                created = self._moment(datetime(2020, 1, 1), EPOCH)
            else:
                created = self._moment(EPOCH, AS_OF - timedelta(days=1))
            acct_no: str | None = f"C{numbers[i]:07d}"
            currency: str | None = region.currency if self._chance(0.9) else self.rng.choice(sorted(_EUR_RATE))
            if i in prospects or (i not in special and i not in dangling and self._chance(0.18)):
                acct_no, currency = None, None
            elif i in dangling or (i not in special and self._chance(0.03)):
                currency = None
            # Prospects rarely order; regular buyers follow a long tail.
            weight = self.rng.paretovariate(1.5) * (0.05 if acct_no is None else 1.0)
            self.customers.append(_Customer(0, name, country, created, acct_no, currency, weight))
        # AUTO_INCREMENT ids grow with creation time, as they would in the running system.
        order = sorted(range(n), key=lambda k: self.customers[k].created_at)
        self.customers = [self.customers[k] for k in order]
        for new_id, customer in enumerate(self.customers, 1):
            customer.id = new_id
        return tuple((c.id, c.name, emails[k], c.country, c.created_at, c.acct_no)
                     for c, k in zip(self.customers, order, strict=True))

    def _email(self, number: int, name: str) -> str:
        domain = _slug(name)[:40].strip("-") or f"customer-{number}"
        local = self.rng.choice(("info", "orders", "accounts", "purchasing", "hello"))
        return f"{local}@{domain}.example"

    def _products(self, items: Sequence[ItemRow]) -> tuple[ProductRow, ...]:
        n_items = len(items)
        differs = self._forced(n_items, 3)
        dupes = self._forced(n_items, 2)
        specs: list[tuple[str, str | None, Decimal, str]] = []
        for i, item in enumerate(items):
            sku, name = item[0], item[1]
            if i not in dupes and i not in differs and self._chance(0.10):
                continue
            currency = self._pick(_CURRENCIES)
            price = self._price(self.cost_cents[sku], currency)
            title = self._title(name) if i in differs or self._chance(0.45) else name
            specs.append((title, sku.lower(), price, currency))
            if i in dupes or self._chance(0.01):
                delta = max(_CENT, (price * Decimal("0.1")).quantize(_CENT))
                other = price - delta if price > delta and self._chance(0.5) else price + delta
                specs.append((f"{title} (B2B listing)", sku.lower(), other, currency))
        for j in range(max(len(_SERVICES), n_items // 20)):
            base = _SERVICES[j % len(_SERVICES)]
            title = base if j < len(_SERVICES) else f"{base} #{j // len(_SERVICES) + 1}"
            currency = self._pick(_CURRENCIES)
            specs.append((title, None, self._price(self.rng.randint(2_000, 60_000), currency), currency))
        for j in range(max(2, n_items // 100)):
            number = 900_000 + self.rng.randrange(99_999)
            currency = self._pick(_CURRENCIES)
            title = f"{self.rng.choice(_MATERIALS)} {self.rng.choice(_NOUNS)} (not stocked) {j + 1}"
            specs.append((title, f"wh-{number:06d}", self._price(self.rng.randint(100, 20_000), currency), currency))
        self.rng.shuffle(specs)
        self.product_rows = [(pid, title, sku, price, cur) for pid, (title, sku, price, cur) in enumerate(specs, 1)]
        return tuple(self.product_rows)

    def _price(self, cost_cents: int, currency: str) -> Decimal:
        markup = Decimal(str(round(self.rng.uniform(1.3, 2.5), 2)))
        price = Decimal(cost_cents) / 100 * markup * _EUR_RATE[currency]
        return max(_CENT, price.quantize(_CENT, rounding=ROUND_HALF_UP))

    def _title(self, name: str) -> str:
        style = self.rng.randrange(4)
        if style == 0:
            return f"{self.rng.choice(_TITLE_TAGS)} {name}"
        if style == 1:
            return name.upper()
        if style == 2:
            words = name.split(" ", 1)
            return f"{words[-1]}, {words[0].lower()}" if len(words) == 2 else f"{name} (new)"
        return f"{name} – {self.rng.choice(_TITLE_TAGS).lower()}"

    def _orders(self) -> tuple[tuple[OrderRow, ...], tuple[OrderLineRow, ...]]:
        n = 1000 * self.scale
        buyers = self.rng.choices(self.customers, [c.weight for c in self.customers], k=n)
        drafts = self._forced(n, 3)
        cancelled = self._forced(n, 3, drafts)
        no_ship_from = self._forced(n, 3)
        for i, customer in enumerate(buyers):
            ordered_at = self._moment(max(EPOCH, customer.created_at), AS_OF)
            currency = customer.account_currency or (
                _REGION_BY_COUNTRY[customer.country].currency if customer.country else "EUR")
            if i in drafts:
                status = "draft"
            elif i in cancelled:
                status = "cancelled"
            elif customer.acct_no is None:
                status = self._pick(_PROSPECT_STATUS)
            else:
                status = self._status((AS_OF - ordered_at).days)
            home = [s.code for s in self.sites if s.currency == currency]
            ship_from: str | None = None
            if i not in no_ship_from and not self._chance(0.25 if status == "draft" else 0.08):
                codes = [s.code for s in self.sites]
                ship_from = self.rng.choice(home) if home and self._chance(0.8) else self.rng.choice(codes)
            self.orders.append(_Order(customer, status, ordered_at, ship_from, currency))
        self.orders.sort(key=lambda o: o.ordered_at)
        per_year: dict[int, int] = {}
        for order in self.orders:
            year = order.ordered_at.year
            per_year[year] = per_year.get(year, 0) + 1
            order.order_no = f"SO-{year}-{per_year[year]:06d}"
        self._lines()
        order_rows = tuple((o.order_no, o.customer.id, o.status, o.ordered_at, o.ship_from, o.currency)
                           for o in self.orders)
        line_rows = tuple((o.order_no, no, pid, qty, price, disc)
                          for o in self.orders for no, (pid, qty, price, disc) in enumerate(o.lines, 1))
        return order_rows, line_rows

    def _status(self, age_days: int) -> str:
        if self._chance(0.04):
            return "draft"
        if self._chance(0.05):
            return "cancelled"
        if age_days > 30:
            return self._pick(_OLD_STATUS)
        if age_days >= 7:
            return self._pick(_RECENT_STATUS)
        return self._pick(_NEW_STATUS)

    def _lines(self) -> None:
        goods = [p for p in self.product_rows if p[2] is not None]
        services = [p for p in self.product_rows if p[2] is None]
        half_cent = self._forced(len(self.orders), len(_HALF_CENT_LINES))
        half_cent_lines = dict(zip(sorted(half_cent), _HALF_CENT_LINES, strict=True))
        for i, order in enumerate(self.orders):
            count = self._pick(_LINE_COUNTS)
            used: set[int] = set()
            for _ in range(count):
                product = self.rng.choice(services) if self._chance(0.07) else self.rng.choice(goods)
                if product[0] in used:
                    continue
                used.add(product[0])
                pid, _, sku, list_price, pcur = product
                big = sku is not None and self.item_units.get(sku.upper()) in ("KG", "M")
                qty = self.rng.randint(5, 200) if big and self._chance(0.5) else self._pick(_QTYS)
                price = _converted(list_price, pcur, order.currency)
                if self._chance(0.15):
                    price = max(_CENT, (price * Decimal(str(round(self.rng.uniform(0.8, 1.05), 3))))
                                .quantize(_CENT, rounding=ROUND_HALF_UP))
                discount = self._pick(_DISCOUNTS)
                order.lines.append((pid, qty, price, discount))
            if i in half_cent_lines:
                qty, price, discount = half_cent_lines[i]
                pid = self.rng.choice(goods)[0]
                order.lines = [line for line in order.lines if line[0] != pid]
                order.lines.append((pid, qty, price, discount))
        self._split_skus(goods)

    def _split_skus(self, goods: Sequence[ProductRow]) -> None:
        """A few shipped orders carry one SKU on two lines: the same product twice, or two listings of it."""
        by_sku: dict[str, list[ProductRow]] = {}
        for product in goods:
            sku = product[2]
            if sku is not None and self.stocked.get(sku.upper()):
                by_sku.setdefault(sku, []).append(product)
        twins = sorted(sku for sku, listed in by_sku.items() if len(listed) > 1)
        candidates = [o for o in self.orders if o.status in ("shipped", "delivered")]
        for n, order in enumerate(self.rng.sample(candidates, min(4, len(candidates)))):
            if n % 2 == 0 and twins:
                first, second = by_sku[self.rng.choice(twins)][:2]
            else:
                first = second = self.rng.choice([p for listed in by_sku.values() for p in listed])
            skus = {p[0]: p[2] for p in goods}
            order.lines = [line for line in order.lines if skus.get(line[0]) != first[2]]
            for product in (first, second):
                price = _converted(product[3], product[4], order.currency)
                order.lines.append((product[0], self._pick(_QTYS), price, self._pick(_DISCOUNTS)))
            order.split_sku = True

    def _shipments(self) -> None:
        skus = {p[0]: p[2].upper() for p in self.product_rows if p[2] is not None}
        for order in self.orders:
            if order.status not in ("confirmed", "shipped", "delivered"):
                continue
            partial_order = order.status == "shipped" and self._chance(0.3)
            if order.status == "confirmed" and not self._chance(0.25):
                continue
            if order.split_sku:
                self._ship_largest_lines(order, skus)
                continue
            for pid, qty, _, _ in order.lines:
                sku = skus.get(pid)
                if sku is None or not self.stocked.get(sku):
                    continue
                shipped = qty
                if order.status == "confirmed" or partial_order:
                    roll = self.rng.random()
                    shipped = 0 if roll < 0.3 else (self.rng.randint(1, qty - 1) if qty > 1 and roll < 0.8 else qty)
                if shipped:
                    self._ship(order, sku, shipped)

    def _ship_largest_lines(self, order: _Order, skus: dict[int, str]) -> None:
        """Each SKU ships its largest line's quantity: enough for any one line, short of their sum."""
        largest: dict[str, int] = {}
        for pid, qty, _, _ in order.lines:
            sku = skus.get(pid)
            if sku is not None and self.stocked.get(sku):
                largest[sku] = max(largest.get(sku, 0), qty)
        for sku, qty in largest.items():
            self._ship(order, sku, qty)

    def _ship(self, order: _Order, sku: str, qty: int) -> None:
        stocked = self.stocked[sku]
        home = order.ship_from if order.ship_from in stocked else self.rng.choice(stocked)
        parts = [qty]
        if qty > 1 and self._chance(0.2):
            cut = self.rng.randint(1, qty - 1)
            parts = [cut, qty - cut]
        when = order.ordered_at.replace(tzinfo=UTC) + timedelta(hours=self.rng.randint(2, 144))
        limit = AS_OF.replace(tzinfo=UTC)
        for n, part in enumerate(parts):
            code = home if n == 0 or len(stocked) == 1 or self._chance(0.5) else self.rng.choice(stocked)
            moment = min(when, limit)
            self.moves.append((sku, code, -part, "shipment", order.order_no, moment))
            self.net[(sku, code)] = self.net.get((sku, code), 0) - part
            if order.first_shipped is None or moment < order.first_shipped:
                order.first_shipped = moment
            when += timedelta(hours=self.rng.randint(24, 240))

    def _transfers_and_adjustments(self) -> None:
        start, end = EPOCH.replace(tzinfo=UTC), AS_OF.replace(tzinfo=UTC)
        transfer_no = 0
        for (sku, code) in sorted(self.stock_target):
            if len(self.stocked[sku]) > 1 and self._chance(0.05):
                transfer_no += 1
                other = self.rng.choice([c for c in self.stocked[sku] if c != code])
                qty = self.rng.randint(1, 50)
                ref = None if self._chance(0.3) else f"TR-{transfer_no:06d}"
                moment = self._moment(start, end)
                self.moves.append((sku, code, -qty, "transfer", ref, moment))
                self.moves.append((sku, other, qty, "transfer", ref, moment))
                self.net[(sku, code)] = self.net.get((sku, code), 0) - qty
                self.net[(sku, other)] = self.net.get((sku, other), 0) + qty
            if self._chance(0.10):
                qty = self.rng.choice((-1, 1)) * self.rng.randint(1, 20)
                ref = None if self._chance(0.3) else self.rng.choice(_ADJUST_TEXT)
                self.moves.append((sku, code, qty, "adjustment", ref, self._moment(start, end)))
                self.net[(sku, code)] = self.net.get((sku, code), 0) + qty

    def _receipts(self) -> None:
        start, end = EPOCH.replace(tzinfo=UTC), AS_OF.replace(tzinfo=UTC)
        opening_at = start - timedelta(hours=1)
        for key in sorted(self.stock_target):
            sku, code = key
            on_hand = self.stock_target[key][0]
            net = self.net.get(key, 0)
            opening = self.rng.randint(0, max(on_hand, 20))
            total = max(0, on_hand - opening - net)
            parts = min(total, self._pick(_RECEIPT_COUNTS))
            for qty in self._split(total, parts):
                roll = self.rng.random()
                ref: str | None
                if roll < 0.6:
                    ref = f"PO-{self.rng.randint(2023, 2026)}-{self.rng.randint(1, 99_999):05d}"
                elif roll < 0.8:
                    ref = None
                else:
                    ref = self.rng.choice(_RECEIPT_TEXT)
                self.moves.append((sku, code, qty, "receipt", ref, self._moment(start, end)))
            net += total
            if on_hand - net > 0:
                self.moves.append((sku, code, on_hand - net, "receipt", "opening balance", opening_at))
            elif on_hand - net < 0:
                self.moves.append((sku, code, on_hand - net, "adjustment", "stock count", end))
            self.net[key] = on_hand

    def _ledger(self) -> tuple[tuple[StockRow, ...], tuple[MovementRow, ...]]:
        self.moves.sort(key=lambda m: m[5])
        last: dict[tuple[str, str], datetime] = {}
        for sku, code, _, _, _, moment in self.moves:
            last[(sku, code)] = moment
        start, end = EPOCH.replace(tzinfo=UTC), AS_OF.replace(tzinfo=UTC)
        stock = tuple((sku, code, on_hand, reserved, last.get((sku, code)) or self._moment(start, end))
                      for (sku, code), (on_hand, reserved) in sorted(self.stock_target.items()))
        movements = tuple((n, *move) for n, move in enumerate(self.moves, 1))
        return stock, movements

    def _accounts(self) -> tuple[ArcustRow, ...]:
        holders = [(c.name, c.acct_no, c.account_currency) for c in self.customers
                   if c.acct_no is not None and c.account_currency is not None]
        truncated = self._forced(len(holders), 3)
        on_hold = self._forced(len(holders), 2)
        closed = self._forced(len(holders), 2, on_hold)
        rows: list[ArcustRow] = []
        for i, (name, acct_no, currency) in enumerate(holders):
            custnm = name.upper()[:60].rstrip()
            if i in truncated or (len(custnm) > 20 and self._chance(0.2)):
                custnm = custnm[:self.rng.randint(12, max(12, len(custnm) - 3))].rstrip()
            status = "H" if i in on_hold else "X" if i in closed else self._pick(_ACCOUNT_STATUS)
            rows.append((acct_no.ljust(10), custnm, self._credit_limit(), currency, status))
        used = {c.acct_no for c in self.customers if c.acct_no}
        for j in range(max(1, len(holders) // 50)):
            number = self.rng.randrange(1_000_000, 10_000_000)
            acct = f"C{number:07d}"
            if acct in used:
                continue
            used.add(acct)
            name = f"{self.rng.choice(('OLD', 'LEGACY', 'EX'))} ACCOUNT {j + 1} – {self.rng.choice(_BRANDS).upper()}"
            currency = self.rng.choice(sorted(_EUR_RATE))
            rows.append((acct.ljust(10), name, self._credit_limit(), currency, self._pick(_ORPHAN_ACCOUNT_STATUS)))
        rows.sort()
        self.accounts = rows
        return tuple(rows)

    def _credit_limit(self) -> int:
        return self.rng.choice((0, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000))

    def _invoices(self) -> tuple[tuple[ArinvhRow, ...], tuple[ArpaymRow, ...]]:
        invoices: list[_Invoice] = []
        last_day = AS_OF.date()
        for order in self.orders:
            customer = order.customer
            if customer.account_currency is None or customer.acct_no is None:
                continue
            wanted = {"delivered": 0.97, "shipped": 0.97, "confirmed": 0.15, "cancelled": 0.3}.get(order.status, 0)
            if not self._chance(wanted):
                continue
            started = (order.first_shipped or order.ordered_at.replace(tzinfo=UTC)).date()
            invdt = min(last_day, started + timedelta(days=self.rng.randint(0, 3)))
            amount, tax = self._amount(order)
            invoice = _Invoice(customer.acct_no.ljust(10), order.order_no.ljust(20), invdt,
                               invdt + timedelta(days=self._pick(_TERMS)), order.currency, amount, tax)
            if order.status == "cancelled":
                invoice.kind = "void"
            invoices.append(invoice)
            if order.status != "cancelled" and self._chance(0.015):
                invoice.kind = "void"
                again = min(last_day, invdt + timedelta(days=self.rng.randint(1, 10)))
                invoices.append(_Invoice(invoice.custno, invoice.ordref, again,
                                         again + (invoice.duedt - invdt), invoice.currency, amount, tax))
        open_accounts = [row for row in self.accounts if row[4] != "X"] or self.accounts
        n_manual = max(3, len(invoices) // 30)
        n_orphan = max(2, len(invoices) // 100)
        for j in range(n_manual + n_orphan):
            acct = self.rng.choice(open_accounts)
            if j < n_manual:
                ordref = " " * 20
                invdt = self._day(EPOCH.date(), last_day)
            else:
                year, number = (2022, self.rng.randint(1, 9_999)) if j % 2 else (
                    self.rng.randint(2023, 2026), self.rng.randint(900_000, 999_999))
                ordref = f"SO-{year}-{number:06d}".ljust(20)
                first = date(year, 1, 1) if year > 2022 else date(2022, 10, 1)
                invdt = self._day(first, min(date(year, 12, 31), last_day))
            subtotal = self.rng.randint(5_000, 500_000)
            tax = (subtotal * self.rng.choice((0, 9, 19, 21))) // 100
            invoices.append(_Invoice(acct[0], ordref, invdt, invdt + timedelta(days=self._pick(_TERMS)),
                                     acct[3], subtotal + tax, tax))
        self._force_kinds(invoices)
        for invoice in invoices:
            self._settle(invoice)
        invoices.sort(key=lambda inv: inv.invdt)
        headers: list[ArinvhRow] = []
        payments: list[tuple[date, str, int, str]] = []
        for n, inv in enumerate(invoices, 1):
            invno = f"INV{n:09d}"
            headers.append((invno, inv.custno, inv.ordref, ymd(inv.invdt), ymd(inv.duedt), inv.currency,
                            inv.amount, inv.tax, inv.status))
            payments.extend((paydt, invno, amount, method) for paydt, amount, method in inv.payments)
        payments.sort(key=lambda p: p[0])
        pay_rows = tuple((f"PAY{n:09d}", invno, ymd(paydt), amount, method)
                         for n, (paydt, invno, amount, method) in enumerate(payments, 1))
        return tuple(headers), pay_rows

    def _amount(self, order: _Order) -> tuple[int, int]:
        subtotal = sum((line_total(qty, price, disc) for _, qty, price, disc in order.lines), Decimal(0))
        cents = int(subtotal * 100)
        region = _REGION_BY_COUNTRY.get(order.customer.country or "")
        rate = region.tax_pct if region else Decimal(0)
        tax = int((Decimal(cents) * rate / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        return cents + tax, tax

    def _force_kinds(self, invoices: list[_Invoice]) -> None:
        overdue = [i for i, inv in enumerate(invoices)
                   if not inv.kind and inv.amount >= 100 and inv.duedt < AS_OF.date() - timedelta(days=30)]
        any_open = [i for i, inv in enumerate(invoices) if not inv.kind and inv.amount >= 100]
        wanted = (("open_none", overdue, 3), ("open_partial", overdue, 3), ("plan", any_open, 3),
                  ("open_settled", any_open, 2), ("paid_split", any_open, 2), ("void_paid", any_open, 1),
                  ("void", any_open, 2))
        for kind, pool, k in wanted:
            free = [i for i in pool if not invoices[i].kind]
            for i in self.rng.sample(free, min(k, len(free))):
                invoices[i].kind = kind

    def _settle(self, inv: _Invoice) -> None:
        last_day = AS_OF.date()
        kind = inv.kind
        if not kind:
            roll = self.rng.random()
            if roll < 0.02:
                kind = "plan"
            elif roll < 0.04:
                kind = "void"
            elif inv.duedt <= last_day:
                kind = self._pick(_SETTLE_DUE)
            else:
                kind = self._pick(_SETTLE_NOT_DUE)
        if kind == "plan":
            inv.duedt = self._day(date(2027, 3, 1), date(2030, 12, 31))
            kind = "open_partial" if self._chance(0.6) else "open_none"
        pay_until = min(last_day, inv.duedt + timedelta(days=45))
        if kind in ("paid", "paid_split", "open_settled"):
            inv.status = "P" if kind != "open_settled" else "O"
            splits = 1 if kind == "paid" and self._chance(0.8) else self.rng.randint(2, 3)
            self._pay(inv, inv.amount, splits, pay_until)
        elif kind == "open_partial" and inv.amount >= 2:
            inv.status = "O"
            self._pay(inv, self.rng.randint(1, inv.amount - 1), self.rng.randint(1, 2), pay_until)
        elif kind in ("void", "void_paid"):
            inv.status = "V"
            if kind == "void_paid":
                self._pay(inv, max(1, inv.amount // 2), 1, pay_until)
        else:
            inv.status = "O"

    def _pay(self, inv: _Invoice, total: int, splits: int, until: date) -> None:
        method = self._pick(_METHODS)
        for amount in self._split(total, splits):
            inv.payments.append((self._day(inv.invdt, max(inv.invdt, until)), amount, method))

    def _costing(self, items: Sequence[ItemRow]) -> tuple[IcitemRow, ...]:
        missing = self._forced(len(items), 3)
        never_updated = self._forced(len(items), 1, missing)
        rows: list[IcitemRow] = []
        for i, item in enumerate(items):
            if i in missing or self._chance(0.06):
                continue
            lastupd = 0 if i in never_updated else ymd(self._day(EPOCH.date(), AS_OF.date()))
            rows.append((item[0].ljust(20), self.cost_cents[item[0]], lastupd))
        return tuple(rows)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
