"""Reading the polling-station master (``wilayah-2024.json``) from a file."""

from __future__ import annotations

import json
from pathlib import Path

from hub.protocol.errors import SchemaError
from hub.protocol.wilayah import Master


def load_master(path: Path | str) -> Master:
    """The master in ``path`` (SchemaError if it is not valid JSON or not a master)."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path} is not valid JSON: {exc}") from None
    return Master.from_json(obj)
