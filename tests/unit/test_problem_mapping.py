"""Every error type our packages define has its own entry in the one table that turns errors into problems."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

from api.problems import INTERNAL, PROBLEMS, problem_for

PACKAGES = ("federation", "connectors", "cache", "api")


def _import_all() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            importlib.import_module(module.name)


def _subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _our_error_types() -> list[type[BaseException]]:
    _import_all()
    found = {cls for cls in _subclasses(Exception) if cls.__module__.partition(".")[0] in PACKAGES}
    # A module-private error (``_RedisDown``) is caught in the module that raises it and never escapes.
    return sorted((cls for cls in found if not cls.__name__.startswith("_")), key=lambda c: c.__qualname__)


ERRORS = _our_error_types()


def test_the_walk_finds_the_error_types() -> None:
    """The walk sees the errors of every package, so an empty walk cannot pass the mapping test."""
    modules = {cls.__module__.partition(".")[0] for cls in ERRORS}
    # Connectors raise the core's errors (federation/errors.py) and define none of their own.
    assert modules == set(PACKAGES) - {"connectors"}, modules
    assert len(ERRORS) >= 15


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_each_error_type_has_its_own_problem(error: type[BaseException]) -> None:
    """The error type is a key of api.problems.PROBLEMS: it is answered as decided, not by a base's default."""
    assert error in PROBLEMS, f"{error.__module__}.{error.__qualname__} has no entry in api.problems.PROBLEMS"
    assert problem_for(error) is PROBLEMS[error]


@pytest.mark.parametrize("error", [e for e in ERRORS if problem_for(e) is not INTERNAL],
                         ids=lambda cls: cls.__qualname__)
def test_a_mapped_error_is_not_a_500(error: type[BaseException]) -> None:
    """Only the entries that name a bug answer 500; every other error type has a 4xx or a 503."""
    status = problem_for(error).status
    assert not isinstance(status, int) or status < 500 or status == 503, status
