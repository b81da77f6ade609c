"""The documentation site: builds offline in strict mode, with the API reference generated from the code."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.tools import REPO, venv_tool

PAGES = ("index", "architecture", "api", "versioning", "deployment", "development", "runbook", "security")


@pytest.fixture(name="gen_openapi")
def _gen_openapi() -> ModuleType:
    """docs/gen_openapi.py, loaded from its file (it is an mkdocs hook, not a package module)."""
    spec = importlib.util.spec_from_file_location("gen_openapi", REPO / "docs" / "gen_openapi.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(name="site", scope="module")
def _site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The site built by `mkdocs build --strict` into a temporary folder, with everything it printed."""
    mkdocs = venv_tool("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout + result.stderr


def test_builds_without_warnings(site: tuple[Path, str]) -> None:
    """`mkdocs build --strict` succeeds and logs no warning or error."""
    _, output = site
    bad = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not bad, "\n".join(bad)


def test_every_page_is_built(site: tuple[Path, str]) -> None:
    """Each page of the navigation, the dashboard picture and the offline search index are in the site."""
    root, _ = site
    for page in PAGES:
        assert (root / ("index.html" if page == "index" else f"{page}/index.html")).is_file(), page
    assert (root / "dashboard.png").is_file()
    assert (root / "search" / "search_index.json").is_file()
    assert not (root / "gen_openapi.py").exists()


def test_api_reference_comes_from_the_openapi_document(site: tuple[Path, str]) -> None:
    """The site carries /openapi.json as the app builds it, and the API page lists every operation in it."""
    root, _ = site
    spec = json.loads((root / "openapi.json").read_text())
    assert spec["openapi"].startswith("3.")
    assert {"/v1/orders", "/v1/products/{sku}", "/health/ready"} <= set(spec["paths"])
    page = (root / "api" / "index.html").read_text()
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in page, path


def test_no_assets_from_other_sites(site: tuple[Path, str]) -> None:
    """No page loads scripts, styles or fonts from another site, so the docs work behind a proxy or offline."""
    root, _ = site
    for html in root.rglob("*.html"):
        text = html.read_text()
        assert 'src="http' not in text, html
        assert "fonts.googleapis" not in text, html
        assert 'rel="stylesheet" href="http' not in text, html


def test_render_escapes_table_cells(gen_openapi: ModuleType) -> None:
    """Operation summaries with pipes or angle brackets cannot break the generated Markdown tables."""
    spec = {"openapi": "3.1.0", "info": {"version": "1"},
            "paths": {"/v1/x/{id}": {"get": {"summary": "a | b <id>", "tags": ["t"], "security": [{"b": []}],
                                             "parameters": [{"name": "id", "in": "path", "required": True,
                                                             "schema": {"type": "integer", "minimum": 1}}],
                                             "responses": {"200": {"description": "OK"}}}}}}
    text = gen_openapi.render(spec)
    assert "a \\| b &lt;id&gt;" in text
    assert "| `GET` | [`/v1/x/{id}`](#op-get-v1-x-id) |" in text
    assert "| `id` | path | integer (1…) | yes |" in text
