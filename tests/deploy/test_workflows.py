"""The GitHub Actions workflows: they parse, match the workflow schema and hold the deploy rules."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO, venv_tool

WORKFLOWS = REPO / ".github" / "workflows"


def _load(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


@pytest.fixture(name="ci")
def _ci() -> dict[Any, Any]:
    return _load("ci.yml")


@pytest.fixture(name="release")
def _release() -> dict[Any, Any]:
    return _load("release.yml")


@pytest.fixture(name="deploy")
def _deploy() -> dict[Any, Any]:
    return _load("deploy.yml")


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_every_workflow_has_triggers_and_jobs() -> None:
    """Each workflow file parses and has `on`, `jobs`, and steps or a called workflow in every job."""
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml", "deploy.yml"}
    for f in files:
        data = _load(f.name)
        assert data.get("on"), f.name
        assert data.get("jobs"), f.name
        for name, job in data["jobs"].items():
            assert "steps" in job or "uses" in job, f"{f.name}: {name}"


def test_workflows_match_the_schema() -> None:
    """The workflows validate against the GitHub workflow schema vendored in check-jsonschema (offline)."""
    tool = venv_tool("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    files = [str(p) for p in sorted(WORKFLOWS.glob("*.yml"))]
    result = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", *files], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_make_test_on_push_and_pr(ci: dict[Any, Any]) -> None:
    """CI runs on every push and pull request, as root in Debian, and runs `make test` (lint, types, tests)."""
    assert {"push", "pull_request"} <= set(ci["on"])
    (job,) = ci["jobs"].values()
    assert job["container"]["image"].startswith("debian:")
    assert "make test" in _runs(job)
    assert (REPO / ".ci" / "run").read_text().strip().endswith("make test")


def test_release_builds_and_pushes_on_tags(release: dict[Any, Any]) -> None:
    """Release runs on version tags and pushes the image built from the Dockerfile with build-push-action."""
    assert release["on"]["push"]["tags"]
    steps = [s for job in release["jobs"].values() for s in job["steps"]]
    (build,) = [s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action@")]
    assert build["with"]["file"] == "Dockerfile"
    assert build["with"]["push"] is True


def test_each_deploy_job_is_protected_and_rolls_back(deploy: dict[Any, Any]) -> None:
    """Every deploy job names a GitHub environment, applies its overlay, waits for the rollout with a timeout
    and undoes it when the rollout fails."""
    jobs = {n: j for n, j in deploy["jobs"].items() if "kubectl apply" in _runs(j)}
    assert set(jobs) == {"staging", "production"}
    for name, job in jobs.items():
        assert job["environment"]["name"], name
        runs = _runs(job)
        assert 'kubectl apply -k "deploy/k8s/overlays/${REGION}"' in runs
        assert "rollout status deployment/bizfed --timeout=" in runs
        (undo,) = [s for s in job["steps"] if "rollout undo" in s.get("run", "")]
        assert undo["if"].startswith("failure()")


def test_production_follows_staging_region_by_region(deploy: dict[Any, Any]) -> None:
    """Production waits for staging and deploys eu, us and apac one at a time, each its own environment."""
    prod = deploy["jobs"]["production"]
    assert "staging" in prod["needs"]
    assert prod["strategy"]["matrix"]["region"] == ["eu", "us", "apac"]
    assert prod["strategy"]["max-parallel"] == 1
    assert prod["environment"]["name"] == "production-${{ matrix.region }}"
    for region in ("staging", *prod["strategy"]["matrix"]["region"]):
        assert (REPO / "deploy" / "k8s" / "overlays" / region / "kustomization.yaml").is_file()


def test_deploy_never_overlaps(deploy: dict[Any, Any]) -> None:
    """Two deploys never run at once and a running one is never cancelled half-way."""
    assert deploy["concurrency"]["cancel-in-progress"] is False

