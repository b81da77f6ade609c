"""The `bizfed` command at its edges: a port already taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.servers import REPO


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

