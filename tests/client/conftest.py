"""Fixtures for the operator-laptop tests: real SQLite stores in tmp_path, real keys."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from client.cli import main
from hub.protocol import entry
from hub.shared import generator

REPO = Path(__file__).resolve().parents[2]
WILAYAH = REPO.parent / "shared" / "data" / "wilayah-2024.json"


def make_form(seed: int = 1, tps: str = "9901010001001", form: str = "PPWP", **changes: Any):
    """A consistent (unflagged) JSON entry."""
    f = generator.make_form(random.Random(seed), tps, form, operator="Operator Uji")
    f.update(changes)
    return f


def body(form: dict[str, Any], entered_at: int = 1_700_000_000) -> bytes:
    return entry.encode_body(entry.parse(form), entered_at)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def wilayah() -> Path:
    if not WILAYAH.exists():
        pytest.skip(f"reference data {WILAYAH} is not present")
    return WILAYAH


Invoke = Callable[..., Result]


@pytest.fixture
def cli(data_dir: Path) -> Invoke:
    """Run ``c1client ARGS --data DATA_DIR`` in-process; fail loudly on a crash."""
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None, data: bool = True) -> Result:
        argv = [*args, "--data", str(data_dir)] if data else list(args)
        result = runner.invoke(main, argv, input=input, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


@pytest.fixture
def initialised(cli: Invoke) -> Invoke:
    r = cli("init", "--name", "Meja 1")
    assert r.exit_code == 0, r.output
    return cli


def write_jsonl(path: Path, forms: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(f) + "\n" for f in forms))
    return path
