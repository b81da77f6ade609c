"""The `bizfed` command at its edges: a port already taken, and a clean stop that says nothing alarming."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from deploy.legacy.schema import LegacyTargets
from tests.servers import REPO, Server, Upstreams

# What a clean stop must not print: tracebacks, asyncio's complaints, leaked resources, warnings and errors.
ALARMS = ("Traceback", "Task was destroyed but it is pending", "was cancelled before it completed",
          "never awaited", "ResourceWarning", "unclosed", "WARNING", "ERROR", '"level":"warning"',
          '"level":"error"', "Exception")


def _occupied_port() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_a_port_in_use_is_one_clear_line(stack_env: dict[str, str]) -> None:
    """`bizfed serve` on a port already in use exits non-zero with one line naming the port and no traceback."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BIZFED_")}, **stack_env}
    with _occupied_port() as holder:
        port = holder.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert output.splitlines() == [output], output
    assert output.startswith(f"bizfed: port {port} on 127.0.0.1 is already in use"), output


@pytest.mark.parametrize(("stop", "workers"), [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 2),
                                               (signal.SIGINT, 2)], ids=["TERM-1", "INT-1", "TERM-2", "INT-2"])
def test_a_clean_stop_is_quiet(launch: Callable[..., Server], seeded: LegacyTargets, redis_url: str,
                               stop: signal.Signals, workers: int) -> None:
    """After a few requests, SIGTERM or SIGINT to the server's process group ends it, exit 0, nothing alarming."""
    env = {**Upstreams(seeded, redis_url).env(), "PYTHONWARNINGS": "always::ResourceWarning"}
    server = launch(env, workers=workers, name=f"stop-{stop.name}-{workers}")
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for path, role in (("/v1/orders", "reader"), ("/v1/customers", "reader"), ("/v1/invoices", "finance"),
                           ("/health/ready", None), ("/metrics", None)):
            response = server.get(path, role=role)
            assert response.status_code == 200, f"{path}: {response.status_code}"
        order_no = server.get("/v1/orders?limit=1", role="reader").json()["data"][0]["order_no"]
        assert server.get(f"/v1/orders/{order_no}", role="reader").status_code == 200
        # A keep-alive connection still open at the stop, as a browser's would be.
        assert client.get("/health/live").status_code == 200
        os.killpg(server.proc.pid, stop)
        exit_code = server.proc.wait(30)
    log = server.log_text()
    assert exit_code == 0, log[-3000:]
    found = [alarm for alarm in ALARMS if alarm in log]
    assert not found, f"the stop printed {found}:\n{log[-3000:]}"
    assert "Server Stopped" in log
