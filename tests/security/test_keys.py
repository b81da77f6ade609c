"""API keys: hashed keys in the configuration, rotation, near misses, and no clear key in settings or logs."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest

from api.auth import KeyRing
from api.problems import Unauthorized
from api.settings import SettingsError, load_settings, parse_api_keys
from tests.security.conftest import CURSOR_SECRET, HASHED_FINANCE, ROTATED_READER, server_env
from tests.security.support import check_problem
from tests.servers import KEYS, Server, Upstreams


def _status(server: Server, key: str, path: str) -> int:
    return httpx.get(server.base + path, headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


def test_key_configured_by_its_hash_works(server: Server) -> None:
    """A key given to the server only as sha256=<hex>:finance authenticates as finance."""
    assert _status(server, HASHED_FINANCE, "/v1/invoices") == 200
    assert _status(server, HASHED_FINANCE, "/v1/locations") == 200
    assert _status(server, HASHED_FINANCE, "/v1/cache/invalidate") == 405  # a GET: past authentication


def test_the_hash_itself_is_not_a_key(server: Server) -> None:
    """Presenting the configured digest (with or without its sha256= prefix) is a 401: a leaked config is not a key."""
    digest = hashlib.sha256(HASHED_FINANCE.encode()).hexdigest()
    for presented in (digest, f"sha256={digest}", digest.upper(), hashlib.sha256(KEYS["finance"].encode()).hexdigest()):
        check_problem(httpx.get(server.base + "/v1/locations", headers={"Authorization": f"Bearer {presented}"},
                                timeout=30), 401)


def test_two_keys_of_one_role_work_together(server: Server) -> None:
    """During a rotation the old and the new reader key are both valid, each with exactly the reader's rights."""
    for key in (KEYS["reader"], ROTATED_READER):
        assert _status(server, key, "/v1/products") == 200
        assert _status(server, key, "/v1/invoices") == 403


def test_near_misses_are_refused(server: Server) -> None:
    """A key differing in case, by one character, by a prefix or a suffix is a 401."""
    key = KEYS["finance"]
    for near in (key.upper(), key[:-1], key + "x", key[1:], "x" + key, key.replace("-", "_"), key[: len(key) // 2]):
        check_problem(httpx.get(server.base + "/v1/invoices", headers={"Authorization": f"Bearer {near}"},
                                timeout=30), 401)


def test_keyring_compares_every_key_and_keeps_none_in_clear() -> None:
    """The key ring holds digests only, and any key of several for a role authenticates as that role."""
    ring = KeyRing(parse_api_keys(f"old-k:reader,new-k:reader,sha256={'ab' * 32}:admin"))
    assert ring.authenticate("Bearer old-k")[0] == ring.authenticate("Bearer new-k")[0] == "reader"
    assert "old-k" not in repr(ring.__dict__)
    for header in ("Bearer " + "ab" * 32, "Bearer", "bearer  ", "Basic old-k", None, "Bearer old-k2"):
        with pytest.raises(Unauthorized):
            ring.authenticate(header)


@pytest.mark.parametrize("raw", ["sha256=abc:finance", f"sha256={'zz' * 32}:finance", "k:root", "k", ":reader", ""])
def test_malformed_key_configuration_stops_startup(raw: str) -> None:
    """A short or non-hex hash, an unknown role or no key at all is a settings error, not a silently open door."""
    with pytest.raises(SettingsError, match="BIZFED_API_KEYS"):
        parse_api_keys(raw)


def test_settings_repr_shows_no_secret(upstreams: Upstreams) -> None:
    """The settings' repr masks connection strings and the cursor secret and holds no clear key."""
    env = server_env(upstreams)
    text = repr(load_settings(env))
    secrets = [CURSOR_SECRET, HASHED_FINANCE, ROTATED_READER, *KEYS.values(), env["BIZFED_WAREHOUSE_DSN"],
               env["BIZFED_SALES_URL"], env["BIZFED_ACCOUNTING_ODBC"], env["BIZFED_REDIS_URL"]]
    shown = [s for s in secrets if s in text]
    assert not shown, f"repr(settings) shows {shown}"
    assert "Secret('********')" in text


def test_logs_never_hold_a_clear_key(server: Server) -> None:
    """After bearer calls, dashboard calls with ?key= and calls with unknown keys, no key is in the server log."""
    unknown = "sk-unknown-Zx81Tq"
    for key in (*KEYS.values(), HASHED_FINANCE, ROTATED_READER, unknown):
        httpx.get(server.base + "/v1/locations", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        httpx.get(server.base + "/dashboard", params={"key": key}, timeout=30)
        httpx.get(server.base + "/v1/locations", params={"key": key, "token": key}, timeout=30)
    log = server.log_text()
    assert re.search(r'"route":\s*"/dashboard"', log), "the dashboard calls were not logged at all"
    leaked = [key for key in (*KEYS.values(), HASHED_FINANCE, ROTATED_READER, unknown, CURSOR_SECRET) if key in log]
    assert not leaked, f"the server log holds {leaked}"


def test_dashboard_takes_a_key_and_a_strict_policy(server: Server) -> None:
    """The dashboard needs a key, forbids inline script and framing, and is neither cached nor sent as a referrer."""
    check_problem(httpx.get(server.base + "/dashboard", timeout=30), 401)
    page = httpx.get(server.base + "/dashboard", params={"key": KEYS["reader"]}, timeout=30)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in page.headers["cache-control"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), "an inline script in the dashboard page"
    assert KEYS["reader"] not in page.text
