"""docker-compose.yml and its nginx proxy, validated offline: schema, compose CLI when present, nginx -t."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO, venv_tool

COMPOSE = REPO / "docker-compose.yml"
NGINX_CONF = REPO / "deploy" / "compose" / "nginx.conf"
REPLICAS = ("bizfed-1", "bizfed-2")


@pytest.fixture(name="compose")
def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(name="services")
def _services(compose: dict[str, Any]) -> dict[str, Any]:
    services: dict[str, Any] = compose["services"]
    return services


def test_whole_demo_is_there(services: dict[str, Any]) -> None:
    """The stack has the three legacy systems' servers, Redis, a seed job, two replicas and a proxy."""
    assert {"postgres", "mariadb", "redis", "seed", *REPLICAS, "proxy"} <= set(services)


def test_legacy_databases_start_from_the_project_ddl(services: dict[str, Any]) -> None:
    """PostgreSQL and MariaDB are initialised from deploy/legacy/*.sql, and the files mounted exist."""
    pg = " ".join(services["postgres"]["volumes"])
    assert "./deploy/legacy/warehouse.sql:/docker-entrypoint-initdb.d/" in pg
    maria = " ".join(services["mariadb"]["volumes"])
    assert "./deploy/legacy:/legacy" in maria
    assert "./deploy/compose/mariadb-init.sh" in maria
    init = (REPO / "deploy" / "compose" / "mariadb-init.sh").read_text()
    assert "for db in sales accounting" in init
    for name in ("warehouse", "sales", "accounting"):
        assert (REPO / "deploy" / "legacy" / f"{name}.sql").is_file()


def test_images_are_pinned(services: dict[str, Any]) -> None:
    """Every third-party image has an explicit version tag, never latest."""
    for name, svc in services.items():
        image = svc["image"]
        if "build" in svc:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert re.match(r"\d+\.\d+", tag), f"{name}: {image}"


def test_seed_runs_once_before_the_replicas(services: dict[str, Any]) -> None:
    """The seed job runs `bizfed seed` after the databases are healthy; replicas wait for it to succeed."""
    seed = services["seed"]
    assert seed["command"][:2] == ["bizfed", "seed"]
    assert seed["restart"] == "no"
    assert {d["condition"] for d in seed["depends_on"].values()} == {"service_healthy"}
    for name in REPLICAS:
        deps = services[name]["depends_on"]
        assert deps["seed"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"


def test_replicas_are_hardened_and_configured(services: dict[str, Any]) -> None:
    """Each replica runs read-only with /tmp as tmpfs, no capabilities, and every required BIZFED_* setting."""
    required = {"BIZFED_WAREHOUSE_DSN", "BIZFED_SALES_URL", "BIZFED_ACCOUNTING_ODBC", "BIZFED_REDIS_URL",
                "BIZFED_API_KEYS"}
    for name in REPLICAS:
        svc = services[name]
        assert svc["read_only"] is True
        assert any(t.startswith("/tmp") for t in svc["tmpfs"])
        assert svc["cap_drop"] == ["ALL"]
        assert required <= set(svc["environment"])
        assert svc["environment"]["BIZFED_REDIS_URL"] == "redis://redis:6379/0"
        assert "DRIVER={MariaDB Unicode}" in svc["environment"]["BIZFED_ACCOUNTING_ODBC"]


def test_proxy_balances_both_replicas(services: dict[str, Any]) -> None:
    """nginx waits for both replicas to be healthy and its upstream lists both of them."""
    proxy = services["proxy"]
    assert set(proxy["depends_on"]) == set(REPLICAS)
    conf = NGINX_CONF.read_text()
    for name in REPLICAS:
        assert f"server {name}:8000" in conf
    assert "./deploy/compose/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]


def test_matches_the_compose_specification() -> None:
    """The file validates against the Compose Specification schema (vendored in check-jsonschema, offline)."""
    tool = venv_tool("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    result = subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_cli_accepts_the_file() -> None:
    """`docker compose config` (or Debian's docker-compose) resolves the file without a Docker engine."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed (apt-get install docker-compose)")
    result = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                            timeout=60, check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_accepts_the_proxy_config(tmp_path: Path) -> None:
    """`nginx -t` accepts the proxy config once the compose service names are replaced by loopback ports."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    conf = NGINX_CONF.read_text()
    for i, name in enumerate(REPLICAS, start=1):
        conf = conf.replace(f"{name}:8000", f"127.0.0.1:{18000 + i}")
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
