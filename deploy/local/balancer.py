"""nginx in front of bizfed replicas on loopback: renders ``nginx.conf.tmpl`` and runs nginx in the foreground."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

TEMPLATE = Path(__file__).with_name("nginx.conf.tmpl")


class BalancerError(Exception):
    """nginx is missing or did not start; the message says why."""


def nginx_binary() -> str | None:
    """Debian's nginx, wherever PATH or /usr/sbin has it."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def render(root: Path, listen_port: int, upstream_ports: Sequence[int], *, max_fails: int = 1,
           fail_timeout: float = 5.0) -> str:
    """The nginx configuration: listen on ``127.0.0.1:listen_port``, balance over the upstream ports."""
    servers = "\n".join(f"        server 127.0.0.1:{port} max_fails={max_fails} fail_timeout={fail_timeout:g}s;"
                        for port in upstream_ports)
    return (TEMPLATE.read_text().replace("@ROOT@", str(root)).replace("@LISTEN@", f"127.0.0.1:{listen_port}")
            .replace("@SERVERS@", servers))


@dataclass(frozen=True, slots=True)
class Access:
    """One line of the access log: when, the status sent, and each upstream tried with its status."""

    at: float
    status: int
    upstreams: tuple[str, ...]
    upstream_statuses: tuple[str, ...]
    seconds: float
    request: str

    @classmethod
    def parse(cls, line: str) -> Access:
        at, status, addrs, statuses, seconds, request = line.split("|", 5)
        return cls(float(at), int(status), tuple(a.strip() for a in addrs.split(",") if a.strip()),
                   tuple(s.strip() for s in statuses.split(",") if s.strip()), float(seconds), request)


class Balancer:
    """One nginx process balancing over ``upstream_ports``; ``start()`` then ``stop()`` (or use ``with``)."""

    def __init__(self, root: Path, upstream_ports: Sequence[int], listen_port: int = 0) -> None:
        self.root = root
        self.upstream_ports = list(upstream_ports)
        self.port = listen_port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Balancer:
        binary = nginx_binary()
        if binary is None:
            raise BalancerError("nginx is not installed (Debian package nginx)")
        for folder in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        config = self.root / "nginx.conf"
        config.write_text(render(self.root, self.port, self.upstream_ports))
        # -e keeps even the start-up errors out of /var/log/nginx, which may not be writable.
        command = [binary, "-p", str(self.root), "-c", str(config), "-e", str(self.root / "error.log")]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise BalancerError(f"nginx rejected its configuration: {check.stderr.strip()[-500:]}")
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BalancerError(f"nginx exited with {self.proc.returncode}: {self.error_log()[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise BalancerError(f"nginx did not listen on 127.0.0.1:{self.port} within {timeout:g}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[Access]:
        """Every request nginx logged so far, oldest first."""
        path = self.root / "access.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return [Access.parse(line) for line in lines if line.count("|") >= 5]

    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
