"""Settings: read once from the environment (a file may add to it), frozen, secrets masked."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cache.freshness import Freshness
from cache.redis_client import parse_redis_url
from federation.policy import Timeouts
from federation.roles import ROLES
from federation.sources import SOURCES as SOURCE_NAMES


class SettingsError(Exception):
    """A missing or malformed setting; the message names the variable."""


class Secret(str):
    """A string whose repr never shows its value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('********')"


@dataclass(frozen=True)
class ApiKey:
    digest: str      # sha256 hex of the key; keys are never kept in clear
    role: str


# 100 requests a second per key, sustained over the minute: a busy application's share, far above what a
# person or a dashboard makes, and low enough that one runaway client cannot take the sources' capacity.
DEFAULT_RATE_LIMIT = 6000

DEFAULT_FRESHNESS = {
    "warehouse": Freshness(ttl=10, stale_while_revalidate=20, stale_if_error=3600),
    "sales": Freshness(ttl=30, stale_while_revalidate=60, stale_if_error=3600),
    "accounting": Freshness(ttl=60, stale_while_revalidate=120, stale_if_error=6 * 3600),
}


DEFAULT_TIMEOUTS = Timeouts(connect=2.0, attempt=2.0, deadline=5.0)


@dataclass(frozen=True)
class Settings:
    warehouse_dsn: Secret
    sales_url: Secret
    accounting_odbc: Secret
    redis_url: Secret
    api_keys: tuple[ApiKey, ...]
    cursor_secret: Secret
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    warehouse_pool: int = 10
    sales_pool: int = 10
    accounting_workers: int = 4
    bulkhead_wait: float = 1.0     # a busy but healthy source is worth a short queue
    breaker_fail_max: int = 5
    breaker_reset: float = 10.0
    retry_attempts: int = 2
    cache_enabled: bool = True
    freshness: Mapping[str, Freshness] = field(default_factory=lambda: dict(DEFAULT_FRESHNESS))
    watch_interval: float = 1.0     # seconds between change-capture rounds that poll a source
    log_interval: float = 0.2       # ... and between rounds that read a source's log
    local_cache_ttl: float = 1.0    # seconds a hot entry is served from process memory; 0 turns it off
    rate_limit: int = DEFAULT_RATE_LIMIT   # requests per key per window; 0 turns limiting off
    rate_window: float = 60.0
    head_timeout: float = 10.0      # seconds a request line and headers may take to arrive, in all
    # How each source's changes are captured: auto (its log where the server allows it, else polling),
    # log (only the log: capture fails, visibly, when it cannot be read), poll, or off.
    change_modes: Mapping[str, str] = field(default_factory=lambda: dict.fromkeys(SOURCE_NAMES, "auto"))
    change_history: int = 10_000    # change events kept for clients resuming /v1/changes
    wal_retention: int = 1 << 30    # bytes of WAL bizfed's replication slot may hold back before it is reset


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """``key:role`` pairs, comma-separated; ``sha256=<hex>:role`` gives a key by its hash."""
    keys = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        secret, sep, role = part.rpartition(":")
        if not sep or not secret or role not in ROLES:
            raise SettingsError(f"BIZFED_API_KEYS: expected comma-separated key:role pairs with role in "
                                f"{', '.join(ROLES)}")
        if secret.startswith("sha256="):
            digest = secret.removeprefix("sha256=").lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise SettingsError("BIZFED_API_KEYS: a sha256= key must be 64 hex digits")
        else:
            digest = hash_key(secret)
        keys.append(ApiKey(digest, role))
    if not keys:
        raise SettingsError("BIZFED_API_KEYS: no keys given")
    return tuple(keys)


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set")
    return value


CHANGE_MODES = ("auto", "log", "poll", "off")


def _change_mode(env: Mapping[str, str], source: str) -> str:
    name = f"BIZFED_CHANGES_{source.upper()}"
    value = env.get(name, "auto").strip().lower()
    if value not in CHANGE_MODES:
        raise SettingsError(f"{name} must be one of {', '.join(CHANGE_MODES)}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


def _freshness(env: Mapping[str, str]) -> dict[str, Freshness]:
    """``BIZFED_FRESHNESS_<SOURCE>=ttl,stale_while_revalidate,stale_if_error`` (seconds) per source."""
    result = dict(DEFAULT_FRESHNESS)
    for source in result:
        name = f"BIZFED_FRESHNESS_{source.upper()}"
        raw = env.get(name)
        if not raw:
            continue
        try:
            ttl, swr, sie = (float(part) for part in raw.split(","))
            result[source] = Freshness(ttl, swr, sie)
        except ValueError:
            raise SettingsError(f"{name} must be three numbers of seconds: ttl,stale_while_revalidate,"
                                "stale_if_error (ttl > 0)") from None
    return result


def _check_redis_url(url: str) -> None:
    """One server, or Sentinel for failover; Cluster is refused until the key prefixes share a hash slot."""
    try:
        address = parse_redis_url(url)
    except ValueError as exc:
        raise SettingsError(f"BIZFED_REDIS_URL: {exc}") from None
    if address.kind == "cluster":
        raise SettingsError("BIZFED_REDIS_URL: redis+cluster:// is not supported yet (the cache's scripts use "
                            "keys in several hash slots); use redis+sentinel://host:port,.../service for failover")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; ``BIZFED_ENV_FILE`` names a file whose values it overrides."""
    env = dict(os.environ if environ is None else environ)
    file = env.get("BIZFED_ENV_FILE")
    if file:
        try:
            env = {**read_env_file(Path(file)), **env}
        except OSError as exc:
            raise SettingsError(f"BIZFED_ENV_FILE: cannot read {file}: {exc.strerror}") from None
    warehouse = _required(env, "BIZFED_WAREHOUSE_DSN")
    if not (warehouse.startswith(("postgresql://", "postgres://")) or "=" in warehouse):
        raise SettingsError("BIZFED_WAREHOUSE_DSN must be a libpq connection string or postgresql:// URL")
    sales = _required(env, "BIZFED_SALES_URL")
    if not sales.startswith(("mysql+asyncmy://", "mariadb+asyncmy://")):
        # Sales is MariaDB, read through SQLAlchemy's asyncmy driver; no other database is supported.
        raise SettingsError("BIZFED_SALES_URL must be a MariaDB URL such as mysql+asyncmy://user@host/sales")
    accounting = _required(env, "BIZFED_ACCOUNTING_ODBC")
    if "DRIVER=" not in accounting.upper() and "DSN=" not in accounting.upper():
        raise SettingsError("BIZFED_ACCOUNTING_ODBC must be an ODBC connection string with DRIVER= or DSN=")
    redis_url = _required(env, "BIZFED_REDIS_URL")
    _check_redis_url(redis_url)
    raw_keys = _required(env, "BIZFED_API_KEYS")
    keys = parse_api_keys(raw_keys)
    # Replicas must agree on the cursor secret; without one, derive it from the shared key config.
    cursor_secret = env.get("BIZFED_CURSOR_SECRET") or hashlib.sha256(b"bizfed-cursor:" + raw_keys.encode()).hexdigest()
    return Settings(
        warehouse_dsn=Secret(warehouse),
        sales_url=Secret(sales),
        accounting_odbc=Secret(accounting),
        redis_url=Secret(redis_url),
        api_keys=keys,
        cursor_secret=Secret(cursor_secret),
        timeouts=Timeouts(connect=_number(env, "BIZFED_CONNECT_TIMEOUT", 2.0, minimum=0.05),
                          attempt=_number(env, "BIZFED_SOURCE_TIMEOUT", 2.0, minimum=0.05),
                          deadline=_number(env, "BIZFED_REQUEST_DEADLINE", 5.0, minimum=0.1)),
        breaker_fail_max=int(_number(env, "BIZFED_BREAKER_FAIL_MAX", 5, minimum=1)),
        breaker_reset=_number(env, "BIZFED_BREAKER_RESET", 10.0, minimum=0.1),
        retry_attempts=int(_number(env, "BIZFED_RETRY_ATTEMPTS", 2, minimum=1)),
        cache_enabled=env.get("BIZFED_CACHE", "on").lower() not in ("off", "0", "false", "no"),
        watch_interval=_number(env, "BIZFED_WATCH_INTERVAL", 1.0, minimum=0.05),
        log_interval=_number(env, "BIZFED_LOG_INTERVAL", 0.2, minimum=0.02),
        freshness=_freshness(env),
        local_cache_ttl=_number(env, "BIZFED_LOCAL_CACHE_TTL", 1.0),
        rate_limit=int(_number(env, "BIZFED_RATE_LIMIT", DEFAULT_RATE_LIMIT)),
        rate_window=_number(env, "BIZFED_RATE_WINDOW", 60.0, minimum=1),
        head_timeout=_number(env, "BIZFED_HEAD_TIMEOUT", 10.0, minimum=0.1),
        change_modes={name: _change_mode(env, name) for name in SOURCE_NAMES},
        change_history=int(_number(env, "BIZFED_CHANGE_HISTORY", 10_000, minimum=100)),
        wal_retention=int(_number(env, "BIZFED_WAL_RETENTION_BYTES", 1 << 30, minimum=1 << 20)),
    )
