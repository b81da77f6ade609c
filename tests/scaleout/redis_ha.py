"""A throwaway Redis primary, replica and three sentinels on free loopback ports, each with its own data folder."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.servers import free_port

SERVICE = "bizfed"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


def redis_server() -> str | None:
    return shutil.which("redis-server")


def sentinel_command(config: Path) -> list[str] | None:
    """How to start a sentinel: Debian's redis-sentinel, or redis-server in sentinel mode."""
    if (binary := shutil.which("redis-sentinel")) is not None:
        return [binary, str(config)]
    if (server := redis_server()) is not None:
        return [server, str(config), "--sentinel"]
    return None


@dataclass
class RedisHA:
    """Start with ``start()``; ``stop()`` ends every process it started (safe to call twice)."""

    root: Path
    primary_port: int = 0
    replica_port: int = 0
    sentinel_ports: list[int] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The bizfed setting for this set: every sentinel, then the service name."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self) -> RedisHA:
        self.primary_port, self.replica_port = free_port(), free_port()
        self._server("primary", self.primary_port)
        self._server("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        self._wait(lambda: self._info(self.replica_port, "master_link_status") == "up", 15,
                   "the replica syncs with the primary")
        for i in range(3):
            port = free_port()
            self.sentinel_ports.append(port)
            folder = self.root / f"sentinel{i}"
            folder.mkdir(parents=True)
            config = folder / "sentinel.conf"
            # Sentinel rewrites its config file as it learns, so each gets a writable one of its own.
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\nlogfile {folder / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n")
            command = sentinel_command(config)
            assert command is not None
            self.procs[f"sentinel{i}"] = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self._wait(self._sentinels_ready, 20, "the sentinels see each other and the replica")
        return self

    def kill_primary(self) -> None:
        """SIGKILL the current primary, as a crash would."""
        proc = self.procs["primary"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers reports it."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError):
                client = redis.Redis(port=port, socket_timeout=1)
                try:
                    addr = client.sentinel_get_master_addr_by_name(SERVICE)
                finally:
                    client.close()
                if addr:
                    return int(addr[1])
        return None

    def role(self, port: int) -> str | None:
        return self._info(port, "role")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def _server(self, name: str, port: int, *extra: str) -> None:
        folder = self.root / name
        folder.mkdir(parents=True)
        binary = redis_server()
        assert binary is not None
        self.procs[name] = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
             "--appendonly", "no", "--logfile", str(folder / "redis.log"), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self._wait(lambda: self._info(port, "role") is not None, 10, f"redis {name} answers")

    def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            try:
                client = redis.Redis(port=port, socket_timeout=1)
                try:
                    state = client.sentinel_master(SERVICE)
                finally:
                    client.close()
            except redis.RedisError:
                return False
            if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                return False
        return True

    def _info(self, port: int, field_name: str) -> str | None:
        try:
            client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
            try:
                value = client.info("replication").get(field_name)
            finally:
                client.close()
        except redis.RedisError:
            return None
        return None if value is None else str(value)

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None and name != "primary":
                    raise RuntimeError(f"redis {name} exited with {proc.returncode} (logs under {self.root})")
            time.sleep(0.1)
        raise RuntimeError(f"not within {timeout:.0f}s: {what} (logs under {self.root})")
