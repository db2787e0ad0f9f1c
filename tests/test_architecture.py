"""The layering of docs/architecture.md, checked on the source (STYLE 11).

- No import cycle among the project's modules, counting every import: at the top, inside
  functions and under ``TYPE_CHECKING`` (a cycle hidden there still ties the modules together).
- ``client/`` imports from ``hub`` only the I/O-free core (``hub.protocol``) and the shared
  package (``hub.shared``).
- ``hub.shared`` imports nothing of ``hub`` but the core; the core imports neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "client")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            # the deepest project module named by the import (``hub.protocol.codec`` for
            # ``from hub.protocol import codec``; ``hub.store`` for ``from hub.store import X``)
            parts = t.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != name:
                out.add(".".join(parts))
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), ignoring a package's
    import of its own submodules' parent (``hub.protocol.x`` -> ``hub.protocol`` is not a
    cycle with ``hub.protocol`` -> ``hub.protocol.x``: packages re-export)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def edges(v: str) -> set[str]:
        return {w for w in graph[v] if not v.startswith(w + ".")}

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_imports_of_every_kind() -> None:
    graph = _graph()
    assert "hub.protocol.codec" in graph["hub.protocol.record"]  # relative
    assert "hub.protocol.codec" in graph["hub.shared.rpc"]  # from hub.protocol import codec
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_client_imports_only_the_core_and_the_shared_package_from_hub() -> None:
    bad = {
        f"{mod} imports {dep}"
        for mod, deps in _graph().items()
        if mod.startswith("client")
        for dep in deps
        if dep.startswith("hub")
        and not dep.startswith(("hub.protocol", "hub.shared"))
        and dep != "hub"
    }
    assert bad == set()


def test_shared_and_core_do_not_import_the_hub_program() -> None:
    graph = _graph()
    bad = set()
    for mod, deps in graph.items():
        if mod.startswith("hub.protocol"):
            bad |= {f"{mod} imports {d}" for d in deps if not d.startswith("hub.protocol")}
        elif mod.startswith("hub.shared"):
            bad |= {
                f"{mod} imports {d}"
                for d in deps
                if d.startswith("hub")
                and not d.startswith(("hub.protocol", "hub.shared"))
                and d != "hub"
            }
    assert bad == set()


def test_commands_other_than_ui_do_not_load_the_station() -> None:
    """Every `c1client` command loads the command group; the station's server, templates and
    logic (jinja2, aiohttp.web, client.ui.station) are loaded by `c1client ui` only, so that
    `c1client sync` and `enter` start quickly on a busy laptop."""
    import subprocess
    import sys

    probe = (
        "import sys, client.cli; "
        "print(' '.join(sorted(m for m in ('jinja2', 'aiohttp.web', 'client.ui.server', "
        "'client.ui.station', 'client.ui.drafts') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, check=True)  # fmt: skip
    assert out.stdout.strip() == ""
