"""One declaration per setting (STYLE 5, datasette's ``SETTINGS``): its name, default,
environment variable and help text. Each program keeps its own list of them; the CLI builds its
options from the list and docs/configuration.md documents every entry (a test checks it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: Any
    help: str
    env: str | None = None  # the environment variable that sets it, if any


def by_name(settings: list[Setting]) -> dict[str, Setting]:
    return {s.name: s for s in settings}
