"""Browser tests: real `c1client ui` processes and Debian's headless Chromium.

When the browser (or the playwright package) is missing, the tests in this folder are
skipped with a message saying what did not run, except when the environment variable CI is
"true": then they FAIL, because CI must run them (`.ci/run` installs chromium first).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Station, browser_missing, chromium


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/" in str(item.fspath) and item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_ok() -> None:
    why = browser_missing()
    if why is None:
        return
    text = f"!!! BROWSER TESTS NOT RUN (tests/ui, the operator's station): {why}"
    if os.environ.get("CI") == "true":
        pytest.fail(text + " — CI must run them", pytrace=False)
    pytest.skip(text)


@pytest.fixture
def browser(chromium_ok: None) -> Iterator[Any]:
    with chromium() as ctx:
        yield ctx


@pytest.fixture
def stations(tmp_path: Path) -> Iterator[list[Station]]:
    made: list[Station] = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def station(chromium_ok: None, tmp_path: Path, stations: list[Station]) -> Station:
    s = Station(tmp_path / "laptop")
    stations.append(s)
    return s.start()
