"""The API reference of the docs: bizfed's OpenAPI document, built in-process, and tables of its operations.

As a script (``python docs/gen_openapi.py -o openapi.json``) it writes the document. As an mkdocs hook
(``hooks:`` in mkdocs.yml) it adds ``openapi.json`` to the site and fills the ``<!-- operations -->``
marker of api.md. The app is created with dummy-but-valid settings and never started: nothing connects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- operations -->"
METHODS = ("get", "post", "put", "patch", "delete")
log = logging.getLogger("mkdocs.hooks.gen_openapi")

# Valid for load_settings, never dialled: the app is only built, not served.
DUMMY_ENV = {
    "BIZFED_WAREHOUSE_DSN": "postgresql://docs@127.0.0.1:9/warehouse",
    "BIZFED_SALES_URL": "mysql+asyncmy://docs@127.0.0.1:9/sales",
    "BIZFED_ACCOUNTING_ODBC": "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=9;DATABASE=accounting;UID=docs",
    "BIZFED_REDIS_URL": "redis://127.0.0.1:9/0",
    "BIZFED_API_KEYS": "docs-only:reader",
}


def build_document() -> bytes:
    """The document ``GET /openapi.json`` serves, from an app built in this process and never started."""
    from api.app import create_app
    from api.openapi import openapi_document
    from api.settings import load_settings

    app = create_app(load_settings(DUMMY_ENV), name="bizfed_docs")
    app.router.finalize()
    # Of the start-up listeners run only sanic-ext's spec builder: the others open pools and start tasks.
    for future in app.blueprints["openapi"]._future_listeners:
        if future.event == "before_server_start":
            build_spec: Any = future.listener
            build_spec(app)
    handler: Any = openapi_document
    response = asyncio.run(handler(SimpleNamespace(app=app)))
    return bytes(response.body or b"")


def document_via_subprocess() -> bytes:
    """``build_document`` in a fresh interpreter, so Sanic's global app registry stays out of mkdocs."""
    with tempfile.TemporaryDirectory(prefix="bizfed-docs-") as tmp:
        out = Path(tmp) / "openapi.json"
        result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "-o", str(out)], cwd=REPO,
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"gen_openapi failed: {result.stderr.strip()[-2000:]}")
        return out.read_bytes()


def _cell(value: Any) -> str:
    text = str(value or "").replace("|", "\\|").replace("\n", " ").strip()
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _schema_text(schema: dict[str, Any]) -> str:
    kind = str(schema.get("type", "any"))
    details = []
    if "enum" in schema:
        details.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "minimum" in schema or "maximum" in schema:
        details.append(f"{schema.get('minimum', '')}…{schema.get('maximum', '')}")
    if "format" in schema and schema["format"] not in ("int32", "int64"):
        details.append(str(schema["format"]))
    return kind + (f" ({'; '.join(details)})" if details else "")


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation, grouped by tag then ordered by path."""
    ops = [(method.upper(), path, op) for path, item in spec.get("paths", {}).items()
           for method, op in item.items() if method in METHODS]
    return sorted(ops, key=lambda o: ((o[2].get("tags") or [""])[0], o[1], o[0]))


def render(spec: dict[str, Any]) -> str:
    """Markdown: a summary table of every operation, then each operation's parameters and responses."""
    ops = operations(spec)
    lines = [f"*{len(ops)} operations, generated from OpenAPI {spec.get('openapi')} document "
             f"version {spec.get('info', {}).get('version')}.*", "",
             "| Method | Path | Summary | Auth | Tag |", "|---|---|---|---|---|"]
    for method, path, op in ops:
        auth = "Bearer key" if op.get("security") else "none"
        lines.append(f"| `{method}` | [`{path}`](#{_anchor(method, path)}) | {_cell(op.get('summary'))} | {auth} | "
                     f"{_cell(', '.join(op.get('tags', [])))} |")
    for method, path, op in ops:
        lines += ["", f"### `{method} {path}` {{#{_anchor(method, path)}}}", "", _cell(op.get("summary")), ""]
        if op.get("description"):
            lines += [str(op["description"]).strip(), ""]
        params = op.get("parameters", [])
        if params:
            lines += ["| Parameter | In | Type | Required | Description |", "|---|---|---|---|---|"]
            lines += [f"| `{p['name']}` | {p.get('in', '')} | {_cell(_schema_text(p.get('schema', {})))} | "
                      f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description'))} |" for p in params]
            lines.append("")
        body = op.get("requestBody", {}).get("content", {})
        if body:
            lines += ["Request body: " + ", ".join(f"`{ctype}`" for ctype in body), ""]
        responses = op.get("responses", {})
        if responses:
            lines.append("Responses: " + "; ".join(f"**{code}** {_cell(r.get('description'))}"
                                                   for code, r in responses.items()))
    return "\n".join(lines) + "\n"


def _anchor(method: str, path: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in f"{method}-{path}".lower())
    return "op-" + "-".join(part for part in slug.split("-") if part)


# --- mkdocs hooks -----------------------------------------------------------------------------

SECURITY_PLACEHOLDER = """# Security

The security documentation is maintained separately and is not in this checkout yet.
"""


def on_files(files: Any, config: Any) -> Any:
    """Add the generated openapi.json to the site (and a stand-in security page until the real one lands)."""
    from mkdocs.structure.files import File

    document = document_via_subprocess()
    files.append(File.generated(config, "openapi.json", content=document))
    if files.get_file_from_path("security.md") is None:
        log.info("docs/security.md is not there yet: a stand-in page takes its place")
        files.append(File.generated(config, "security.md", content=SECURITY_PLACEHOLDER))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill api.md's operations marker from the generated document."""
    if MARKER not in markdown:
        return markdown
    spec = json.loads(files.get_file_from_path("openapi.json").content_bytes)
    return markdown.replace(MARKER, render(spec))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, help="where to write openapi.json (default: standard output)")
    args = parser.parse_args(argv)
    document = build_document()
    if args.output:
        args.output.write_bytes(document)
    else:
        sys.stdout.buffer.write(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
