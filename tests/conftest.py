"""Fixtures shared by every test package: keep this file small and general."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.protocol.identity import Identity
from hub.protocol.wilayah import Master
from hub.shared.master import load_master
from tests import loopguard

# Real servers the tests start themselves (PostgreSQL, S3): fixtures postgres_server, pg_dsn,
# s3_server; skipped loudly when not installed, failed under CI.
pytest_plugins = ["tests.servers", "tests.servers.postgres", "tests.servers.s3"]

REPO_ROOT = Path(__file__).resolve().parent.parent
WILAYAH_FILE = REPO_ROOT.parent / "shared" / "data" / "wilayah-2024.json"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def wilayah_path() -> Path:
    """The real 2024 polling-station master at ../shared/data/; skips the test when absent."""
    if not WILAYAH_FILE.is_file():
        pytest.skip(f"real polling-station master not found at {WILAYAH_FILE}")
    return WILAYAH_FILE


@pytest.fixture(scope="session")
def real_master(wilayah_path: Path) -> Master:
    """The real 2024 master, loaded once per session (skips when the file is absent)."""
    return load_master(wilayah_path)


@pytest.fixture
def identity() -> Identity:
    """A deterministic node identity (fixed seed): same key, same node id, every run."""
    return Identity.from_seed(bytes(range(32)))


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (an unclosed store, pool or zeroconf)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not extra, f"test leaked threads: {[t.name for t in extra]}"


loopguard.install()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_loop_stall: the test blocks the event loop on purpose (loop guard off)"
    )


@pytest.fixture(autouse=True)
def loop_stall_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which one event-loop callback held the loop's thread for more than
    100 ms of CPU (or 5 s of wall time): see tests/loopguard.py."""
    if request.node.get_closest_marker("allow_loop_stall"):
        yield
        return
    loopguard.STATE.stalls.clear()
    loopguard.STATE.active = True
    try:
        yield
    finally:
        loopguard.STATE.active = False
    stalls = list(loopguard.STATE.stalls)
    loopguard.STATE.stalls.clear()
    assert not stalls, "the event loop was blocked:\n" + "\n".join(
        f"  {s.cpu_s * 1000:.0f} ms CPU / {s.wall_s * 1000:.0f} ms wall in {s.callback}"
        for s in sorted(stalls, key=lambda s: -s.cpu_s)[:10]
    )
