"""A loopback TCP proxy that injects faults (latency, blackhole, reset, refuse) between the API and a real server.

Run ``python -m deploy.local.faultproxy --help`` for the CLI with a one-line text control port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Sequence
from enum import StrEnum
from types import TracebackType

CHUNK = 65536
SWITCH_TIMEOUT = 5.0
_EOF = b""


class Mode(StrEnum):
    PASSTHROUGH = "pass"
    LATENCY = "latency"
    BLACKHOLE = "blackhole"
    RESET = "reset"
    REFUSE = "refuse"


def check_loopback(host: str) -> str:
    """Return ``host`` if it names a loopback address (127.0.0.0/8, ::1, localhost); raise ValueError otherwise."""
    if host == "localhost":
        return host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"fault proxy only works on loopback addresses, not {host!r}")
    return host


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Linger 0 makes close() send RST instead of FIN: the peer sees ECONNRESET, as with a crashed server.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One client connection and, once forwarding has begun, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.writers = [client]
        self.swallowed = False
        self.was_reset = False
        self.task = asyncio.current_task()

    def reset(self) -> None:
        self.was_reset = True
        for writer in self.writers:
            _abort(writer)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class FaultProxy:
    """Forward one loopback port to a loopback server, with faults switchable at run time from any thread.

    The proxy runs its own event loop in a background thread, so it keeps serving while the caller's loop is
    blocked. A connection whose data was swallowed by a blackhole stays dead until its client gives up: the
    byte stream is broken, just as after a partition that outlived TCP's retransmissions. ``refuse()`` leaves
    open connections alone; call ``reset()`` first to emulate a crashed server.
    """

    def __init__(self, upstream_host: str, upstream_port: int,
                 listen_host: str = "127.0.0.1", listen_port: int = 0) -> None:
        self.upstream_host = check_loopback(upstream_host)
        self.upstream_port = upstream_port
        self.listen_host = "127.0.0.1" if check_loopback(listen_host) == "localhost" else listen_host
        self.port = listen_port
        self.connections_total = 0
        self.bytes_to_upstream = 0   # forwarded from clients to the server: a count of the traffic it got
        self._mode = Mode.PASSTHROUGH
        self._delay = 0.0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._reserved: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._mode_changed = asyncio.Event()

    @property
    def mode(self) -> Mode:
        """The current fault mode."""
        return self._mode

    @property
    def delay(self) -> float:
        """Seconds added to every chunk in each direction (0 unless in latency mode)."""
        return self._delay

    @property
    def active_connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._links)

    def start(self) -> FaultProxy:
        """Start the proxy thread; return once listening, with the bound port in ``.port``."""
        if self._thread is not None:
            raise RuntimeError("fault proxy already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"faultproxy-{self.upstream_port}", daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), loop).result(SWITCH_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close every connection and the listening port, and end the proxy thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(SWITCH_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(SWITCH_TIMEOUT)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def pass_through(self) -> None:
        """Forward everything unchanged."""
        self._switch(Mode.PASSTHROUGH, 0.0)

    def latency(self, seconds: float) -> None:
        """Delay every chunk by ``seconds`` in each direction, on new and open connections."""
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self._switch(Mode.LATENCY, seconds)

    def blackhole(self) -> None:
        """Accept and read, but never forward or answer; open connections go silent too."""
        self._switch(Mode.BLACKHOLE, 0.0)

    def reset(self) -> None:
        """Reset (RST) every open connection, and each new one right after accepting it."""
        self._switch(Mode.RESET, 0.0)

    def refuse(self) -> None:
        """Stop listening so connects fail with ECONNREFUSED, holding the port to listen on it again later."""
        self._switch(Mode.REFUSE, 0.0)

    def _switch(self, mode: Mode, delay: float) -> None:
        loop = self._loop
        if loop is None:
            self._mode, self._delay = mode, delay
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError("switch fault modes from outside the proxy's own thread")
        asyncio.run_coroutine_threadsafe(self._apply(mode, delay), loop).result(SWITCH_TIMEOUT)

    async def _open(self) -> None:
        # Events bind to the loop that first waits on them; each start runs a fresh loop.
        self._mode_changed = asyncio.Event()
        if self._mode is Mode.REFUSE:
            self._reserved = self._bind()
        else:
            await self._listen()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        tasks = [link.task for link in self._links if link.task is not None]
        for link in list(self._links):
            link.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _apply(self, mode: Mode, delay: float) -> None:
        self._mode, self._delay = mode, delay
        if mode is Mode.REFUSE and self._server is not None:
            self._server.close()
            self._server = None
            self._reserved = self._bind()
        elif mode is not Mode.REFUSE and self._server is None:
            await self._listen()
        if mode is Mode.RESET:
            for link in list(self._links):
                link.reset()
        self._mode_changed.set()
        self._mode_changed = asyncio.Event()

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Closed connections leave TIME_WAIT entries on the port; without this the re-bind would fail.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.listen_host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return sock

    async def _listen(self) -> None:
        # A bound socket that does not listen answers SYNs with RST, so the refused port stays ours meanwhile.
        sock, self._reserved = self._reserved or self._bind(), None
        sock.listen(128)
        self._server = await asyncio.start_server(self._serve, sock=sock)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        link = _Link(client_w)
        self._links.add(link)
        self.connections_total += 1
        try:
            # Only stop() cancels handlers, and Python 3.11's start_server logs a cancelled handler as an error.
            with contextlib.suppress(asyncio.CancelledError):
                await self._forward(client_r, link)
        finally:
            link.close()
            self._links.discard(link)

    async def _forward(self, client_r: asyncio.StreamReader, link: _Link) -> None:
        try:
            if self._mode is Mode.RESET:
                link.reset()
                return
            if not await self._hold(client_r, link):
                return
            upstream_r, upstream_w = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            link.writers.append(upstream_w)
            if link.was_reset:
                _abort(upstream_w)
                return
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(client_r, upstream_w, link, from_client=True))
                group.create_task(self._pump(upstream_r, link.writers[0], link, from_client=False))
        except* OSError:
            # A reset or failure on one side is passed on as a reset of the other, like a dead server would.
            link.reset()

    async def _hold(self, reader: asyncio.StreamReader, link: _Link) -> bool:
        """Swallow what a client sends before forwarding may start; False once it is gone or its data lost."""
        while self._mode is Mode.BLACKHOLE:
            changed = asyncio.ensure_future(self._mode_changed.wait())
            read = asyncio.ensure_future(reader.read(CHUNK))
            try:
                await asyncio.wait({changed, read}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                read.cancel()
                # A stream allows one reader at a time: the cancelled read must finish before the next starts.
                await asyncio.wait({changed, read})
            if not read.cancelled():
                if not read.result():
                    return False
                link.swallowed = True
                break
        if link.swallowed:
            while await reader.read(CHUNK):
                pass
            return False
        return not link.was_reset

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link,
                    *, from_client: bool) -> None:
        loop = asyncio.get_running_loop()
        # Chunks queue with their due time so latency is added per chunk, not summed while a burst waits.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=64)
        deliver = asyncio.create_task(self._deliver(queue, dst, link))
        try:
            while data := await src.read(CHUNK):
                if self._mode is Mode.BLACKHOLE:
                    link.swallowed = True
                if not link.swallowed:
                    if from_client:
                        self.bytes_to_upstream += len(data)
                    await queue.put((loop.time() + self._delay, data))
            if not link.swallowed:
                await queue.put((loop.time() + self._delay, _EOF))
                await deliver
            if link.swallowed and from_client:
                link.close()
        finally:
            deliver.cancel()
            await asyncio.gather(deliver, return_exceptions=True)

    async def _deliver(self, queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter,
                       link: _Link) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            if (pause := due - loop.time()) > 0:
                await asyncio.sleep(pause)
            if self._mode is Mode.BLACKHOLE:
                link.swallowed = True
            if data == _EOF:
                if not link.swallowed and dst.can_write_eof():
                    dst.write_eof()
                return
            if not link.swallowed:
                dst.write(data)
                await dst.drain()


def parse_address(text: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[::1]:port``) into a loopback host and a port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {text!r}")
    return check_loopback(host.strip("[]")), int(port)


def _cli_address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        # argparse shows only the converter's name for a ValueError; the reason is what a person needs.
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run_command(proxy: FaultProxy, line: str) -> str:
    """Apply one control command (pass, latency SECONDS, blackhole, reset, refuse, status); return the reply."""
    words = line.split()
    try:
        match words:
            case ["pass"]:
                proxy.pass_through()
            case ["latency", seconds]:
                proxy.latency(float(seconds))
            case ["blackhole"]:
                proxy.blackhole()
            case ["reset"]:
                proxy.reset()
            case ["refuse"]:
                proxy.refuse()
            case ["status"]:
                pass
            case _:
                return "error: commands are pass, latency SECONDS, blackhole, reset, refuse, status"
    except (ValueError, OSError) as exc:
        return f"error: {exc}"
    return (f"ok mode={proxy.mode} delay={proxy.delay:g} port={proxy.port} "
            f"total={proxy.connections_total} active={proxy.active_connections}")


class _ControlServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, proxy: FaultProxy, host: str, port: int) -> None:
        self.proxy = proxy
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _ControlHandler)


class _ControlHandler(socketserver.StreamRequestHandler):
    server: _ControlServer

    def handle(self) -> None:
        for raw in self.rfile:
            reply = run_command(self.server.proxy, raw.decode(errors="replace"))
            self.wfile.write(reply.encode() + b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a fault proxy with a text control port until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local.faultproxy", description=__doc__)
    parser.add_argument("--listen", type=_cli_address, default=("127.0.0.1", 0), help="host:port to accept on")
    parser.add_argument("--upstream", type=_cli_address, required=True, help="host:port of the real server")
    parser.add_argument("--control", type=_cli_address, default=("127.0.0.1", 0),
                        help="host:port for one-line commands: pass, latency S, blackhole, reset, refuse, status")
    args = parser.parse_args(argv)
    # SIGTERM ends serve_forever like Ctrl-C does, so connections are closed on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with FaultProxy(*args.upstream, *args.listen) as proxy, _ControlServer(proxy, *args.control) as control:
        # Callers that passed port 0 read the bound ports from this first line.
        print(f"listening {proxy.listen_host}:{proxy.port} control {args.control[0]}:{control.server_address[1]}",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            control.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
