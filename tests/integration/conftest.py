"""Fixtures for integration tests: real processes on 127.0.0.1 (see procs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.procs import Procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(params=["sqlite", "postgres"])
def root_db(request: pytest.FixtureRequest) -> str | None:
    """Where the root keeps its entries: its hub.db (None), or a fresh PostgreSQL database
    (``--db``; tests/servers/postgres.py)."""
    if request.param == "sqlite":
        return None
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
