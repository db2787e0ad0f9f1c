"""Real servers that tests start themselves (PostgreSQL, an S3-compatible store), and the one
rule for when one is not installed: skip loudly here, fail under CI (``CI=true``)."""

from __future__ import annotations

import os
import socket
from types import TracebackType
from typing import Any, Self

import pytest

NOT_RUN: list[str] = []  # servers whose tests were skipped in this run


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A throw-away server as a context manager: ``start`` on entry (``close`` if that
    fails), ``close`` on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def missing(what: str, hint: str) -> str:
    """The reason to skip a test whose server ``what`` is not installed, or fail it under CI:
    CI (``CI=true``) must run every real-server test."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed, and CI must run these tests: {hint}")
    NOT_RUN.append(what)
    return f"{what} is not installed: test NOT RUN ({hint})"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if NOT_RUN:
        terminalreporter.write_sep(
            "!", f"NOT RUN: the tests that need {' and '.join(sorted(set(NOT_RUN)))}", red=True
        )
        terminalreporter.write_line(
            "They were skipped because the server is not installed here. CI installs it "
            "(.ci/services.sh, pip install -e '.[dev]') and runs them."
        )
