"""The rule for tests whose real server is not installed: skipped loudly here, failed in CI."""

from __future__ import annotations

import pytest

from tests import servers
from tests.servers.postgres import find_bin_dir


def test_a_missing_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run these tests"):
        servers.missing("PostgreSQL", "apt-get install postgresql")


def test_a_missing_server_is_named_in_the_skip_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(servers, "NOT_RUN", [])
    reason = servers.missing("PostgreSQL", "apt-get install postgresql")
    assert "NOT RUN" in reason and "PostgreSQL" in reason
    assert servers.NOT_RUN == ["PostgreSQL"]


def test_debian_postgresql_is_found_when_installed() -> None:
    found = find_bin_dir()
    if found is None:
        pytest.skip(servers.missing("PostgreSQL", "apt-get install postgresql"))
    assert (found / "initdb").is_file() and found.parent.parent.name == "postgresql"
