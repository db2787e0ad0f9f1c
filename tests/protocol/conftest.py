"""Fixtures for the protocol-core tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.protocol.wilayah import Master


@pytest.fixture(scope="session")
def real_master(wilayah_path: Path) -> Master:
    """The real 2024 master, loaded once per session (skips when the file is absent)."""
    return Master.load(wilayah_path)
