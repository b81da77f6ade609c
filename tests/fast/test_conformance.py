"""Each fake satisfies its port statically: mypy checks ``tests/fakes/conformance.py``, which assigns every fake to
a variable typed with its Protocol, and the same check must reject a fake given for the wrong port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    # The project's mypy settings (pyproject.toml) apply: run from the checkout.
    return subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def test_every_fake_satisfies_its_port() -> None:
    checked = _mypy("--strict", "tests/fakes/conformance.py")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_check_rejects_a_fake_that_does_not_fit_the_port(tmp_path: Path) -> None:
    """The assignment is a real check: a fake given for another port is refused."""
    wrong = tmp_path / "wrong_port.py"
    wrong.write_text("from federation.ports import Warehouse\n"
                     "from tests.fakes.sales import FakeSales\n"
                     "wrong: Warehouse = FakeSales()\n")
    checked = _mypy(str(wrong))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert 'expression has type "FakeSales", variable has type "Warehouse"' in checked.stdout
