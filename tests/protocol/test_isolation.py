"""hub.protocol is I/O-free (STYLE 1, 11): importing it loads no I/O framework (checked in a
fresh interpreter), and no module of it imports a file, socket or event-loop module or calls
``open``."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

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
    assert {"hub.protocol.codec", "hub.protocol.ingest", "hub.protocol.rules"} <= set(expected)
    loaded = [m for m in result["loaded"] if m.split(".")[0] in FORBIDDEN]
    assert loaded == [], f"importing hub.protocol loaded {loaded}"


IO_MODULES = {"os", "pathlib", "io", "shutil", "tempfile", "socket", "asyncio", "sqlite3", "json"}


def test_protocol_modules_touch_no_file() -> None:
    """Reading keys, masters and other files lives in ``hub.shared``, not in the core."""
    found = []
    for path in sorted(Path(hub.protocol.__path__[0]).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module.split(".")[0]]
            found += [f"{path.name}: import {n}" for n in names if n in IO_MODULES]
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                found.append(f"{path.name}:{node.lineno}: open()")
    assert found == []
