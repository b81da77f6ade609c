"""Issue 9: an office far from HQ: a regional bizfed + Redis over a slow WAN link to the legacy systems, then a cut.

Run: ``make office`` or ``python -m bench.office [--rtt-ms 150] [--rounds 20]``. With root and iproute2 the
office and HQ are network namespaces joined by a veth pair with private addresses (10.200.0.0/30) that exist
only inside them; without, fault proxies with latency on loopback stand in for the WAN (the output says which).
Prints the markdown of the BENCHMARKS.md section "Office far from HQ".

``python -m bench.office relay --listen ADDR --to ADDR [--delay S]`` is the forwarder the script starts in
each namespace (ADDR is ``tcp:HOST:PORT`` or ``unix:PATH``); it delays every chunk by S seconds each way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from bench.harness import ADMIN, ROOT, free_port, seeded, server, server_env
from deploy.legacy.schema import LegacyTargets
from deploy.local.addresses import dsn_port, url_port
from deploy.local.faultproxy import FaultProxy
from deploy.local.process import stop_group

HQ_ADDR, OFFICE_ADDR, PREFIX = "10.200.0.1", "10.200.0.2", 30
PG_PORT, MY_PORT, API_PORT, REDIS_PORT = 5432, 3306, 8000, 6379
# Fresh for 5 s, then served stale while one refresh runs; stale answers stay usable for an hour of outage.
FRESHNESS = "5,60,3600"
OFFICE_SETTINGS = {
    **{f"BIZFED_FRESHNESS_{s}": FRESHNESS for s in ("WAREHOUSE", "SALES", "ACCOUNTING")},
    "BIZFED_SOURCE_TIMEOUT": "3",
    "BIZFED_CONNECT_TIMEOUT": "3",
    "BIZFED_REQUEST_DEADLINE": "8",
    "BIZFED_BREAKER_RESET": "3",
}
AUTH = {"Authorization": f"Bearer {ADMIN}"}


# --- the relay -------------------------------------------------------------------------------------------------

async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, _, rest = address.partition(":")
    if kind == "unix":
        return await asyncio.open_unix_connection(rest)
    host, _, port = rest.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``src`` to ``dst``, each chunk ``delay`` seconds later than it arrived (order kept, no summing)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if (pause := due - loop.time()) > 0:
                await asyncio.sleep(pause)
            if not data:
                if dst.can_write_eof():
                    dst.write_eof()
                return
            dst.write(data)
            await dst.drain()

    sender = asyncio.create_task(deliver())
    try:
        while data := await src.read(65536):
            queue.put_nowait((loop.time() + delay, data))
        queue.put_nowait((loop.time() + delay, b""))
        await sender
    finally:
        sender.cancel()


async def _relay_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str, delay: float) -> None:
    try:
        up_reader, up_writer = await _open(target)
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(_pump(reader, up_writer, delay), _pump(up_reader, writer, delay))
    except (OSError, RuntimeError):
        pass
    finally:
        writer.close()
        up_writer.close()


async def relay(listen: str, target: str, delay: float) -> None:
    """Forward every connection made to ``listen`` to ``target`` until cancelled."""
    def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
        return _relay_one(r, w, target, delay)

    kind, _, rest = listen.partition(":")
    if kind == "unix":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(rest)
        srv = await asyncio.start_unix_server(handle, rest)
    else:
        host, _, port = rest.rpartition(":")
        srv = await asyncio.start_server(handle, host, int(port), reuse_address=True)
    print("ready", flush=True)
    async with srv:
        await srv.serve_forever()


# --- the two topologies ------------------------------------------------------------------------------------------

@dataclass
class Procs:
    """Processes started for the run, each its own session, stopped in reverse order."""

    root: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, cmd: Sequence[str], name: str, *, env: Mapping[str, str] | None = None,
              ready_line: bool = False) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(list(cmd), env=dict(env or os.environ), cwd=ROOT, start_new_session=True,
                                    stdin=subprocess.DEVNULL, stderr=log,
                                    stdout=subprocess.PIPE if ready_line else log)
        self.started.append(proc)
        if ready_line:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"{name} did not start; see {self.root / (name + '.log')}")
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop_group(proc, timeout=10)


def relay_cmd(listen: str, target: str, delay: float = 0.0, netns: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "bench.office", "relay", "--listen", listen, "--to", target, "--delay", str(delay)]
    return (["ip", "netns", "exec", netns] if netns else []) + cmd


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


def netns_available() -> str | None:
    """None when namespaces can be made here; else why not."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    name = f"bizfed-probe-{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` is not permitted here: {exc.stderr.strip()}"
    _ip("netns", "del", name)
    return None


class Netns:
    """Namespaces "office" and "hq" joined by a veth pair; nothing else is reachable from either."""

    def __init__(self, tag: str) -> None:
        self.office, self.hq = f"bizfed-office-{tag}", f"bizfed-hq-{tag}"
        self.office_if, self.hq_if = f"bzo{tag}"[:15], f"bzh{tag}"[:15]
        self.netem = False

    def create(self, rtt: float) -> None:
        _ip("netns", "add", self.office)
        _ip("netns", "add", self.hq)
        _ip("link", "add", self.office_if, "type", "veth", "peer", "name", self.hq_if)
        _ip("link", "set", self.office_if, "netns", self.office)
        _ip("link", "set", self.hq_if, "netns", self.hq)
        for ns, dev, addr in ((self.office, self.office_if, OFFICE_ADDR), (self.hq, self.hq_if, HQ_ADDR)):
            _ip("-n", ns, "addr", "add", f"{addr}/{PREFIX}", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        # Half the round trip on each side's egress, plus a little loss, when the kernel has netem.
        try:
            for ns, dev in ((self.office, self.office_if), (self.hq, self.hq_if)):
                subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem",
                                "delay", f"{rtt * 500:g}ms", "loss", "0.5%"],
                               check=True, capture_output=True, text=True, timeout=20)
            self.netem = True
        except (subprocess.CalledProcessError, FileNotFoundError):
            self.netem = False

    def delete(self) -> None:
        for ns in (self.office, self.hq):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)

    def cut(self) -> None:
        _ip("-n", self.office, "link", "set", self.office_if, "down")

    def restore(self) -> None:
        _ip("-n", self.office, "link", "set", self.office_if, "up")


@dataclass
class Office:
    """How to reach the office's two bizfed servers, and how to cut and restore its link to HQ."""

    mode: str
    cached: Callable[[], httpx.Client]
    direct: Callable[[], httpx.Client]
    cut: Callable[[], None]
    restore: Callable[[], None]
    note: str


def office_env(env: Mapping[str, str], targets: LegacyTargets, host: str, pg_port: int, my_port: int,
               redis_url: str, **extra: str) -> dict[str, str]:
    """Settings of an office server whose legacy systems are at ``host`` on the given ports."""
    wh = psycopg.conninfo.make_conninfo(targets.warehouse_dsn, host=host, port=str(pg_port))
    sales = make_url(targets.sales_url).set(host=host, port=my_port).render_as_string(hide_password=False)
    odbc = re.sub(r"(?i)\bPORT=\d+", f"PORT={my_port}",
                  re.sub(r"(?i)\bSERVER=[^;]*", f"SERVER={host}", targets.accounting_odbc))
    moved = LegacyTargets(wh, sales, odbc)
    return server_env(env, moved, BIZFED_REDIS_URL=redis_url, **OFFICE_SETTINGS, **extra)


def wait_live(client_factory: Callable[[], httpx.Client], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError), client_factory() as client:
            if client.get("/health/live", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout:g}s")


def up(office: Office) -> Office:
    """``office`` once both its servers answer."""
    wait_live(office.cached, "the office server")
    wait_live(office.direct, "the office server without cache")
    return office


@contextlib.contextmanager
def namespaces(env: Mapping[str, str], targets: LegacyTargets, procs: Procs, rtt: float) -> Iterator[Office]:
    ns = Netns(str(os.getpid() % 100000))
    tmp = procs.root
    try:
        ns.create(rtt)
        delay = 0.0 if ns.netem else rtt / 2
        pg, my = urlport(targets.warehouse_dsn, "pg"), urlport(targets.sales_url, "my")
        # HQ side: the legacy servers listen on this machine's loopback; unix sockets cross the namespace line.
        for name, port in (("pg", pg), ("my", my)):
            procs.start(relay_cmd(f"unix:{tmp}/{name}.sock", f"tcp:127.0.0.1:{port}"), f"hq-{name}-local",
                        ready_line=True)
        procs.start(relay_cmd(f"tcp:{HQ_ADDR}:{PG_PORT}", f"unix:{tmp}/pg.sock", delay, ns.hq), "hq-pg-edge",
                    ready_line=True)
        procs.start(relay_cmd(f"tcp:{HQ_ADDR}:{MY_PORT}", f"unix:{tmp}/my.sock", delay, ns.hq), "hq-my-edge",
                    ready_line=True)
        # Office side: its own Redis and two servers, one with the regional cache and one without.
        redis_bin = shutil.which("redis-server")
        if redis_bin is None:
            raise RuntimeError("redis-server is not installed")
        procs.start(["ip", "netns", "exec", ns.office, redis_bin, "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(tmp)], "office-redis")
        servers: list[tuple[str, int, int, dict[str, str]]] = [
            ("cached", API_PORT, 0, {}), ("direct", API_PORT + 1, 1, {"BIZFED_CACHE": "off"})]
        for name, port, db, extra in servers:
            senv = office_env(env, targets, HQ_ADDR, PG_PORT, MY_PORT, f"redis://127.0.0.1:{REDIS_PORT}/{db}",
                              **extra)
            procs.start(["ip", "netns", "exec", ns.office, sys.executable, "-m", "api.cli", "serve", "--host",
                         "127.0.0.1", "--port", str(port)], f"office-{name}", env=senv)
            procs.start(relay_cmd(f"unix:{tmp}/api-{name}.sock", f"tcp:127.0.0.1:{port}", 0.0, ns.office),
                        f"office-{name}-socket", ready_line=True)

        def client(name: str) -> Callable[[], httpx.Client]:
            return lambda: httpx.Client(transport=httpx.HTTPTransport(uds=f"{tmp}/api-{name}.sock"),
                                        base_url="http://office", headers=AUTH, timeout=30)

        office = Office("network namespaces", client("cached"), client("direct"), ns.cut, ns.restore,
                        f"namespaces `{ns.office}` and `{ns.hq}` joined by a veth pair "
                        f"({OFFICE_ADDR} ↔ {HQ_ADDR}/{PREFIX}); " + (
                            f"`tc netem delay {rtt * 500:g}ms loss 0.5%` on each side" if ns.netem else
                            f"this kernel has no `sch_netem` (`tc qdisc add … netem` → \"Specified qdisc kind is "
                            f"unknown\"), so the {rtt * 1000:g} ms round trip is added by the HQ-side relay, "
                            f"{delay * 1000:g} ms per chunk each way, and no packet loss is simulated") +
                        "; the link is cut with `ip link set … down` in the office namespace")
        yield up(office)
    finally:
        procs.stop_all()
        ns.delete()


@contextlib.contextmanager
def loopback(env: Mapping[str, str], targets: LegacyTargets, procs: Procs, rtt: float) -> Iterator[Office]:
    """The fallback: fault proxies with latency in front of the HQ servers, everything on loopback."""
    pg_proxy = FaultProxy("127.0.0.1", urlport(targets.warehouse_dsn, "pg")).start()
    my_proxy = FaultProxy("127.0.0.1", urlport(targets.sales_url, "my")).start()
    try:
        for proxy in (pg_proxy, my_proxy):
            proxy.latency(rtt / 2)
        redis_bin = shutil.which("redis-server")
        if redis_bin is None:
            raise RuntimeError("redis-server is not installed")
        redis_port = free_port()
        procs.start([redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", str(procs.root)], "office-redis")
        bases = {}
        for name, db, extra in (("cached", 0, {}), ("direct", 1, {"BIZFED_CACHE": "off"})):
            port = free_port()
            senv = office_env(env, targets, "127.0.0.1", pg_proxy.port, my_proxy.port,
                              f"redis://127.0.0.1:{redis_port}/{db}", **extra)
            procs.start([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], f"office-{name}", env=senv)
            bases[name] = f"http://127.0.0.1:{port}"

        def client(name: str) -> Callable[[], httpx.Client]:
            return lambda: httpx.Client(base_url=bases[name], headers=AUTH, timeout=30)

        def cut() -> None:
            for proxy in (pg_proxy, my_proxy):
                proxy.reset()
                proxy.refuse()

        def restore() -> None:
            for proxy in (pg_proxy, my_proxy):
                proxy.latency(rtt / 2)

        office = Office("loopback fault proxies", client("cached"), client("direct"), cut, restore,
                        f"fault proxies on loopback add {rtt * 500:g} ms per chunk each way (no separate network "
                        "stack, no packet loss); the link is cut by resetting and refusing at the proxies")
        yield up(office)
    finally:
        procs.stop_all()
        pg_proxy.stop()
        my_proxy.stop()


def urlport(url: str, kind: str) -> int:
    return dsn_port(url) if kind == "pg" else url_port(url)


# --- the measurements ----------------------------------------------------------------------------------------------

def timed(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(path)
    return (time.perf_counter() - started) * 1000, response


def states(response: httpx.Response) -> list[str]:
    if response.status_code != 200:
        return [f"http {response.status_code}"]
    return [str(s.get("cache", "none")) for s in response.json()["meta"]["sources"].values()]


def p50(client_factory: Callable[[], httpx.Client], paths: Sequence[str], rounds: int) -> tuple[float, Counter[str]]:
    """Median latency of ``rounds`` sequential passes over ``paths``, and the cache states seen."""
    samples: list[float] = []
    seen: Counter[str] = Counter()
    with client_factory() as client:
        for _ in range(rounds):
            for path in paths:
                ms, response = timed(client, path)
                samples.append(ms)
                seen.update(states(response))
    return statistics.median(samples), seen


def order_paths(base: str, count: int) -> list[str]:
    orders = httpx.get(base + "/v1/orders?limit=50", headers=AUTH, timeout=30).json()["data"]
    return [f"/v1/orders/{o['order_no']}" for o in orders[:count]]


def outage(office: Office, paths: Sequence[str], seconds: float) -> dict[str, Any]:
    """Cut the link, read through the office for ``seconds``, restore it, and time the way back to fresh reads."""
    with office.cached() as client:
        for path in paths:
            client.get(path)
        time.sleep(float(FRESHNESS.split(",")[0]) + 0.5)  # every entry past its ttl: only stale answers remain
        office.cut()
        cut_at = time.monotonic()
        statuses: Counter[int] = Counter()
        seen: Counter[str] = Counter()
        samples: list[float] = []
        example: dict[str, Any] = {}
        try:
            while time.monotonic() - cut_at < seconds:
                for path in paths:
                    ms, response = timed(client, path)
                    samples.append(ms)
                    statuses[response.status_code] += 1
                    seen.update(states(response))
                    if response.status_code == 200 and not example:
                        example = response.json()["meta"]["sources"]
        finally:
            office.restore()
        restored_at = time.monotonic()
        recovered = None
        while time.monotonic() - restored_at < 60:
            fresh = True
            for path in paths:
                response = client.get(path)
                sources = response.json()["meta"]["sources"].values() if response.status_code == 200 else []
                fresh = fresh and response.status_code == 200 and all(
                    s.get("cache") in ("hit", "miss") and "error" not in s for s in sources)
            if fresh:
                recovered = time.monotonic() - restored_at
                break
            time.sleep(0.25)
    return {"statuses": statuses, "states": seen, "p50": statistics.median(samples), "max": max(samples),
            "example": example, "recovered": recovered, "requests": len(samples)}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.office")
    sub = parser.add_subparsers(dest="command")
    rel = sub.add_parser("relay", help="forward one address to another with a delay (used inside namespaces)")
    rel.add_argument("--listen", required=True)
    rel.add_argument("--to", required=True)
    rel.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--rtt-ms", type=float, default=150.0, help="round trip added between office and HQ")
    parser.add_argument("--rounds", type=int, default=10, help="sequential passes over the paths per measurement")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the link stays cut")
    parser.add_argument("--loopback", action="store_true", help="use the loopback fallback even if netns works")
    args = parser.parse_args(argv)
    if args.command == "relay":
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(relay(args.listen, args.to, args.delay))
        return ""
    rtt = args.rtt_ms / 1000
    why_not = "--loopback given" if args.loopback else netns_available()
    with contextlib.ExitStack() as stack:
        env, targets = stack.enter_context(seeded(1, name="office"))
        procs = Procs(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bizfed-office-"))))
        with server(server_env(env, targets, BIZFED_CACHE="off")) as hq_base:
            paths = [*order_paths(hq_base, 8), "/v1/products?limit=20", "/v1/locations"]
            at_hq, _ = p50(lambda: httpx.Client(base_url=hq_base, headers=AUTH, timeout=30), paths, args.rounds)
        topology = loopback if why_not else namespaces
        office = stack.enter_context(topology(env, targets, procs, rtt))
        with office.cached() as client:
            for path in paths:
                client.get(path)  # warm the regional cache
        warm, warm_states = p50(office.cached, paths, args.rounds)
        direct, _ = p50(office.direct, paths, args.rounds)
        cut = outage(office, paths, args.outage)
    statuses = ", ".join(f"{n}× {s}" for s, n in sorted(cut["statuses"].items()))
    cut_states = ", ".join(f"{s} {n}" for s, n in cut["states"].most_common())
    example: tuple[str, Any] = next(iter(cut["example"].items()), ("-", {}))
    recovered = f"{cut['recovered']:.1f} s" if cut["recovered"] is not None else "not within 60 s"
    report = f"""
Mode: **{office.mode}**{f" ({why_not})" if why_not else ""}: {office.note}.
An office bizfed with its own Redis (and a second one with `BIZFED_CACHE=off`) reaches the legacy systems over
that link; {len(paths)} paths (8 three-system order pages, a product page, the locations), {args.rounds} sequential
passes each; freshness `{FRESHNESS}` (ttl, stale-while-revalidate, stale-if-error, seconds).

| measurement | p50 ms |
|---|---|
| at HQ, no WAN, cache off (reference) | {at_hq:.1f} |
| office → HQ every time (cache off) | {direct:.1f} |
| office, warm regional cache | {warm:.1f} |
| **warm regional vs going to HQ each time** | **{warm / direct:.3f}× ({direct / warm:.0f}× faster)** |

Cache states during the warm run: {", ".join(f"{s} {n}" for s, n in warm_states.most_common())}.

Link cut for {args.outage:g} s: {cut["requests"]} requests, statuses {statuses}; cache states {cut_states};
p50 {cut["p50"]:.1f} ms, slowest {cut["max"]:.0f} ms. A source's label while cut: `{example[0]}: {example[1]}`.
Link restored: every path read fresh again (hit or miss, no error) after {recovered}.
"""
    print(report)
    return report


if __name__ == "__main__":
    main()
