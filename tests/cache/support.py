"""Helpers for the cache tests: a counting loader and a throw-away redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from typing import Any

from federation.errors import SourceFailed
from tests.servers import free_port


class Loader:
    """A load() that counts its calls, optionally sleeps, and returns or raises what it is told."""

    def __init__(self, value: Any = "v1", delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.error: str | None = None
        self.calls = 0
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None    # when set to an Event, each load waits for it

    async def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise SourceFailed("warehouse", self.error)
        return self.value


class RedisServer:
    """A private redis-server on a loopback port, started and stopped by this test only."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None
