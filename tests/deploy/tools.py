"""Finding the command-line validators the deploy tests use: in the virtualenv first, then on PATH."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def venv_tool(name: str) -> str | None:
    """The path of ``name`` installed beside this interpreter (the dev extras), else on PATH, else None."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)
