"""Fixtures of the change-capture tests: the business's own writes to the module's legacy databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.legacy.schema import LegacyTargets
from tests.changes.support import Legacy


@pytest.fixture(name="legacy_targets", scope="module")
def _legacy_targets(seeded: LegacyTargets) -> LegacyTargets:
    """The databases the module's servers read and ``legacy`` writes; a module may put others in their place."""
    return seeded


@pytest.fixture(name="legacy", scope="module")
def _legacy(legacy_targets: LegacyTargets) -> Iterator[Legacy]:
    with Legacy(legacy_targets) as legacy:
        yield legacy
