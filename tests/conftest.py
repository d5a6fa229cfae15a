"""Markers every test gets from what it uses, so a new test is tiered without remembering to mark it:
`postgres` for each test that touches the PostgreSQL server (its backend parameter is postgresql, or it asks for
the postgres_url fixture, directly or through another fixture), `benchmark` for everything under tests/benchmarks."""

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent / "benchmarks"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        if backend == "postgresql" or "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if item.path.is_relative_to(BENCHMARKS):
            item.add_marker(pytest.mark.benchmark)
