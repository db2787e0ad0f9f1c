"""Fixtures for the security tests: real ``c1hub``/``c1client`` processes on 127.0.0.1, started
with the integration harness (``tests/integration/procs.py``), attacked over HTTP, raw sockets
and the command line.

These tests are black-box on purpose: they import nothing of the hub but ``hub.protocol`` (the
wire format), so they hold the hub to its contract (docs/protocol.md and CONTRACT.md here)
however its insides are arranged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.procs import Procs, terminate


def close_politely(p: Procs) -> None:
    """Stop every process with SIGTERM first (a hub then shuts its worker pool down), then
    let ``Procs.close`` kill whatever is left. A hub killed outright leaves its worker
    processes running (finding 13), which would pile up over a test run."""
    for h in p.hubs:
        h.stop()
    for o in p.others:
        terminate(o)
    p.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        close_politely(p)


@pytest.fixture(scope="module")
def module_procs(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Procs]:
    """Processes shared by a whole module (one hub for a table of hostile requests)."""
    p = Procs(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]))
    try:
        yield p
    finally:
        close_politely(p)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/security/" in str(item.fspath):
            item.add_marker(pytest.mark.security)
            item.add_marker(pytest.mark.integration)
