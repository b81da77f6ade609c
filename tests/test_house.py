"""The house's import rules, read from the code with ``ast``: the core imports no adapter, the cache stores bytes,
adapters know only the core, the composition root alone wires adapters, and nothing stands on the tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("api", "federation", "connectors", "cache", "deploy", "bench", "tests")
# part -> the parts it must never import, and why.
NEVER = {
    "federation": ({"connectors", "cache", "api", "deploy", "bench", "tests"}, "the core imports no adapter"),
    "cache": ({"connectors", "federation", "api", "deploy", "bench", "tests"}, "the cache stores opaque bytes"),
    "connectors": ({"api", "cache", "deploy", "bench", "tests"}, "adapters know only the core"),
    "api": ({"bench", "tests"}, "the product never imports its benchmarks or tests"),
    "deploy": ({"bench", "tests"}, "the product never imports its benchmarks or tests"),
    "bench": ({"tests"}, "benchmarks stand on the product alone"),
}
# Of the api, only the composition root builds the adapters: api/wiring.py wires connectors and cache into the
# core; the cache's configuration is read with the rest in api/settings.py, and its errors are mapped to problems
# with the rest in api/problems.py.
ROOT_ONLY = {"connectors": {"api/wiring.py"},
             "cache": {"api/wiring.py", "api/settings.py", "api/problems.py"}}


def _imports(path: Path) -> set[str]:
    """The top-level packages a module imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PARTS)


def _modules(part: str) -> list[Path]:
    return sorted(p for p in (REPO / part).rglob("*.py") if ".venv" not in p.parts)


@pytest.mark.parametrize("part", sorted(NEVER))
def test_no_part_imports_what_it_must_not(part: str) -> None:
    """No module of a part imports a part the house forbids it."""
    forbidden, why = NEVER[part]
    offences = [f"{path.relative_to(REPO)} imports {sorted(_imports(path) & forbidden)}"
                for path in _modules(part) if _imports(path) & forbidden]
    assert not offences, f"{why}:\n" + "\n".join(offences)


def test_only_the_composition_root_imports_the_adapters() -> None:
    """Within the api, only the composition root imports connectors/ and cache/: the rest sees ports."""
    offences = []
    for path in _modules("api"):
        relative = path.relative_to(REPO).as_posix()
        for target, allowed in ROOT_ONLY.items():
            if target in _imports(path) and relative not in allowed:
                offences.append(f"{relative} imports {target}")
    assert not offences, "\n".join(offences)


def test_the_rules_see_every_module() -> None:
    """Each part has modules and they parse, so an empty or unreadable tree cannot pass the rules vacuously."""
    for part in NEVER:
        modules = _modules(part)
        assert modules, f"no modules found under {part}/"
        assert any(_imports(path) for path in modules), f"no imports found under {part}/"
