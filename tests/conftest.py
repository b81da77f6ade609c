"""Fixtures: the private local stack, throw-away legacy databases, real connections."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from deploy.legacy.schema import LegacyTargets, create_all, drop_all
from deploy.legacy.seed import seed
from deploy.local import stack
from deploy.local.faultproxy import FaultProxy
from tests.servers import Server, launch_fixture, proxy_factory_fixture


@pytest.fixture(name="stack_env", scope="session")
def _stack_env() -> dict[str, str]:
    """The BIZFED_* settings of the private stack, started (or reused) once per session."""
    try:
        return stack.up()
    except stack.StackError as exc:
        pytest.fail(f"local stack could not start: {exc}")


@pytest.fixture(name="base_targets", scope="session")
def _base_targets(stack_env: dict[str, str]) -> LegacyTargets:
    return LegacyTargets.from_env(stack_env)


@pytest.fixture(name="empty_legacy", scope="module")
def _empty_legacy(base_targets: LegacyTargets) -> Iterator[LegacyTargets]:
    """Three fresh, empty legacy databases for one test module, dropped afterwards."""
    suffix = f"t{uuid.uuid4().hex[:8]}_{os.getpid()}"
    targets = base_targets.renamed(suffix)
    create_all(targets, drop=True)
    yield targets
    drop_all(targets)


def seeded_legacy(base: LegacyTargets, prefix: str) -> Iterator[LegacyTargets]:
    """Legacy databases seeded at scale 1 (seed 42) under a fresh name, dropped when the caller is done."""
    targets = base.renamed(f"{prefix}{uuid.uuid4().hex[:8]}_{os.getpid()}")
    seed(targets, 1, 42, log=lambda *_: None)
    yield targets
    drop_all(targets)


@pytest.fixture(name="seeded", scope="module")
def _seeded(base_targets: LegacyTargets) -> Iterator[LegacyTargets]:
    """Seeded legacy databases for one test module."""
    yield from seeded_legacy(base_targets, "s")


@pytest.fixture(name="redis_url", scope="session")
def _redis_url(stack_env: dict[str, str]) -> str:
    return stack_env["BIZFED_REDIS_URL"]


@pytest.fixture(name="proxy_factory", scope="module")
def _proxy_factory() -> Iterator[Callable[[int], FaultProxy]]:
    """Starts fault proxies in front of loopback ports; every one is stopped at the end of the module."""
    yield from proxy_factory_fixture()


@pytest.fixture(name="launch", scope="module")
def _launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Starts `bizfed serve` subprocesses; each is terminated at the end of the module."""
    yield from launch_fixture(tmp_path_factory)
