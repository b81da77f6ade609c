"""The ceilings bizfed's cached path is compared with: a bare Sanic app returning the same bytes
from one Redis GET (``--source redis``) or from memory (``--source memory``)."""

from __future__ import annotations

import argparse
from typing import Any

from redis.asyncio import Redis
from sanic import HTTPResponse, Request, Sanic

PREFIX = "ceiling:"


def create_app(redis_url: str, source: str) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic("ceiling")
    app.config.ACCESS_LOG = False

    @app.before_server_start
    async def connect(app: Sanic[Any, Any]) -> None:
        app.ctx.redis = Redis.from_url(redis_url)
        app.ctx.memory = {}
        if source == "memory":
            async for key in app.ctx.redis.scan_iter(match=PREFIX + "*"):
                app.ctx.memory[key.decode().removeprefix(PREFIX)] = await app.ctx.redis.get(key)

    @app.get("/v1/products/<sku:str>")
    async def product(request: Request, sku: str) -> HTTPResponse:
        if source == "memory":
            body = request.app.ctx.memory.get(sku)
        else:
            body = await request.app.ctx.redis.get(PREFIX + sku)
        if body is None:
            return HTTPResponse(status=404)
        return HTTPResponse(body, content_type="application/json")

    @app.get("/health/live")
    async def live(request: Request) -> HTTPResponse:
        return HTTPResponse(b"{}", content_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--source", choices=["redis", "memory"], default="redis")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from functools import partial

    from sanic.worker.loader import AppLoader

    loader = AppLoader(factory=partial(create_app, args.redis, args.source))
    app = loader.load()
    app.prepare(host="127.0.0.1", port=args.port, workers=args.workers, single_process=args.workers == 1,
                motd=False, access_log=False)
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
