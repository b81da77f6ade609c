"""GET /health/ready over `bizfed serve` with every dependency behind a fault proxy."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from deploy.local.faultproxy import FaultProxy
from tests.observability.conftest import Serve
from tests.servers import Server, Upstreams, wait_for

# The three sources and the cache: readiness lists each, and any one of them up is enough.
DEPENDENCIES = ("warehouse", "sales", "accounting", "cache")


@pytest.fixture(name="proxies", scope="module")
def _proxies(upstreams: Upstreams, proxy_factory: Callable[[int], FaultProxy]) -> dict[str, FaultProxy]:
    """A proxy per dependency, all refusing connections from the start."""
    ports = {"warehouse": upstreams.warehouse_port, "sales": upstreams.mariadb_port,
             "accounting": upstreams.mariadb_port, "cache": upstreams.redis_port}
    proxies = {name: proxy_factory(port) for name, port in ports.items()}
    for proxy in proxies.values():
        proxy.refuse()
    return proxies


@pytest.fixture(name="server", scope="module")
def _server(serve: Serve, proxies: dict[str, FaultProxy]) -> Server:
    return serve("health", {"BIZFED_CONNECT_TIMEOUT": "0.5", "BIZFED_SOURCE_TIMEOUT": "0.5"},
                 warehouse=proxies["warehouse"].port, sales=proxies["sales"].port,
                 accounting=proxies["accounting"].port, redis=proxies["cache"].port)


def _ready(server: Server) -> tuple[int, dict[str, bool]]:
    response = server.get("/health/ready")
    body = response.json()
    return response.status_code, {name: dep["up"] for name, dep in body["dependencies"].items()}


def _cut(proxy: FaultProxy) -> None:
    proxy.reset()
    proxy.refuse()


def test_ready_is_503_when_everything_is_down(server: Server) -> None:
    """With every source and the cache refusing connections, readiness is 503 and lists each, as down."""
    assert server.get("/health/live").status_code == 200
    status, deps = _ready(server)
    assert status == 503
    assert sorted(deps) == sorted(DEPENDENCIES)
    assert not any(deps.values())


@pytest.mark.parametrize("name", DEPENDENCIES)
def test_ready_is_200_when_one_dependency_is_up(server: Server, proxies: dict[str, FaultProxy], name: str) -> None:
    """Any one dependency answering, a source or the cache, is enough for readiness; only it is listed as up."""
    proxies[name].pass_through()
    try:
        wait_for(lambda: _ready(server)[0] == 200, 30, f"/health/ready 200 with only {name} up")
        deps = _ready(server)[1]
        assert [n for n, up in deps.items() if up] == [name]
    finally:
        _cut(proxies[name])
    wait_for(lambda: _ready(server)[0] == 503, 30, f"/health/ready back to 503 once {name} is cut again")
