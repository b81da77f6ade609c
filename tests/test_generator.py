"""The demo-data generator is deterministic and produces every kind of mess the connectors must cope with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from deploy.legacy.generate import AS_OF, EPOCH, Dataset, generate, line_total, ymd
from deploy.legacy.schema import LegacyTargets, sales_as_odbc
from deploy.legacy.seed import connect_odbc, seed

REPO = Path(__file__).resolve().parents[1]
SEEDS = (42, 7, 20261)


@pytest.fixture(name="data", scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def _data(request: pytest.FixtureRequest) -> Dataset:
    """Scale-1 data for a few seeds: the mess must not depend on a lucky seed."""
    return generate(1, request.param)


@pytest.fixture(name="data42", scope="module")
def _data42() -> Dataset:
    return generate(1, 42)


def _balances(data: Dataset) -> dict[str, tuple[str, int, int]]:
    """INVNO → (status, paid cents, balance cents) as the description defines them."""
    paid: Counter[str] = Counter()
    for _, invno, _, amount, _ in data.arpaym:
        paid[invno] += amount
    return {inv[0]: (inv[8], paid[inv[0]], inv[6] - paid[inv[0]] if inv[8] == "O" else 0) for inv in data.arinvh}


def _shipped(data: Dataset) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """(order_no, SKU) → [(location, qty shipped)] from the shipment movements."""
    shipped: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for _, sku, location, qty, kind, reference, _ in data.movements:
        if kind == "shipment":
            assert reference is not None
            shipped[(reference, sku)].append((location, -qty))
    return shipped


def _ordered(data: Dataset) -> dict[tuple[str, str], int]:
    """(order_no, warehouse SKU) → qty ordered, over the lines whose product has a SKU."""
    skus = {pid: sku.upper() for pid, _, sku, _, _ in data.products if sku is not None}
    ordered: Counter[tuple[str, str]] = Counter()
    for order_no, _, pid, qty, _, _ in data.order_lines:
        if pid in skus:
            ordered[(order_no, skus[pid])] += qty
    return ordered


def test_same_seed_gives_identical_data(data42):
    """Generating twice with the same scale and seed gives equal datasets."""
    assert generate(1, 42) == data42


def test_other_seed_gives_other_data(data42):
    """A different seed gives different rows in every system."""
    other = generate(1, 43)
    assert other.customers != data42.customers
    assert other.items != data42.items
    assert other.arinvh != data42.arinvh


def test_data_does_not_depend_on_hash_seed_or_process():
    """Two interpreters with different string-hash seeds produce byte-identical data."""
    script = ("import hashlib; from deploy.legacy.generate import generate; "
              "print(hashlib.sha256(repr(generate(1, 42)).encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout
               for hash_seed in ("1", "2")}
    assert len(digests) == 1


def test_scale_grows_linearly():
    """Scale 2 has twice the items, customers and orders of scale 1, and about twice the lines."""
    one, two = generate(1, 5).counts(), generate(2, 5).counts()
    assert (one["items"], one["customers"], one["orders"]) == (300, 200, 1000)
    assert (two["items"], two["customers"], two["orders"]) == (600, 400, 2000)
    assert 1.7 < two["order_lines"] / one["order_lines"] < 2.3


def test_scale_out_of_range_is_rejected():
    """Scale 0 (and anything past the documented maximum) is refused rather than silently clamped."""
    with pytest.raises(ValueError, match="scale"):
        generate(0, 1)


def test_locations_are_offices_in_different_countries(data):
    """BCN1, NYC1 and SGP1 exist with their countries and IANA time zones, plus at least one more site."""
    by_code = {row[0]: row for row in data.locations}
    assert by_code["BCN1"][3:] == ("ES", "Europe/Madrid")
    assert by_code["NYC1"][3:] == ("US", "America/New_York")
    assert by_code["SGP1"][3:] == ("SG", "Asia/Singapore")
    assert len({row[3] for row in data.locations}) >= 4


def test_items_include_inactive_and_incomplete_ones(data):
    """Some items are inactive, some lack a description and some lack a weight."""
    assert any(not item[5] for item in data.items)
    assert any(item[2] is None for item in data.items)
    assert any(item[4] is None for item in data.items)
    assert {item[3] for item in data.items} <= {"EA", "KG", "M", "BOX"}


def test_some_items_have_no_stock_row_at_some_locations(data):
    """Stock rows are missing for some (item, location) pairs, and some items have no stock row at all."""
    locations_per_sku = Counter(row[0] for row in data.stock)
    assert any(count < len(data.locations) for count in locations_per_sku.values())
    assert any(item[0] not in locations_per_sku for item in data.items)


def test_stock_levels_are_plausible_and_match_the_ledger(data):
    """on_hand ≥ 0 (sometimes 0), 0 ≤ reserved ≤ on_hand, and the movements of each stock row sum to on_hand."""
    assert all(on_hand >= 0 and 0 <= reserved <= on_hand for _, _, on_hand, reserved, _ in data.stock)
    assert any(on_hand == 0 for _, _, on_hand, _, _ in data.stock)
    ledger: Counter[tuple[str, str]] = Counter()
    for _, sku, location, qty, _, _, _ in data.movements:
        ledger[(sku, location)] += qty
    stock = {(sku, location): on_hand for sku, location, on_hand, _, _ in data.stock}
    assert set(ledger) <= set(stock)
    assert all(ledger[key] == on_hand for key, on_hand in stock.items())


def test_movement_ids_follow_time(data):
    """Movement ids run 1..n in moved_at order, as an append-only ledger's would."""
    assert [m[0] for m in data.movements] == list(range(1, len(data.movements) + 1))
    assert all(a[6] <= b[6] for a, b in zip(data.movements, data.movements[1:], strict=False))


def test_sales_has_services_and_its_own_titles(data):
    """Some Sales products are services without SKU, and some titles differ from the warehouse name."""
    names = {item[0]: item[1] for item in data.items}
    assert any(sku is None for _, _, sku, _, _ in data.products)
    assert any(sku is not None and sku.upper() in names and names[sku.upper()] != title
               for _, title, sku, _, _ in data.products)


def test_some_skus_have_two_products_with_different_prices(data):
    """A SKU sometimes has two Sales products; their list prices differ, so 'lowest id wins' matters."""
    prices: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    for pid, _, sku, price, _ in data.products:
        if sku is not None:
            prices[sku].append((pid, price))
    dupes = [sorted(entries) for entries in prices.values() if len(entries) > 1]
    assert dupes
    assert any(len({price for _, price in entries}) > 1 for entries in dupes)


def test_a_sales_product_is_not_in_the_warehouse(data):
    """At least one Sales product's SKU matches no warehouse item (an orphan)."""
    skus = {item[0] for item in data.items}
    assert any(sku is not None and sku.upper() not in skus for _, _, sku, _, _ in data.products)


def test_names_have_non_latin_letters_and_apostrophes(data):
    """Customer and item names include Müller, Łódź, 東京商事, Ωmega, Тест and O'Brien spellings."""
    customers = " | ".join(row[1] for row in data.customers)
    for needle in ("Müller", "Łódź", "東京商事", "Ωmega", "Тест", "O'Brien"):
        assert needle in customers
    items = " | ".join(row[1] for row in data.items)
    assert "'" in items
    assert any(not name.isascii() for name in items.split(" | "))


def test_nullable_columns_hold_nulls(data):
    """Every nullable column the connectors read is NULL somewhere and filled elsewhere."""
    columns = {
        "customers.email": [row[2] for row in data.customers],
        "customers.country": [row[3] for row in data.customers],
        "customers.acct_no": [row[5] for row in data.customers],
        "orders.ship_from": [row[4] for row in data.orders],
        "items.description": [row[2] for row in data.items],
        "items.weight_grams": [row[4] for row in data.items],
        "movements.reference": [row[5] for row in data.movements],
        "products.sku": [row[2] for row in data.products],
    }
    for name, values in columns.items():
        assert None in values, name
        assert any(v is not None for v in values), name


def test_an_account_trades_in_one_currency(data):
    """Invoices and the Sales orders of an account are all in ARCUST.CURRCD; EUR, USD and SGD all occur."""
    currency = {row[0]: row[3] for row in data.arcust}
    assert {row[5] for row in data.orders} == {"EUR", "USD", "SGD"}
    assert set(currency.values()) == {"EUR", "USD", "SGD"}
    assert all(inv[5] == currency[inv[1]] for inv in data.arinvh)
    account_of = {row[0]: (row[5] or "").ljust(10) for row in data.customers}
    for _, customer_id, _, _, _, order_currency in data.orders:
        if account_of[customer_id] in currency:
            assert order_currency == currency[account_of[customer_id]]


def test_every_order_status_occurs(data):
    """Orders are draft, confirmed, shipped, delivered and cancelled."""
    assert {row[2] for row in data.orders} == {"draft", "confirmed", "shipped", "delivered", "cancelled"}


def test_half_cent_line_totals_round_half_up(data):
    """Lines such as 1 × 0.05 at 50 % discount exist, and their total (0.025) rounds half-up to 0.03."""
    lines = {(qty, price, disc) for _, _, _, qty, price, disc in data.order_lines}
    assert (1, Decimal("0.05"), Decimal("50.00")) in lines
    assert line_total(1, Decimal("0.05"), Decimal("50.00")) == Decimal("0.03")
    assert line_total(3, Decimal("0.05"), Decimal("50.00")) == Decimal("0.08")
    half_cents = [line for line in lines
                  if (line[0] * line[1] * (100 - line[2]) / 100) % Decimal("0.01") == Decimal("0.005")]
    assert len(half_cents) >= 3


def test_money_and_quantities_have_legacy_types(data):
    """Prices and discounts are two-place Decimals; quantities are positive integers."""
    for _, _, _, qty, price, disc in data.order_lines:
        assert isinstance(price, Decimal)
        assert price.as_tuple().exponent == -2
        assert isinstance(disc, Decimal)
        assert disc.as_tuple().exponent == -2
        assert Decimal(0) <= disc <= Decimal(100)
        assert isinstance(qty, int)
        assert qty > 0
    assert all(isinstance(p[3], Decimal) and p[3] > 0 for p in data.products)


def test_shipments_reference_orders_and_their_skus(data):
    """Shipments are negative, name an order and one of its SKUs, and never exceed the ordered quantity."""
    ordered = _ordered(data)
    statuses = {row[0]: row[2] for row in data.orders}
    for (order_no, sku), parts in _shipped(data).items():
        assert all(qty > 0 for _, qty in parts)
        assert (order_no, sku) in ordered
        assert sum(qty for _, qty in parts) <= ordered[(order_no, sku)]
        assert statuses[order_no] in ("confirmed", "shipped", "delivered")


def test_shipments_are_partial_split_complete_or_missing(data):
    """Some order lines are shipped in part, some in several movements or from several sites, some fully, some not."""
    ordered, shipped = _ordered(data), _shipped(data)
    totals = {key: sum(qty for _, qty in parts) for key, parts in shipped.items()}
    assert any(0 < totals[key] < ordered[key] for key in totals)
    assert any(totals[key] == ordered[key] for key in totals)
    assert any(len(parts) > 1 for parts in shipped.values())
    assert any(len({location for location, _ in parts}) > 1 for parts in shipped.values())
    shipped_orders = {order_no for order_no, _ in shipped}
    assert any(row[2] == "confirmed" and row[0] not in shipped_orders for row in data.orders)


def test_other_movements_have_free_text_or_no_reference(data):
    """Receipts, adjustments and transfers occur, each with free-text and NULL references."""
    references: dict[str, list[str | None]] = defaultdict(list)
    for _, _, _, _, kind, reference, _ in data.movements:
        references[kind].append(reference)
    assert set(references) == {"receipt", "shipment", "adjustment", "transfer"}
    for kind in ("receipt", "adjustment", "transfer"):
        assert None in references[kind], kind
        assert any(ref is not None for ref in references[kind]), kind
    assert all(ref is not None and len(ref) <= 32 for ref in references["shipment"])


def test_invoices_are_open_paid_or_void_with_matching_payments(data):
    """Paid invoices' payments sum to the amount; open invoices include partly paid ones; void ones exist."""
    balances = _balances(data)
    amounts = {inv[0]: inv[6] for inv in data.arinvh}
    assert {status for status, _, _ in balances.values()} == {"O", "P", "V"}
    assert all(paid == amounts[invno] for invno, (status, paid, _) in balances.items() if status == "P")
    assert any(status == "O" and 0 < paid < amounts[invno] for invno, (status, paid, _) in balances.items())
    assert any(status == "O" and paid == 0 for status, paid, _ in balances.values())
    payments_per_invoice = Counter(p[1] for p in data.arpaym)
    assert any(count > 1 for count in payments_per_invoice.values())


def test_open_invoices_are_overdue_or_due_far_ahead(data):
    """Open invoices with a balance exist both due before Nov 2026 and due in 2027-2030, so both overdue states hold."""
    balances = _balances(data)
    due = {inv[0]: inv[4] for inv in data.arinvh}
    open_due = [due[invno] for invno, (status, _, balance) in balances.items() if status == "O" and balance > 0]
    assert any(d < ymd(date(2026, 11, 1)) for d in open_due)
    assert any(ymd(date(2027, 1, 1)) <= d <= ymd(date(2030, 12, 31)) for d in open_due)


def test_manual_and_orphan_invoices_exist(data):
    """Some invoices have an all-blank ORDREF and some name an order number that Sales does not have."""
    orders = {row[0] for row in data.orders}
    refs = [inv[2] for inv in data.arinvh]
    assert " " * 20 in refs
    assert any(ref.strip() and ref.strip() not in orders for ref in refs)
    assert any(ref.strip() in orders for ref in refs)


def test_accounting_codes_are_padded_fixed_width(data):
    """CUSTNO, ORDREF and ITEMNO carry their trailing spaces; INVNO and PAYNO follow INV/PAY + 9 digits."""
    skus = {item[0] for item in data.items}
    assert all(re.fullmatch(r"C\d{7}  ", row[0]) for row in data.arcust)
    assert all(re.fullmatch(r"INV\d{9}", inv[0]) and len(inv[2]) == 20 for inv in data.arinvh)
    assert all(re.fullmatch(r"SO-\d{4}-\d{6} {6}| {20}", inv[2]) for inv in data.arinvh)
    assert all(re.fullmatch(r"PAY\d{9}", pay[0]) for pay in data.arpaym)
    assert all(len(row[0]) == 20 and row[0].rstrip() in skus for row in data.icitem)
    invoices = {inv[0] for inv in data.arinvh}
    accounts = {row[0] for row in data.arcust}
    assert all(pay[1] in invoices for pay in data.arpaym)
    assert all(inv[1] in accounts for inv in data.arinvh)


def test_account_names_are_upper_case_and_sometimes_truncated(data):
    """CUSTNM is the customer's name in upper case, at most 60 characters, and sometimes cut short."""
    names = {(row[5] or "").ljust(10): row[1] for row in data.customers}
    pairs = [(row[1], names[row[0]]) for row in data.arcust if row[0] in names]
    assert all(custnm == custnm.upper() and len(custnm) <= 60 for custnm, _ in pairs)
    assert all(name.upper().startswith(custnm) for custnm, name in pairs)
    assert any(custnm != name.upper() for custnm, name in pairs)


def test_account_statuses_and_orphan_accounts(data):
    """Accounts are active, on hold or closed; some have no Sales customer."""
    assert {row[4] for row in data.arcust} == {"A", "H", "X"}
    linked = {(row[5] or "").ljust(10) for row in data.customers}
    assert any(row[0] not in linked for row in data.arcust)


def test_prospects_and_dangling_account_numbers(data):
    """Some customers are prospects (no acct_no) and some have an acct_no with no ARCUST row."""
    accounts = {row[0].rstrip() for row in data.arcust}
    acct_nos = [row[5] for row in data.customers]
    assert None in acct_nos
    assert any(a is not None and a not in accounts for a in acct_nos)
    assert all(a is None or re.fullmatch(r"C\d{7}", a) for a in acct_nos)


def test_item_costing_covers_most_but_not_all_skus(data):
    """ICITEM has a row for most warehouse SKUs but not all, and one cost was never updated (LASTUPD 0)."""
    assert 0.8 * len(data.items) < len(data.icitem) < len(data.items)
    assert any(row[2] == 0 for row in data.icitem)


def test_identifiers_follow_each_systems_spelling(data):
    """Ids count from 1; SKUs are WH-nnnnnn (lower case in Sales); order numbers carry the order's year."""
    assert [row[0] for row in data.customers] == list(range(1, len(data.customers) + 1))
    assert sorted(row[0] for row in data.products) == list(range(1, len(data.products) + 1))
    assert all(re.fullmatch(r"WH-\d{6}", item[0]) for item in data.items)
    assert all(sku is None or re.fullmatch(r"wh-\d{6}", sku) for _, _, sku, _, _ in data.products)
    for order_no, _, _, ordered_at, _, _ in data.orders:
        assert re.fullmatch(r"SO-\d{4}-\d{6}", order_no)
        assert order_no[3:7] == str(ordered_at.year)
    line_numbers: dict[str, list[int]] = defaultdict(list)
    for order_no, line_no, _, _, _, _ in data.order_lines:
        line_numbers[order_no].append(line_no)
    assert all(numbers == list(range(1, len(numbers) + 1)) for numbers in line_numbers.values())
    assert set(line_numbers) == {row[0] for row in data.orders}


def test_times_have_each_systems_type(data):
    """Sales datetimes are naive whole seconds, Warehouse timestamps are aware UTC, Accounting dates are YYYYMMDD."""
    for value in [row[4] for row in data.customers] + [row[3] for row in data.orders]:
        assert value.tzinfo is None
        assert value.microsecond == 0
    for value in [row[6] for row in data.items] + [row[4] for row in data.stock] + [row[6] for row in data.movements]:
        assert value.utcoffset() == timedelta(0)
    dates = [inv[3] for inv in data.arinvh] + [inv[4] for inv in data.arinvh] + [pay[2] for pay in data.arpaym]
    dates += [row[2] for row in data.icitem if row[2] != 0]
    for value in dates:
        assert datetime.strptime(str(value), "%Y%m%d")


def test_dates_are_anchored_to_a_fixed_epoch(data):
    """Orders fall in 2023-01-01..2026-10-31; no movement, invoice or payment is dated after that."""
    assert all(EPOCH <= row[3] <= AS_OF for row in data.orders)
    assert all(m[6] <= AS_OF.replace(tzinfo=UTC) for m in data.movements)
    last = ymd(AS_OF.date())
    assert all(inv[3] <= last for inv in data.arinvh)
    invdt = {inv[0]: inv[3] for inv in data.arinvh}
    assert all(invdt[pay[1]] <= pay[2] <= last for pay in data.arpaym)


def test_values_fit_their_columns(data):
    """No generated string is longer than its legacy column allows."""
    widths = [(data.customers, 1, 200), (data.customers, 2, 254), (data.products, 1, 200), (data.arcust, 1, 60),
              (data.movements, 5, 32), (data.orders, 4, 8)]
    for rows, index, width in widths:
        assert max(len(row[index] or "") for row in rows) <= width


@pytest.fixture(name="seeded", scope="module")
def _seeded(empty_legacy: LegacyTargets) -> tuple[LegacyTargets, dict[str, int], list[str]]:
    """Scale-1, seed-42 demo data loaded into this module's throw-away databases."""
    lines: list[str] = []
    counts = seed(empty_legacy, 1, 42, log=lines.append)
    return empty_legacy, counts, lines


def _odbc_rows(odbc: str, query: str) -> list[tuple[object, ...]]:
    conn = connect_odbc(odbc)
    try:
        return [tuple(row) for row in conn.execute(query).fetchall()]
    finally:
        conn.close()


def test_seed_reports_counts_of_the_generated_data(seeded, data42):
    """seed() returns the row count of every table, equal to the generated dataset's, and logs its progress."""
    _, counts, lines = seeded
    assert counts == data42.counts()
    assert any("movements" in line for line in lines)


def test_seeded_databases_hold_every_row(seeded, data42):
    """After seeding, COUNT(*) of every table in all three databases equals the generated rows."""
    targets, counts, _ = seeded
    with psycopg.connect(targets.warehouse_dsn) as conn:
        for table in ("locations", "items", "stock", "movements"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (counts[table],)
    sales = sales_as_odbc(targets.sales_url, targets.accounting_odbc)
    for table in ("customers", "products", "orders", "order_lines"):
        assert _odbc_rows(sales, f"SELECT COUNT(*) FROM {table}") == [(counts[table],)]
    for table in ("ARCUST", "ARINVH", "ARPAYM", "ICITEM"):
        assert _odbc_rows(targets.accounting_odbc, f"SELECT COUNT(*) FROM {table}") == [(counts[table],)]


def test_seeded_text_and_money_round_trip(seeded, data42):
    """Unicode names, NULLs, naive datetimes and Decimal prices read back exactly as generated."""
    targets, _, _ = seeded
    sales = sales_as_odbc(targets.sales_url, targets.accounting_odbc)
    assert _odbc_rows(sales, "SELECT * FROM customers ORDER BY id") == list(data42.customers)
    assert _odbc_rows(sales, "SELECT * FROM products ORDER BY id") == list(data42.products)
    with psycopg.connect(targets.warehouse_dsn) as conn:
        assert conn.execute("SELECT * FROM items ORDER BY sku").fetchall() == sorted(data42.items)


def test_seeded_accounting_reads_back_without_char_padding(seeded, data42):
    """MariaDB hands CHAR codes back without their trailing spaces; everything else reads back as generated."""
    targets, _, _ = seeded
    rows = _odbc_rows(targets.accounting_odbc, "SELECT * FROM ARCUST ORDER BY CUSTNO")
    assert rows == [(custno.rstrip(), *rest) for custno, *rest in sorted(data42.arcust)]
    assert any(not custnm.isascii() for _, custnm, *_ in rows)


def test_seeded_movements_sequence_continues_after_loaded_ids(seeded, data42):
    """The movements id sequence was moved past the loaded ids, so a new movement gets the next id."""
    targets, _, _ = seeded
    with psycopg.connect(targets.warehouse_dsn) as conn:
        assert conn.execute("SELECT last_value, is_called FROM movements_id_seq").fetchone() == (
            len(data42.movements), True)


def test_seeded_accounting_answers_derived_questions_like_the_dataset(seeded, data42):
    """Manual invoices (blank ORDREF) and today's overdue invoices counted in SQL match the generated data."""
    targets, _, _ = seeded
    acct = targets.accounting_odbc
    manual = sum(1 for inv in data42.arinvh if not inv[2].strip())
    assert _odbc_rows(acct, "SELECT COUNT(*) FROM ARINVH WHERE ORDREF = ''") == [(manual,)]
    today = ymd(datetime.now(UTC).date())
    due = {inv[0]: inv[4] for inv in data42.arinvh}
    overdue = sum(1 for invno, (status, _, balance) in _balances(data42).items()
                  if status == "O" and balance > 0 and due[invno] < today)
    query = ("SELECT COUNT(*) FROM ARINVH h LEFT JOIN (SELECT INVNO, SUM(AMTCENTS) AS PAID FROM ARPAYM "
             "GROUP BY INVNO) p ON p.INVNO = h.INVNO "
             f"WHERE h.STATUS = 'O' AND h.AMTCENTS - COALESCE(p.PAID, 0) > 0 AND h.DUEDT < {today}")
    assert overdue > 0
    assert _odbc_rows(acct, query) == [(overdue,)]
