"""Private PostgreSQL, MariaDB and Redis instances on free loopback ports.

The stack lives in a git-ignored folder (``.stack`` beside the repo by
default), never touches servers it did not start, and stops only the
processes whose pids it recorded.  Run ``python -m deploy.local.stack up``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APT_PACKAGES = ["postgresql", "mariadb-server", "redis-server", "unixodbc", "odbc-mariadb"]
DATABASES = ("warehouse", "sales", "accounting")
DEMO_KEYS = "demo-reader:reader,demo-finance:finance,demo-admin:admin"


class StackError(Exception):
    """Something the stack cannot do; the message is meant for a person."""


@dataclass
class State:
    pg_port: int = 0
    my_port: int = 0
    redis_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)


def stack_dir() -> Path:
    return Path(os.environ.get("BIZFED_STACK_DIR", REPO / ".stack")).resolve()


def _load_state(root: Path) -> State:
    path = root / "state.json"
    if not path.exists():
        return State()
    raw = json.loads(path.read_text())
    return State(raw["pg_port"], raw["my_port"], raw["redis_port"], raw.get("pids", {}))


def _save_state(root: Path, state: State) -> None:
    (root / "state.json").write_text(json.dumps(asdict(state), indent=2))


def _is_root() -> bool:
    return os.geteuid() == 0


def _run(cmd: list[str], *, user: str | None = None, check: bool = True,
         input_text: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if user and _is_root():
        cmd = ["runuser", "-u", user, "--", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, input=input_text, timeout=timeout)
    if check and result.returncode != 0:
        raise StackError(f"{Path(cmd[0]).name if not user else cmd[3]} failed: "
                         f"{(result.stderr or result.stdout).strip()[-400:]}")
    return result


def _free_port(preferred: int = 0) -> int:
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise StackError("no free loopback port")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for(port: int, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.2)
    raise StackError(f"{what} did not start listening on 127.0.0.1:{port} within {seconds:.0f}s")


# -- binaries ---------------------------------------------------------------

def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    return found[-1] if found else None


def _odbc_driver_path() -> str | None:
    found = glob.glob("/usr/lib/*/odbc/libmaodbc.so") + glob.glob("/usr/lib/*/libmaodbc.so")
    return found[0] if found else None


def _missing_packages() -> list[str]:
    missing = []
    if not _pg_bin("initdb"):
        missing.append("postgresql")
    if not shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or not shutil.which("mariadb-install-db"):
        missing.append("mariadb-server")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if not shutil.which("odbcinst"):
        missing.append("unixodbc")
    if not _odbc_driver_path():
        missing.append("odbc-mariadb")
    return missing


# Tools the tests and benchmarks drive (load balancer, load generator, browser, Sentinel).
TEST_TOOLS = {"nginx": "nginx-light", "wrk": "wrk", "chromium": "chromium", "redis-sentinel": "redis-sentinel"}


def _missing_tools() -> list[str]:
    return [pkg for binary, pkg in TEST_TOOLS.items()
            if not shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")]


def ensure_packages(*, tools: bool = False) -> None:
    """Install the servers' Debian packages (and with ``tools``, the test tools) when missing."""
    missing = _missing_packages() + (_missing_tools() if tools else [])
    if not missing:
        return
    if not _is_root() and not _missing_packages():
        print(f"stack: test tools missing ({' '.join(missing)}); the tests that need them will skip", flush=True)
        return
    if not _is_root():
        raise StackError(f"missing Debian packages {' '.join(missing)}; install them as root: "
                         f"apt-get install -y {' '.join(APT_PACKAGES)}")
    print(f"stack: installing {' '.join(missing)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
    # policy-rc.d stops Debian from starting the system-wide services it installs.
    policy = Path("/usr/sbin/policy-rc.d")
    had_policy = policy.exists()
    if not had_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        result = subprocess.run(["apt-get", "install", "-y", "-qq", *APT_PACKAGES, *missing], env=env,
                                capture_output=True, text=True, timeout=1200)
    finally:
        if not had_policy:
            policy.unlink(missing_ok=True)
    if result.returncode != 0:
        raise StackError(f"apt-get install failed: {result.stderr.strip()[-400:]}")
    still = _missing_packages()
    if still:
        raise StackError(f"still missing after apt-get: {' '.join(still)}")


def _ensure_owned(path: Path, user: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if _is_root():
        pw = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.lchown(p, pw.pw_uid, pw.pw_gid)


def _service_home(root: Path, name: str, user: str) -> Path:
    """A data folder the service user can reach; falls back outside an unreachable tree."""
    home = root / name
    if home.is_symlink() or home.exists():
        return home.resolve()
    if _is_root() and _run(["test", "-x", str(root)], user=user, check=False).returncode != 0:
        tag = hashlib.sha256(str(root).encode()).hexdigest()[:10]
        outside = Path("/var/lib/bizfed-stack") / tag / name
        outside.mkdir(parents=True, exist_ok=True)
        for folder in (outside.parent.parent, outside.parent):
            os.chmod(folder, 0o755)  # noqa: S103 - the postgres and mysql users must traverse it
        home.symlink_to(outside)
        return outside
    home.mkdir(parents=True, exist_ok=True)
    return home


# -- services ---------------------------------------------------------------

def _start_postgres(root: Path, state: State) -> None:
    user = "postgres" if _is_root() else pwd.getpwuid(os.getuid()).pw_name
    data = _service_home(root, "pg", user)
    if state.pids.get("postgres") and _pid_alive(state.pids["postgres"]) and _port_open(state.pg_port):
        if _psql(state, "postgres", "SHOW wal_level").strip() == "logical":
            return
        # Started before change capture needed logical decoding: restart with it.
        _run([_pg_bin("pg_ctl") or "pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"], user=user)
    if not (data / "PG_VERSION").exists():
        _ensure_owned(data, user)
        _run([_pg_bin("initdb") or "initdb", "-D", str(data), "-U", "postgres", "-A", "trust",
              "-E", "UTF8", "--locale=C.UTF-8"], user=user)
    _ensure_owned(data, user)
    (data / "postmaster.pid").unlink(missing_ok=True)
    state.pg_port = _free_port(state.pg_port)
    opts = (f"-p {state.pg_port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
            "-c shared_preload_libraries=pg_stat_statements "
            # change capture reads the WAL by logical decoding (issue 19); a real site enables it the same way
            "-c wal_level=logical -c max_replication_slots=16 -c max_wal_senders=16 "
            # the demo's slot stays while the demo is down; tests writing to the same cluster must not fill
            # the disk meanwhile: past this the server drops the slot's hold and bizfed starts afresh
            "-c max_slot_wal_keep_size=1GB "
            # with synchronous_commit off a commit reaches the decoded log only when the WAL writer flushes it
            "-c wal_writer_delay=10ms")
    _run([_pg_bin("pg_ctl") or "pg_ctl", "-D", str(data), "-l", str(data / "server.log"),
          "-o", opts, "-w", "-t", "60", "start"], user=user)
    state.pids["postgres"] = int((data / "postmaster.pid").read_text().split()[0])
    for db in DATABASES[:1]:
        exists = _psql(state, "postgres", f"SELECT 1 FROM pg_database WHERE datname='{db}'")
        if "1" not in exists:
            _psql(state, "postgres", f"CREATE DATABASE {db}")


@contextlib.contextmanager
def throwaway_postgres(*settings: str) -> Iterator[str]:
    """A PostgreSQL cluster of its own under the stack's folder, started with ``settings`` (``name=value``) on a
    free loopback port, for tests that need a server configured unlike the stack's; removed afterwards."""
    user = "postgres" if _is_root() else pwd.getpwuid(os.getuid()).pw_name
    scratch = stack_dir() / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    name = f"pg-{os.getpid()}-{time.monotonic_ns()}"
    data = _service_home(scratch, name, user)
    _ensure_owned(data, user)
    _run([_pg_bin("initdb") or "initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
          "--locale=C.UTF-8"], user=user)
    port = _free_port()
    opts = " ".join([f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
                     *(f"-c {setting}" for setting in settings)])
    _run([_pg_bin("pg_ctl") or "pg_ctl", "-D", str(data), "-l", str(data / "server.log"), "-o", opts, "-w",
          "-t", "60", "start"], user=user)
    try:
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        _run([_pg_bin("pg_ctl") or "pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], user=user,
             check=False)
        shutil.rmtree(data, ignore_errors=True)
        if (scratch / name).is_symlink():
            (scratch / name).unlink()


def _psql(state: State, db: str, sql: str) -> str:
    return _run(["psql", "-h", "127.0.0.1", "-p", str(state.pg_port), "-U", "postgres", "-d", db,
                 "-tAc", sql]).stdout


def _start_mariadb(root: Path, state: State) -> None:
    user = "mysql" if _is_root() else pwd.getpwuid(os.getuid()).pw_name
    home = _service_home(root, "mariadb", user)
    data = home / "data"
    if state.pids.get("mariadb") and _pid_alive(state.pids["mariadb"]) and _port_open(state.my_port):
        if _mysql(state, "SELECT @@log_bin, @@binlog_format").split() == ["1", "ROW"]:
            return
        # Started before change capture read the binlog: restart with it.
        os.kill(state.pids["mariadb"], signal.SIGTERM)
        for _ in range(600):
            if not _pid_alive(state.pids["mariadb"]):
                break
            time.sleep(0.1)
    _ensure_owned(home, user)
    if not (data / "mysql").exists():
        _run(["mariadb-install-db", f"--datadir={data}", f"--user={user}",
              "--auth-root-authentication-method=normal", "--skip-test-db"], timeout=300)
        _ensure_owned(home, user)
    state.my_port = _free_port(state.my_port)
    pidfile = home / "mariadbd.pid"
    pidfile.unlink(missing_ok=True)
    log = open(home / "server.log", "ab")  # noqa: SIM115 - handed to the daemon
    cmd = ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", f"--port={state.my_port}",
           "--bind-address=127.0.0.1", f"--socket={home / 'mariadbd.sock'}", f"--pid-file={pidfile}",
           "--skip-name-resolve",
           # change capture reads the row-based binlog (issue 19): the settings a real site needs too
           f"--log-bin={home / 'binlog'}", "--binlog-format=ROW", "--binlog-row-image=FULL",
           "--binlog-row-metadata=FULL", "--server-id=1", "--binlog-expire-logs-seconds=86400",
           "--innodb-flush-log-at-trx-commit=0",
           "--innodb-buffer-pool-size=256M", "--max-connections=300",
           "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"]
    if _is_root():
        cmd.append(f"--user={user}")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    state.pids["mariadb"] = proc.pid
    _wait_for(state.my_port, "MariaDB")
    for db in DATABASES[1:]:
        _mysql(state, f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4")


def _mysql(state: State, sql: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        result = _run(["mariadb", "-h", "127.0.0.1", "-P", str(state.my_port), "-u", "root",
                       "-N", "-e", sql], check=False)
        if result.returncode == 0:
            return result.stdout
        if time.monotonic() > deadline:
            raise StackError(f"MariaDB refused a statement: {result.stderr.strip()[-300:]}")
        time.sleep(0.3)


def _start_redis(root: Path, state: State) -> None:
    home = root / "redis"
    home.mkdir(parents=True, exist_ok=True)
    if state.pids.get("redis") and _pid_alive(state.pids["redis"]) and _port_open(state.redis_port):
        return
    state.redis_port = _free_port(state.redis_port)
    pidfile = home / "redis.pid"
    pidfile.unlink(missing_ok=True)
    _run(["redis-server", "--port", str(state.redis_port), "--bind", "127.0.0.1",
          "--daemonize", "yes", "--pidfile", str(pidfile), "--dir", str(home), "--save", "",
          "--appendonly", "no", "--logfile", str(home / "server.log")])
    _wait_for(state.redis_port, "Redis")
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    state.pids["redis"] = int(pidfile.read_text().strip())


def odbc_driver() -> str:
    """The ODBC DRIVER= value: the registered name if unixODBC knows it, else the library path."""
    result = subprocess.run(["odbcinst", "-q", "-d"], capture_output=True, text=True, check=False)
    if "[MariaDB Unicode]" in result.stdout:
        return "{MariaDB Unicode}"
    path = _odbc_driver_path()
    if not path:
        raise StackError("the MariaDB ODBC driver is not installed (apt-get install odbc-mariadb)")
    if _is_root():
        template = f"[MariaDB Unicode]\nDescription=MariaDB Connector/ODBC\nDriver={path}\n"
        reg = subprocess.run(["odbcinst", "-i", "-d", "-r"], input=template, text=True,
                             capture_output=True, check=False)
        if reg.returncode == 0:
            return "{MariaDB Unicode}"
    return path


def env_values(state: State) -> dict[str, str]:
    return {
        "BIZFED_WAREHOUSE_DSN": f"postgresql://postgres@127.0.0.1:{state.pg_port}/warehouse",
        "BIZFED_SALES_URL": f"mysql+asyncmy://root@127.0.0.1:{state.my_port}/sales?charset=utf8mb4",
        "BIZFED_ACCOUNTING_ODBC": (f"DRIVER={odbc_driver()};SERVER=127.0.0.1;PORT={state.my_port};"
                                   "DATABASE=accounting;UID=root;PWD=;CHARSET=utf8mb4"),
        "BIZFED_REDIS_URL": f"redis://127.0.0.1:{state.redis_port}/0",
        "BIZFED_API_KEYS": DEMO_KEYS,
    }


def up(*, tools: bool = False) -> dict[str, str]:
    """Start (or reuse) the stack and return its BIZFED_* settings."""
    ensure_packages(tools=tools)
    root = stack_dir()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - the postgres and mysql users must traverse it
    state = _load_state(root)
    try:
        _start_postgres(root, state)
        _start_mariadb(root, state)
        _start_redis(root, state)
    finally:
        _save_state(root, state)
    values = env_values(state)
    (root / "env").write_text("".join(f"{k}='{v}'\n" for k, v in values.items()))
    return values


def down() -> None:
    """Stop the processes this stack started, by the pids it recorded."""
    root = stack_dir()
    state = _load_state(root)
    for name, pid in state.pids.items():
        if _pid_alive(pid):
            os.kill(pid, 15)
            deadline = time.monotonic() + 30
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            print(f"stack: stopped {name} (pid {pid})")
    state.pids = {}
    if root.exists():
        _save_state(root, state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "env"])
    parser.add_argument("--tools", action="store_true", help="also install the test tools when missing")
    args = parser.parse_args(argv)
    try:
        if args.action == "down":
            down()
        else:
            values = up(tools=args.tools)
            if args.action == "env":
                print("".join(f"export {k}='{v}'\n" for k, v in values.items()), end="")
            else:
                print(f"stack: up; settings in {stack_dir() / 'env'}")
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
