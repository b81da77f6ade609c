"""Finding inserted, updated and deleted rows of tables that carry no timestamps, by range checksums.

Every row falls in a bucket computed from its key. Each round sends one query per table: per bucket,
the row count and the sum of per-row fingerprints, all computed by the database. The differ holds
every row's (bucket, fingerprint, ref values) from the last acknowledged state, so it knows what
each bucket's count and sum should be; only buckets that differ are read again (their rows' keys,
fingerprints and ref columns) and diffed row by row against what is held.

The fingerprint of a row mixes its key into every column's value, so swapping values between two
rows of a bucket changes the sums, and text is hashed character by character with positional weights,
so a same-length edit ("Anna" -> "Anne") changes them too. One sum, not two: a second one doubled
the database's work per round (measured) to guard only against contrived collisions. The SQL text
comes from a ``Dialect``: plain ODBC escapes (any engine behind an ODBC driver), MariaDB/MySQL
(CRC32), or SQLite.

``diff`` never changes the held state; ``apply`` does, with what ``diff`` returned. Applying is
idempotent (it replaces whole buckets), so a repeated or stale acknowledgement does no harm.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Rows = Sequence[Sequence[Any]]
Fetch = Callable[[str, Sequence[Any]], Awaitable[Rows]]
Statement = tuple[str, Sequence[Any]]
# Several statements run in turn, their rows in order: one trip to a driver's worker thread for them all.
FetchMany = Callable[[Sequence[Statement]], Awaitable[list[Rows]]]
Kind = Literal["int", "text", "decimal", "time"]
Key = Any   # the key's value, or a tuple of them for a composite key (a scalar saves a tuple per row)
Held = tuple[Any, ...]   # (fingerprint, *ref values)

# Per-row values are reduced modulo a prime below 2**31, so a weighted sum of them, a product of two
# and a bucket's sum of millions all stay inside BIGINT (and the DECIMAL that SUM of BIGINT gives).
P = 2_147_483_647
# What a NULL number counts as: every residue is some number's, so NULL is told apart from all but the
# numbers congruent to this one (an arbitrary value, unlike 0 or P, which 0 shares).
NULL_MARK = 1_500_000_001
MIN_BUCKETS, MAX_BUCKETS, ROWS_PER_BUCKET = 256, 1024, 8
MAX_CHANGES = 10_000     # changed rows in one round beyond which the round gives up and reloads
LOAD_CHUNK = 20_000      # rows per statement of a full load (keyset pages)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind = "int"
    width: int = 0   # declared characters of a text column: how many positions are hashed


def num(name: str) -> Column:
    return Column(name, "int")


def text(name: str, width: int) -> Column:
    return Column(name, "text", width)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table to watch. Names are as the database spells them; ``T`` is the table's alias.

    ``refs`` are the columns returned for a changed row, bare (this table's) or qualified by an alias
    of ``join``, which only the narrowing and loading queries use (never the per-round bucket query).
    """

    name: str
    key: tuple[Column, ...]
    columns: tuple[Column, ...]
    refs: tuple[str, ...] = ()
    join: str = ""

    def ref_expr(self, ref: str) -> str:
        return ref if "." in ref else f"T.{ref}"


class Dialect(Protocol):
    name: str
    mark: str   # the driver's parameter marker

    def bucket(self, spec: TableSpec, buckets: int) -> str:
        """A non-negative integer below ``buckets`` from the row's key."""

    def fingerprint(self, spec: TableSpec) -> str:
        """An integer expression that changes with any fingerprinted or key column of the row, and with
        the key's pairing to the values (a swap between rows changes a bucket's sum)."""

    def limit(self, sql: str, n: int) -> str: ...


def _primes(start: int, count: int) -> list[int]:
    found: list[int] = []
    n = start
    while len(found) < count:
        n += 1
        if all(n % d for d in range(2, math.isqrt(n) + 1)):
            found.append(n)
    return found


# Distinct primes as weights, below 2**20: a character code (below 2**32 with ORD) times one stays
# below 2**52, and the sum of a few hundred such terms inside BIGINT. With every weight prime and
# below the modulus, a change of one character always changes the sum; several changes cancel only
# by a coincidence of about 1 in P.
_COL_PRIMES = _primes(1_000, 64)
_POSITION_PRIMES = _primes(65_536, 256)
_LENGTH_WEIGHT = 1_009


@dataclass(frozen=True, slots=True)
class Functions:
    """How one engine spells the scalar functions the arithmetic fingerprint needs."""

    length: str        # "{fn LENGTH(%s)}"
    char_code: str     # "{fn ASCII(%s)}": the code of a one-character string
    substring: str     # "{fn SUBSTRING(%s, %d, 1)}"
    ifnull: str        # "{fn IFNULL(%s, %s)}"
    mod: str           # "{fn MOD(%s, %s)}"
    abs: str           # "{fn ABS(%s)}"
    to_int: str        # exact DECIMAL to an integer of hundredths
    to_text: str       # a date/time to text
    time_width: int = 26


ODBC = Functions(
    length="{fn LENGTH(%s)}", char_code="{fn ASCII(%s)}", substring="{fn SUBSTRING(%s, %d, 1)}",
    ifnull="{fn IFNULL(%s, %s)}", mod="{fn MOD(%s, %s)}", abs="{fn ABS(%s)}",
    to_int="{fn CONVERT(%s * 100, SQL_BIGINT)}", to_text="{fn CONVERT(%s, SQL_VARCHAR)}")
SQLITE = Functions(
    length="length(%s)", char_code="unicode(%s)", substring="substr(%s, %d, 1)", ifnull="ifnull(%s, %s)",
    mod="(%s %% %s)", abs="abs(%s)", to_int="CAST(round(%s * 100) AS INTEGER)", to_text="CAST(%s AS TEXT)")


class ArithmeticDialect:
    """Fingerprints from arithmetic on column values and character codes: any engine with the ODBC
    scalar functions (or their SQLite spellings). Only the first ``width`` characters of text are seen."""

    def __init__(self, name: str, functions: Functions, *, mark: str = "?", char_code: str | None = None,
                 row_limit: Literal["fetch", "limit"] = "fetch") -> None:
        self.name = name
        self.mark = mark
        self._f = functions if char_code is None else _with_char_code(functions, char_code)
        self._row_limit = row_limit

    def limit(self, sql: str, n: int) -> str:
        if self._row_limit == "limit":
            return f"{sql} LIMIT {int(n)}"
        return f"{sql} OFFSET 0 ROWS FETCH NEXT {int(n)} ROWS ONLY"

    def _mod(self, expr: str, m: int) -> str:
        return self._f.mod % (expr, m)

    def _text_sum(self, expr: str, width: int) -> str:
        """Length and positionally weighted character codes: NULL (length -1) differs from ''."""
        f = self._f
        terms = [f"{f.ifnull % (f.length % expr, -1)} * {_LENGTH_WEIGHT}"]
        terms += [f"{f.ifnull % (f.char_code % (f.substring % (expr, i)), 0)} * {_POSITION_PRIMES[i - 1]}"
                  for i in range(1, width + 1)]
        return "(" + " + ".join(terms) + ")"

    def _value(self, col: Column) -> str:
        """The column's contribution reduced below the modulus."""
        expr = f"T.{col.name}"
        if col.kind == "text":
            return self._mod(self._text_sum(expr, col.width), P)
        if col.kind == "time":
            return self._mod(self._text_sum(self._f.to_text % expr, self._f.time_width), P)
        number = self._f.to_int % expr if col.kind == "decimal" else expr
        return self._f.ifnull % (self._mod(number, P), NULL_MARK)

    def _key_hash(self, spec: TableSpec) -> str:
        """A non-negative integer from the key columns."""
        parts = []
        for n, col in enumerate(spec.key):
            expr = f"T.{col.name}"
            value = self._f.abs % expr if col.kind == "int" else self._text_sum(expr, col.width)
            parts.append(f"{value} * {_COL_PRIMES[n]}")
        return "(" + " + ".join(parts) + ")"

    def bucket(self, spec: TableSpec, buckets: int) -> str:
        if len(spec.key) == 1 and spec.key[0].kind == "int":
            return self._mod(self._f.abs % f"T.{spec.key[0].name}", buckets)
        return self._mod(self._key_hash(spec), buckets)

    def fingerprint(self, spec: TableSpec) -> str:
        values = [f"{self._value(col)} * {_COL_PRIMES[n]}" for n, col in enumerate(spec.columns)]
        body = self._mod("(" + " + ".join(values) + ")", P) if values else "1"
        # The key's own factor (1 .. P-1): the same values under other keys sum differently.
        factor = f"(1 + {self._mod(self._key_hash(spec), P - 1)})"
        return self._mod(f"{body} * {factor}", P)


def _with_char_code(functions: Functions, char_code: str) -> Functions:
    return Functions(functions.length, char_code, functions.substring, functions.ifnull, functions.mod,
                     functions.abs, functions.to_int, functions.to_text, functions.time_width)


def odbc_dialect(dbms_name: str) -> ArithmeticDialect:
    """The ODBC dialect for the engine an ODBC driver reports (``SQL_DBMS_NAME``).

    ``{fn ASCII}`` gives only the first byte of a multi-byte character on MariaDB/MySQL, where ``ORD``
    gives the whole code, so there "é" -> "è" is seen too.
    """
    if any(name in dbms_name.lower() for name in ("mariadb", "mysql")):
        return ArithmeticDialect("odbc-mysql", ODBC, char_code="ORD(%s)")
    return ArithmeticDialect("odbc", ODBC)


def sqlite_dialect(mark: str = "?") -> ArithmeticDialect:
    return ArithmeticDialect("sqlite", SQLITE, mark=mark, row_limit="limit")


class MysqlDialect:
    """MariaDB/MySQL: each row's key and columns encoded unambiguously (length-prefixed, NULL apart)
    and hashed with CRC32, times a factor from the key. Every character of every column is seen."""

    name = "mysql"

    def __init__(self, mark: str = "%s") -> None:
        self.mark = mark

    @staticmethod
    def _encoded(cols: Iterable[Column]) -> str:
        parts = [f"IFNULL(CONCAT(CHAR_LENGTH(T.{c.name}), ':', T.{c.name}), 'N')" for c in cols]
        return f"CONCAT_WS(',', {', '.join(parts)})"

    def bucket(self, spec: TableSpec, buckets: int) -> str:
        if len(spec.key) == 1 and spec.key[0].kind == "int":
            return f"MOD(ABS(T.{spec.key[0].name}), {int(buckets)})"
        return f"MOD(CRC32({self._encoded(spec.key)}), {int(buckets)})"

    def fingerprint(self, spec: TableSpec) -> str:
        # CRC32 is linear: without the key's factor, a swap between two rows could leave the sum alone.
        if len(spec.key) == 1 and spec.key[0].kind == "int":
            key = f"ABS(T.{spec.key[0].name})"
        else:
            key = f"CRC32({self._encoded(spec.key)})"
        row = self._encoded((*spec.key, *spec.columns))
        return f"MOD(CRC32({row}) * (1 + MOD({key}, {P - 1})), {P})"

    def limit(self, sql: str, n: int) -> str:
        return f"{sql} LIMIT {int(n)}"


@dataclass(frozen=True, slots=True)
class RowDelta:
    """One row inserted (``before`` None), deleted (``after`` None) or updated: its key and ref values."""

    table: str
    key: Key
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


@dataclass(slots=True)
class _Table:
    spec: TableSpec
    buckets: int
    rows: dict[int, dict[Key, Held]] = field(default_factory=dict)   # bucket -> key -> held row
    sums: dict[int, tuple[int, int]] = field(default_factory=dict)   # bucket -> (count, sum of fingerprints)

    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def find(self, key: Key) -> Held | None:
        """The held row of ``key``, whatever its bucket (a scan of the buckets: for rare look-ups)."""
        for rows in self.rows.values():
            if key in rows:
                return rows[key]
        return None

    def put(self, bucket: int, rows: dict[Key, Held]) -> None:
        if rows:
            self.rows[bucket] = rows
            self.sums[bucket] = _sums(rows)
        else:
            self.rows.pop(bucket, None)
            self.sums.pop(bucket, None)


def _sums(rows: Mapping[Key, Held]) -> tuple[int, int]:
    return len(rows), sum(h[0] for h in rows.values())


@dataclass(frozen=True, slots=True)
class Pending:
    """What one ``diff`` found: the rows that changed and the state to hold once they are acknowledged."""

    deltas: tuple[RowDelta, ...] = ()
    complete: bool = True
    buckets: Mapping[str, Mapping[int, dict[Key, Held]]] = field(default_factory=dict)   # replaced buckets
    reloaded: Mapping[str, _Table] = field(default_factory=dict)   # tables read again in full
    bases: Mapping[str, _Table] = field(default_factory=dict)   # the held tables ``buckets`` were diffed against


class Differ:
    """The held state of ``specs``' tables and the rounds that diff the database against it."""

    def __init__(self, specs: Sequence[TableSpec], dialect: Dialect, fetch: Fetch, *,
                 fetch_many: FetchMany | None = None, max_changes: int = MAX_CHANGES,
                 load_chunk: int = LOAD_CHUNK) -> None:
        self.specs = tuple(specs)
        self.dialect = dialect
        self._fetch = fetch
        self._fetch_many = fetch_many or self._one_by_one
        self._max_changes = max_changes
        self._load_chunk = load_chunk
        self._tables: dict[str, _Table] = {}
        self._bytes_per_row = 0
        self.last_changed_buckets = 0
        self.last_rows_read = 0
        self.loads = 0

    # -- state ---------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return len(self._tables) == len(self.specs)

    def held(self, table: str, key: Key) -> Mapping[str, Any] | None:
        """The ref values held for ``key`` of ``table`` (the last acknowledged state), or None."""
        found = self._tables[table].find(key)
        return None if found is None else self._refs(self._tables[table].spec, found)

    def details(self) -> dict[str, object]:
        rows = sum(t.count() for t in self._tables.values())
        return {
            "dialect": self.dialect.name,
            "tables": {name: {"rows": t.count(), "buckets": t.buckets} for name, t in self._tables.items()},
            "rows_held": rows,
            "held_bytes_estimate": rows * self._bytes_per_row,
            "last_changed_buckets": self.last_changed_buckets,
            "last_rows_read": self.last_rows_read,
            "full_loads": self.loads,
        }

    def apply(self, pending: Pending) -> None:
        """Make ``pending`` the held state (idempotent: whole buckets and tables are replaced)."""
        for name, table in pending.reloaded.items():
            self._tables[name] = table
        for name, buckets in pending.buckets.items():
            table = self._tables[name]
            if table is not pending.bases.get(name):
                continue   # diffed against a table since reloaded (a stale ack): its buckets mean nothing now
            for bucket, rows in buckets.items():
                table.put(bucket, rows)

    # -- rounds --------------------------------------------------------------

    async def load(self) -> None:
        """Read every table in full and hold it: the position changes are reported from."""
        tables = {spec.name: await self._load(spec) for spec in self.specs}
        self._tables = tables
        self._estimate_memory()

    async def diff(self) -> Pending:
        """What changed since the held state: one bucket query per table, one narrowing query per table
        with changed buckets (each set sent at once through ``fetch_many``). A table with more than
        ``max_changes`` changed rows is read again in full and the result is incomplete."""
        tables = [self._tables[spec.name] for spec in self.specs]
        sums = await self._fetch_many([(self._sums_sql(t), ()) for t in tables])
        changed = {t.spec.name: c for t, rows in zip(tables, sums, strict=True) if (c := _changed(t, rows))}
        narrowing = [(t, self._narrow_sql(t, chunk)) for t in tables if t.spec.name in changed
                     for chunk in _chunks(changed[t.spec.name])]
        found_rows = await self._fetch_many([(sql, ()) for _, sql in narrowing]) if narrowing else []
        fresh_by: dict[str, dict[int, dict[Key, Held]]] = {name: {b: {} for b in c} for name, c in changed.items()}
        for (table, _), rows in zip(narrowing, found_rows, strict=True):
            _hold(table.spec, rows, fresh_by[table.spec.name])
        deltas: list[RowDelta] = []
        replaced: dict[str, dict[int, dict[Key, Held]]] = {}
        reloaded: dict[str, _Table] = {}
        for table in tables:
            fresh = fresh_by.get(table.spec.name)
            if fresh is None:
                continue
            found = _row_deltas(table, fresh)
            if len(found) > self._max_changes:
                reloaded[table.spec.name] = await self._load(table.spec)
                continue
            deltas.extend(found)
            replaced[table.spec.name] = fresh
        self.last_changed_buckets = sum(len(c) for c in changed.values())
        self.last_rows_read = sum(len(rows) for rows in found_rows)
        bases = {name: self._tables[name] for name in replaced}
        return Pending(tuple(deltas), not reloaded, replaced, reloaded, bases)

    async def _one_by_one(self, statements: Sequence[Statement]) -> list[Rows]:
        return [await self._fetch(sql, values) for sql, values in statements]

    def _sums_sql(self, table: _Table) -> str:
        spec = table.spec
        return (f"SELECT B, COUNT(*), SUM(F) FROM (SELECT {self.dialect.bucket(spec, table.buckets)} AS B, "
                f"{self.dialect.fingerprint(spec)} AS F FROM {spec.name} T) D GROUP BY B")

    def _narrow_sql(self, table: _Table, buckets: Sequence[int]) -> str:
        """The rows now in ``buckets`` (bucket numbers are our own integers, written inline)."""
        chunk = ", ".join(str(int(b)) for b in buckets)
        bucket = self.dialect.bucket(table.spec, table.buckets)
        return f"{self._select(table.spec, table.buckets)} WHERE {bucket} IN ({chunk})"

    def _select(self, spec: TableSpec, buckets: int) -> str:
        cols = [self.dialect.bucket(spec, buckets), self.dialect.fingerprint(spec), *(f"T.{c.name}" for c in spec.key),
                *(spec.ref_expr(r) for r in spec.refs)]
        return f"SELECT {', '.join(cols)} FROM {spec.name} T {spec.join}".rstrip()

    async def _load(self, spec: TableSpec) -> _Table:
        (count,), = await self._fetch(f"SELECT COUNT(*) FROM {spec.name}", ())
        table = _Table(spec, _bucket_count(int(count)))
        rows: dict[int, dict[Key, Held]] = {}
        order = ", ".join(f"T.{c.name}" for c in spec.key)
        after: Sequence[Any] | None = None
        while True:
            where, values = ("", []) if after is None else _keyset(spec, after, self.dialect.mark)
            sql = self.dialect.limit(f"{self._select(spec, table.buckets)}{where} ORDER BY {order}", self._load_chunk)
            page = await self._fetch(sql, values)
            _hold(spec, page, rows)
            if len(page) < self._load_chunk:
                break
            after = page[-1][2:2 + len(spec.key)]
        for bucket, held in rows.items():
            table.put(bucket, held)
        self.loads += 1
        return table

    @staticmethod
    def _refs(spec: TableSpec, held: Held) -> dict[str, Any]:
        return dict(zip(spec.refs, held[1:], strict=True))

    def _estimate_memory(self) -> None:
        sample: list[tuple[Key, Held]] = []
        for table in self._tables.values():
            for rows in table.rows.values():
                sample.extend(list(rows.items())[:2])
                if len(sample) >= 200:
                    break
        if not sample:
            return
        per_row = sum(_deep_size(k) + _deep_size(h) for k, h in sample) / len(sample)
        # plus the bucket dicts' entries and slack: tracemalloc measured ~400-430 bytes a row in all
        self._bytes_per_row = int(per_row + 220)


def _deep_size(value: Any) -> int:
    if isinstance(value, tuple):
        return sys.getsizeof(value) + sum(sys.getsizeof(v) for v in value)
    return sys.getsizeof(value)


def _bucket_count(rows: int) -> int:
    target = max(1, rows // ROWS_PER_BUCKET)
    return min(MAX_BUCKETS, max(MIN_BUCKETS, 1 << (target - 1).bit_length()))


def _keyset(spec: TableSpec, after: Sequence[Any], mark: str) -> tuple[str, list[Any]]:
    """``WHERE`` the key comes after ``after`` in key order: (a > ?) OR (a = ? AND b > ?) ..."""
    ors: list[str] = []
    values: list[Any] = []
    for n, col in enumerate(spec.key):
        ands = [f"T.{c.name} = {mark}" for c in spec.key[:n]] + [f"T.{col.name} > {mark}"]
        ors.append("(" + " AND ".join(ands) + ")")
        values.extend([*after[:n], after[n]])
    return " WHERE " + " OR ".join(ors), values


def _hold(spec: TableSpec, rows: Rows, into: dict[int, dict[Key, Held]]) -> None:
    nkey = len(spec.key)
    for row in rows:
        key = row[2] if nkey == 1 else tuple(row[2:2 + nkey])
        into.setdefault(int(row[0]), {})[key] = (int(row[1]), *row[2 + nkey:])


def _row_deltas(table: _Table, fresh: Mapping[int, Mapping[Key, Held]]) -> list[RowDelta]:
    spec, name = table.spec, table.spec.name
    out: list[RowDelta] = []
    for bucket, now in fresh.items():
        was = table.rows.get(bucket, {})
        for key, row in now.items():
            old = was.get(key)
            if old is None:
                out.append(RowDelta(name, key, None, Differ._refs(spec, row)))
            elif old[0] != row[0]:
                out.append(RowDelta(name, key, Differ._refs(spec, old), Differ._refs(spec, row)))
        out.extend(RowDelta(name, key, Differ._refs(spec, old), None) for key, old in was.items() if key not in now)
    return out


def _changed(table: _Table, sums: Rows) -> list[int]:
    """The buckets whose count or sum differ from what ``table`` holds, or that are gone."""
    seen = {int(b): (int(n), int(f or 0)) for b, n, f in sums}
    changed = [b for b, got in seen.items() if table.sums.get(b) != got]
    changed += [b for b in table.sums if b not in seen]
    return sorted(changed)


def _chunks(buckets: Sequence[int], size: int = 500) -> list[Sequence[int]]:
    return [buckets[i:i + size] for i in range(0, len(buckets), size)]


class PollingFeed:
    """What both polling feeds share: their mode, counters and what they tell ``/v1/sources``."""

    def __init__(self) -> None:
        self._differ: Differ | None = None
        self.queries = 0
        self.rounds = 0
        self.round_s: float | None = None

    @property
    def mode(self) -> Literal["poll"]:
        return "poll"

    def details(self) -> dict[str, object]:
        """Rounds, statements, the last round's time and the differ's state."""
        out: dict[str, object] = {"rounds": self.rounds, "queries": self.queries,
                                  "round_s": None if self.round_s is None else round(self.round_s, 4)}
        if self._differ is not None:
            out.update(self._differ.details())
        return out
