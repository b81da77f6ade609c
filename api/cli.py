"""The ``bizfed`` command: serve, demo and seed."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from functools import partial
from typing import Any

from api.settings import Settings, SettingsError, load_settings


def _app_from_env(name: str = "bizfed") -> Any:
    from api.app import create_app

    return create_app(load_settings(), name=name)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before Sanic starts, so that a taken port is one clear line."""
    from sanic.server.socket import bind_socket

    try:
        return bind_socket(host, port, backlog=100)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = "is already in use (another bizfed, or another program); stop it or choose another with --port"
        else:
            reason = f"cannot be listened on: {exc.strerror or exc}"
        print(f"bizfed: port {port} on {host} {reason}", file=sys.stderr)
        raise SystemExit(1) from None


def serve(host: str, port: int, workers: int, sock: socket.socket | None = None) -> None:
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from api.metrics import prepare_multiprocess_dir
    from api.server import BoundedHeadProtocol, shield_helpers_from_group_stop

    sock = sock or listen(host, port)
    if workers > 1:
        # Several processes must pool their metrics through files; one keeps them in memory,
        # where a counter increment costs a third of an mmap write.
        prepare_multiprocess_dir()
    loader = AppLoader(factory=partial(_app_from_env))
    app = loader.load()
    app.prepare(host=host, port=port, sock=sock, workers=workers, single_process=workers == 1, motd=False,
                access_log=False, protocol=BoundedHeadProtocol)
    if workers == 1:
        # One process: SIGTERM closes the listener at once and no worker can be orphaned.
        Sanic.serve_single(primary=app)
    else:
        shield_helpers_from_group_stop()
        Sanic.serve(primary=app, app_loader=loader)


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"bizfed: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    _settings_or_exit()
    serve(args.host, args.port, args.workers)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from deploy.legacy.schema import LegacyTargets
    from deploy.legacy.seed import seed

    settings = _settings_or_exit()
    targets = LegacyTargets(settings.warehouse_dsn, settings.sales_url, settings.accounting_odbc)
    counts = seed(targets, args.scale, args.seed)
    print("seeded: " + ", ".join(f"{table} {n}" for table, n in counts.items()))
    return 0


def _needs_seed(env: dict[str, str]) -> bool:
    """True unless the demo warehouse already holds items."""
    import psycopg

    try:
        with psycopg.connect(env["BIZFED_WAREHOUSE_DSN"], connect_timeout=5) as conn:
            if conn.execute("SELECT to_regclass('public.items')").fetchone() == (None,):
                return True
            return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM items)").fetchone() == (True,)
    except psycopg.Error:
        return True


def cmd_demo(args: argparse.Namespace) -> int:
    from deploy.legacy.schema import LegacyTargets
    from deploy.legacy.seed import seed
    from deploy.local import stack

    sock = listen(args.host, args.port)   # before the stack and the seeding, which take a while
    try:
        env = stack.up()
    except stack.StackError as exc:
        print(f"bizfed demo: {exc}", file=sys.stderr)
        return 1
    os.environ.update(env)
    if _needs_seed(env):
        print("bizfed demo: seeding the demo legacy systems (scale 1)...", flush=True)
        seed(LegacyTargets.from_env(env), 1, 42)
    key = next(k.split(":")[0] for k in env["BIZFED_API_KEYS"].split(",") if k.endswith(":admin"))
    base = f"http://{args.host}:{args.port}"
    print(f"bizfed demo: API      {base}/v1/orders  (Authorization: Bearer {key})")
    print(f"bizfed demo: docs     {base}/docs")
    print(f"bizfed demo: dashboard {base}/dashboard?key={key}", flush=True)
    serve(args.host, args.port, args.workers, sock)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bizfed", description="One REST API over Warehouse, Sales and Accounting")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (("serve", cmd_serve, "serve the API"),
                                  ("demo", cmd_demo, "local stack + demo data + the API")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--workers", type=int, default=1)
        p.set_defaults(func=func)
    p = sub.add_parser("seed", help="fill the configured legacy databases with generated data")
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_seed)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
