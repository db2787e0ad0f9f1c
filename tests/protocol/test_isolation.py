"""Importing hub.protocol loads no I/O framework (STYLE 1, 11): checked in a fresh interpreter."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import hub.protocol

FORBIDDEN = ("aiohttp", "aiosqlite", "zeroconf")

PROBE = """
import importlib, json, pkgutil, sys
import hub.protocol
names = sorted(m.name for m in pkgutil.iter_modules(hub.protocol.__path__, "hub.protocol."))
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def test_protocol_imports_no_io_framework() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    expected = sorted(m.name for m in pkgutil.iter_modules(hub.protocol.__path__, "hub.protocol."))
    assert result["imported"] == expected
    assert {"hub.protocol.codec", "hub.protocol.ingest", "hub.protocol.generator"} <= set(expected)
    loaded = [m for m in result["loaded"] if m.split(".")[0] in FORBIDDEN]
    assert loaded == [], f"importing hub.protocol loaded {loaded}"
