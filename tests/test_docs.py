"""The documentation stays true to the code.

- docs/cli.md is the programs' own ``--help`` output, regenerated and compared here. After
  changing a command or an option, rewrite it with::

      .venv/bin/python -m tests.test_docs --write

- Every relative link in README.md and docs/*.md points to a file (and heading) that exists.
- README's quickstart is exactly ``make demo`` and ``make test``.
- docs/configuration.md lists every declared setting with its declared default, and the
  hub's command-line defaults are the declared ones.
- docs/protocol.md lists every HTTP route, every error code with its HTTP status, and every
  per-record rejection code.
- docs/json-output.md lists exactly the keys the ``--json`` commands print, with their types
  (checked against real output of real commands on a real hub and laptop).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
CLI_MD = DOCS / "cli.md"
_UNSET = getattr(click.core, "UNSET", object())

# Environment variables that would change what --help shows; unset while generating it.
_HELP_ENV = (
    "C1HUB_DATA", "C1CLIENT_DATA", "C1_LANG", "C1_WILAYAH", "C1CLIENT_BATCH_SIZE",
    "C1CLIENT_BUSY_TIMEOUT", "C1CLIENT_PROGRESS_AFTER", "COLUMNS",
)  # fmt: skip


# -- docs/cli.md ------------------------------------------------------------------------------


def _programs() -> list[tuple[str, click.Group]]:
    from client.cli import main as client_main
    from hub.cli import main as hub_main

    return [("c1hub", hub_main), ("c1client", client_main)]


def _help(prog: str, group: click.Group, args: list[str]) -> str:
    # The width a wide terminal gets: click's max_content_width (default 80) minus 2.
    width = int(group.context_settings.get("max_content_width", 80)) - 2
    runner = CliRunner(env=dict.fromkeys(_HELP_ENV))
    result = runner.invoke(group, [*args, "--help"], prog_name=prog, terminal_width=width)
    assert result.exit_code == 0, f"{prog} {' '.join(args)} --help failed: {result.output}"
    return result.output.rstrip() + "\n"


def cli_reference() -> str:
    """The text of docs/cli.md, generated from the programs themselves."""
    parts = [
        "# Command-line reference\n",
        "The `--help` of every command of `c1hub` (the hub, the national stand-in and their "
        "admin\ncommands) and `c1client` (the operator laptop). This file is generated: do not "
        "edit it by\nhand. After changing a command, regenerate it with\n",
        "```sh\n.venv/bin/python -m tests.test_docs --write\n```\n",
        "`tests/test_docs.py` fails when this file is out of date. Settings, defaults and "
        "environment\nvariables are explained in [configuration.md](configuration.md); the "
        "`--json` shapes in\n[json-output.md](json-output.md).\n",
        "Exit codes, the same for both programs:\n\n"
        "- `0` success;\n"
        "- `1` the command ran and something failed, was refused or is wrong: the message on "
        'stderr says\n  what (with `--json`, an `{"error": {...}}` object on stdout too);\n'
        "- `2` bad usage: an unknown command or option, or a bad value;\n"
        "- `130` interrupted (Ctrl-C); what was saved before stays saved.\n",
    ]
    for prog, group in _programs():
        ctx = click.Context(group, info_name=prog)
        names = group.list_commands(ctx)
        parts.append(f"## {prog}\n")
        parts.append(", ".join(f"[`{prog} {n}`](#{prog}-{n})" for n in names) + "\n")
        parts.append(f"```text\n{_help(prog, group, [])}```\n")
        for name in names:
            parts.append(f"### {prog} {name}\n")
            parts.append(f"```text\n{_help(prog, group, [name])}```\n")
    return "\n".join(parts)


def test_cli_md_is_current() -> None:
    want = cli_reference()
    have = CLI_MD.read_text(encoding="utf-8") if CLI_MD.exists() else ""
    assert have == want, (
        "docs/cli.md is out of date: run `.venv/bin/python -m tests.test_docs --write`"
    )


def test_cli_md_shows_every_command() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    for prog, group in _programs():
        for name, cmd in group.commands.items():
            if not cmd.hidden:
                assert f"### {prog} {name}\n" in text
                assert f"Usage: {prog} {name} " in text


# -- links ------------------------------------------------------------------------------------


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    kept = "".join(
        ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN"
    )  # fmt: skip
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6} +(.+?) *#*$", text, flags=re.M):
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links(path: Path) -> Iterator[str]:
    for m in re.finditer(r"\]\(([^)\s]+)\)", _prose(path.read_text(encoding="utf-8"))):
        yield m.group(1)


def test_relative_links_point_to_existing_files_and_headings() -> None:
    bad = []
    checked = 0
    for md in _markdown_files():
        for link in _links(md):
            if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
                continue
            target, _, anchor = link.partition("#")
            dest = (md.parent / target).resolve() if target else md
            checked += 1
            if not dest.exists():
                bad.append(f"{md.relative_to(REPO)}: {link} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{md.relative_to(REPO)}: {link} (no such heading)")
    assert checked > 20
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_slug_matches_github() -> None:
    assert _slug("R11: rejected on the laptop, flagged at a hub") == (
        "r11-rejected-on-the-laptop-flagged-at-a-hub"
    )
    assert _slug("`c1hub status --json`") == "c1hub-status---json"
    assert _slug("Sync: hub to upstream") == "sync-hub-to-upstream"


# -- README -----------------------------------------------------------------------------------


def test_readme_quickstart_is_make_demo_and_make_test() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Quickstart\n(.*?)^## ", text, flags=re.S | re.M)
    assert m, "README.md has no '## Quickstart' section"
    blocks = re.findall(r"^```\w*\n(.*?)^```", m.group(1), flags=re.S | re.M)
    assert len(blocks) == 1, "the quickstart is one code block"
    commands = [line.strip() for line in blocks[0].splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, re.M)


def test_readme_lists_every_dependency() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    readme = (REPO / "README.md").read_text(encoding="utf-8").lower()
    specs = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = [re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0].lower() for s in specs]
    missing = [n for n in names if f"| {n} |" not in readme]
    assert not missing, f"README.md does not explain these dependencies: {missing}"


# -- docs/configuration.md --------------------------------------------------------------------


def _config_rows() -> dict[str, list[list[str]]]:
    """``{setting name: [cells, ...]}`` for every table row of docs/configuration.md."""
    rows: dict[str, list[list[str]]] = {}
    for line in (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(\w+)` \|(.*)\|$", line)
        if m:
            rows.setdefault(m.group(1), []).append([c.strip() for c in m.group(2).split(" | ")])
    return rows


def _shown(default: object) -> str:
    if default is None:
        return "—"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


@pytest.mark.parametrize("program", ["hub", "client"])
def test_configuration_md_lists_every_setting_with_its_default(program: str) -> None:
    if program == "hub":
        from hub.config import SETTINGS as hub_settings

        settings: list[Any] = list(hub_settings)
    else:
        from client.config import SETTINGS as client_settings

        settings = list(client_settings)
    rows = _config_rows()
    for s in settings:
        assert s.name in rows, f"{program} setting {s.name} is not in docs/configuration.md"
        cells = rows[s.name][0] if program == "hub" else rows[s.name][-1]
        assert cells[0].startswith(_shown(s.default)), (
            f"{program} setting {s.name}: docs say default {cells[0]!r}, code says {s.default!r}"
        )
        env = getattr(s, "env", None)
        if env is not None:
            assert f"`{env}`" in cells[2], f"{s.name}: environment variable {env} not in its row"


def test_hub_command_line_defaults_are_the_declared_ones() -> None:
    from hub.cli import main
    from hub.config import SETTINGS

    declared = {s.name: s.default for s in SETTINGS}
    seen = set()
    for command in ("serve", "national"):
        ctx = click.Context(main.commands[command])
        for p in main.commands[command].params:
            if p.name in declared and p.name != "data_dir":
                default = p.get_default(ctx, call=False)
                default = None if default is _UNSET else default  # click >= 8.2: no default
                assert default == declared[p.name], f"c1hub {command} --{p.name}"
                seen.add(p.name)
    assert seen == set(declared) - {"data_dir", "root"}


# -- docs/protocol.md -------------------------------------------------------------------------


def _protocol() -> str:
    return (DOCS / "protocol.md").read_text(encoding="utf-8")


def test_protocol_md_lists_every_route() -> None:
    from hub.server import make_app

    store = SimpleNamespace(path=Path("hub-data/hub.db"))
    service: Any = SimpleNamespace(
        scans=None, root=False, sqlite=lambda: True, sqlite_store=lambda: store
    )
    app = make_app(service, admin_token="", max_body=1 << 20)
    routes = [
        (r.method, r.resource.get_info().get("pattern"), r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    ]
    table = [line for line in _protocol().splitlines() if re.match(r"\| `(GET|POST|PUT) /", line)]
    documented = [
        (m.group(1), re.sub(r"\{\w+\}", "X", m.group(2)))
        for line in table
        for m in re.finditer(r"`(GET|POST|PUT) (/[^`\s]*)`", line)
    ]
    for method, pattern, canonical in routes:
        hits = [
            path
            for meth, path in documented
            if meth == method and (pattern.fullmatch(path) if pattern else path == canonical)
        ]
        assert hits, f"{method} {canonical} is not in the HTTP API table of docs/protocol.md"
    for meth, path in documented:
        assert any(
            meth == method and (pattern.fullmatch(path) if pattern else path == canonical)
            for method, pattern, canonical in routes
        ), f"docs/protocol.md documents {meth} {path}, which the hub does not serve"


def test_protocol_md_lists_every_error_code_with_its_status() -> None:
    from hub.errors import HTTP_STATUS
    from hub.protocol import errors

    text = _protocol()
    codes = dict(HTTP_STATUS)
    classes: list[type[errors.ProtocolError]] = [errors.ProtocolError]
    classes += errors.ProtocolError.__subclasses__()
    for cls in classes:
        assert cls.code in codes, f"{cls.__name__}.code {cls.code} has no HTTP status"
    for code, status in codes.items():
        assert re.search(rf"^\| `{code}` \| {status} \|", text, flags=re.M), (
            f"docs/protocol.md: no row '| `{code}` | {status} |'"
        )


def test_protocol_md_lists_every_per_record_code() -> None:
    from hub.protocol import errors, ingest

    source = Path(ingest.__file__).read_text(encoding="utf-8")
    plan_codes = set(re.findall(r'reject\(\s*ex,\s*"([a-z_]+)"', source))
    plan_codes |= set(re.findall(r'FORK,\s*o,\s*rec\.seq,\s*"([a-z_]+)"', source))
    assert {"out_of_order", "device_revoked", "not_endorsed", "origin_forked", "fork"} <= plan_codes
    examine_codes = {errors.CodecError.code, errors.SignatureError.code, errors.SchemaError.code}
    section = _protocol().split("Per-record codes", 1)[1].split("\n## ", 1)[0]
    for code in sorted(plan_codes | examine_codes):
        assert f"| `{code}` |" in section, f"per-record code {code} is not in docs/protocol.md"


def test_protocol_md_states_the_wire_constants() -> None:
    from hub.protocol import PROTOCOL_VERSION, enroll, receipt, record

    text = _protocol()
    for domain in (
        record.DOMAIN,
        receipt.DOMAIN,
        receipt.UPSTREAM_DOMAIN,
        enroll.HELLO_DOMAIN,
        enroll.ENROLL_DOMAIN,
        enroll.ENDORSE_DOMAIN,
    ):
        assert domain.decode() in text
    assert f"| `{PROTOCOL_VERSION}` |" in text
    assert f"[{record.VERSION}, origin, seq, prev, body, sig]" in text
    assert f"{record.MAX_RECORD // 1024} KiB" in text


def test_protocol_md_states_the_sync_timings() -> None:
    from client import sync
    from hub.protocol import outbox
    from hub.protocol.pacing import BatchSizer
    from hub.shared import rpc

    text = " ".join(_protocol().split())  # line breaks do not matter
    sizer = BatchSizer()
    for phrase in (
        f"base {sync.BACKOFF_BASE:g} s, cap {sync.BACKOFF_CAP:g} s",
        f"batches of `--batch` ({sync.DEFAULT_BATCH})",
        f"| {sync.CALL_TIMEOUT:g} s | `CALL_TIMEOUT` |",
        f"| {rpc.CALL_TIMEOUT:g} s | `CALL_TIMEOUT` |",
        f"parked for {outbox.STUCK_RETRY_S:g} s",
        f"asks again every {outbox.PENDING_RECHECK_S:g} s",
        f"every {outbox.HEARTBEAT_S:g} s (hello, enroll and the audit)",
        f"sleeps up to {outbox.IDLE_POLL:g} s",
        f"at most {outbox.MAX_BATCH_BYTES // 2**20} MiB",
        f"{outbox.HEADS_PER_CALL:,} origins per call",
        f"{sizer.low}..{sizer.high:,} records (starts at {sizer.size})",
        f"more than {sizer.slow_s:g} s",
    ):
        assert phrase in text, f"docs/protocol.md should say {phrase!r}"


# -- docs/json-output.md ----------------------------------------------------------------------


def _json_doc() -> dict[str, list[tuple[str, str]]]:
    """``{section heading: [(key pattern, type), ...]}`` from docs/json-output.md."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for line in (DOCS / "json-output.md").read_text(encoding="utf-8").splitlines():
        h = re.match(r"^## (.+)$", line)
        if h:
            section = h.group(1).strip()
            out[section] = []
            continue
        m = re.match(r"^\| `([^`]+)` \| ([^|]*) \|", line)
        if m and section:
            out[section].append((m.group(1), m.group(2).strip()))
    return out


def _paths(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key path, value) of every key in ``obj``: ``a.b``, list items as ``a[]``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            yield p, v
            yield from _paths(v, p)
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict | list):
                yield from _paths(item, prefix + "[]")


def _segments(path: str) -> list[str]:
    return re.findall(r"[^.\[\]]+\[\]|\[\]|[^.\[\]]+", path)


def _matches(pattern: str, path: str, *, prefix: bool = False) -> bool:
    """Does ``pattern`` match ``path`` (with ``prefix``: the start of ``path``)? A ``<name>``
    segment on either side matches any key."""
    p, a = _segments(pattern), _segments(path)
    if (len(a) < len(p)) if prefix else (len(a) != len(p)):
        return False
    for ps, seg in zip(p, a, strict=False):
        if ps.startswith("<") or seg.startswith("<"):
            if ps.endswith("[]") != seg.endswith("[]"):
                return False
        elif ps != seg:
            return False
    return True


_TYPES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "[int]": lambda v: isinstance(v, list) and all(type(x) is int for x in v),
    "{...}": lambda v: isinstance(v, dict),
}


def check_json_section(section: str, outputs: Iterable[Any]) -> None:
    """Every key of ``outputs`` is documented in ``section``, with a matching type, and every
    documented key occurs in ``outputs``."""
    doc = _json_doc()[section]
    assert doc, f"no key table under '## {section}'"
    open_keys = [k for k, t in doc if t == "{...}"]
    printed: list[str] = []
    for out in outputs:
        for path, value in _paths(out):
            printed.append(path)
            if any(_matches(k, path, prefix=True) and k != path for k in open_keys):
                continue  # inside an object documented elsewhere
            rows = [(k, t) for k, t in doc if _matches(k, path)]
            bare = path.replace("[]", "")
            implied = [k for k, _ in doc if _matches(bare, k.replace("[]", ""), prefix=True)]
            assert rows or implied, f"{section}: key {path!r} is not in docs/json-output.md"
            for _key, t in rows:
                alternatives = [x.strip() for x in t.split(" or ")] if t else []
                known = [x for x in alternatives if x in _TYPES]
                if known:
                    assert any(_TYPES[x](value) for x in known), (
                        f"{section}: {path} is {value!r}, documented as {t}"
                    )
    missing = [k for k, _ in doc if not any(_matches(k, p, prefix=True) for p in printed)]
    assert not missing, f"{section}: documented but never printed: {missing}"


MASTER = {
    "id2name": {"31": "DKI JAKARTA", "3171": "JAKARTA PUSAT", "317101": "GAMBIR"},
    "tps": {"3171011001": [3]},
}
TPS1, TPS2 = "3171011001001", "3171011001002"
SCAN = "ab" * 32


def _form(seed: int, tps: str, form: str = "PPWP", **changes: Any) -> dict[str, Any]:
    from hub.shared import generator

    f = generator.make_form(random.Random(seed), tps, form, operator="Operator Uji")
    f.update(changes)
    return f


class _Cli:
    """Run c1hub / c1client in-process, off the event loop (their asyncio.run needs a thread)."""

    def __init__(self) -> None:
        self.runner = CliRunner(env=dict.fromkeys(_HELP_ENV))

    async def __call__(self, prog: str, *args: str, code: int = 0, stdin: str = "") -> str:
        from client.cli import main as client_main
        from hub.cli import main as hub_main

        group = hub_main if prog == "c1hub" else client_main
        r = await asyncio.to_thread(self.runner.invoke, group, list(args), input=stdin)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        assert r.exit_code == code, f"{prog} {' '.join(args)}: exit {r.exit_code}\n{r.output}"
        return r.stdout


async def test_json_output_md_matches_what_the_commands_print(tmp_path: Path) -> None:
    from hub.config import HubConfig
    from hub.forwarder import Forwarder
    from hub.node import Hub, init_data_dir, open_offline
    from hub.protocol import clock, enroll, ingest, record
    from hub.protocol.identity import Identity
    from hub.store import Rejection
    from hub.upstream import HttpUpstream
    from tests.helpers import chain

    run = _Cli()
    wilayah = tmp_path / "wilayah.json"
    wilayah.write_text(json.dumps(MASTER))
    room_dir, root_dir, laptop = tmp_path / "room", tmp_path / "root", str(tmp_path / "laptop")
    init_data_dir(room_dir, "Ruang Uji")
    init_data_dir(root_dir, "Nasional Uji")
    room = Hub(HubConfig(data_dir=room_dir, host="127.0.0.1", port=0, mdns=False, wilayah=wilayah))
    await room.start()
    try:
        assert room.url is not None
        # A laptop through the real CLI: a clean form, a flagged one, two forms of one TPS that
        # disagree on users (R13), one scan under two TPS (R12), and a malformed value.
        clean = _form(1, TPS1)
        flagged = _form(2, TPS2, scans=[SCAN])
        flagged["sah"] += 1
        other_form = _form(3, TPS1, "DPR", scans=[SCAN])
        other_form["pengguna_total"] = dict(other_form["pengguna_total"], j=999)
        lines = [json.dumps(f) for f in (clean, flagged, other_form)] + ['{"form": "X"}']
        outputs: dict[str, list[Any]] = {}
        outputs["`c1client init --json`"] = [
            json.loads(await run("c1client", "init", "--data", laptop, "--name", "Meja", "--json"))
        ]
        entered = await run("c1client", "enter", "--data", laptop, "--json", "-", code=1,
                            stdin="\n".join(lines) + "\n")  # fmt: skip
        outputs["`c1client enter --json`"] = [json.loads(entered)]
        sync = await run("c1client", "sync", "--data", laptop, "--once", "--json", "--hub",
                         room.url)  # fmt: skip
        outputs["`c1client sync --json`"] = [json.loads(sync)]

        # Two in-process laptops: one disagrees on TPS1 (a conflict), one agrees on TPS2.
        b, c = Identity.generate(), Identity.generate()
        conflicting = dict(clean, suara=dict(clean["suara"], **{"1": clean["suara"]["1"] + 5}))
        await room.service.push([r.raw for r in chain(b, [conflicting])])
        await room.service.push([r.raw for r in chain(c, [flagged])])
        for row in json.loads(await run("c1hub", "devices", "--data", str(room_dir), "--json")):
            await run("c1hub", "approve", "--data", str(room_dir), row["id"])
        again = await run("c1client", "sync", "--data", laptop, "--once", "--json", "--hub",
                          room.url)  # fmt: skip
        outputs["`c1client sync --json`"].append(json.loads(again))

        # The upstream block of a hub that forwards, with one refusal from upstream.
        store = room.service.store
        room.service.upstream = Forwarder(
            store, HttpUpstream("http://127.0.0.1:9"), room.ident, room.name
        )
        await store.reject_upstream(
            Rejection(store.devices[b.public].id, 1, "device_revoked", "revoked", clock.now_s())
        )
        status = json.loads(await run("c1hub", "status", "--data", str(room_dir), "--json"))
        assert status["conflicts"] and status["scan_reuse"] and status["users_mismatch"]
        devices = json.loads(await run("c1hub", "devices", "--data", str(room_dir), "--json"))

        # The root: the room hub enrolled and approved there, the room's stream pushed with
        # its endorsement chain.
        async with open_offline(HubConfig(data_dir=root_dir, root=True, mdns=False)) as root:
            now = clock.now_s()
            await root.enroll(
                enroll.make_request(room.ident, root.ident.public, room.name, "hub", now)
            )
            await root.approve(room.ident.node_id, "hub")
            raws = [raw async for _d, _s, raw in store.iter_records()]
            origins = list({record.decode(raw).origin for raw in raws})
            await root.push(raws, store.chain_for(origins))
            root_status = root.status_now()
            assert root_status["totals"] and root_status["hubs"]
        outputs["`c1hub status --json`"] = [status, root_status]
        outputs["`c1hub devices --json`"] = [devices]
        failed = await run("c1hub", "status", "--data", str(tmp_path / "no"), "--json", code=1)
        outputs["Errors (`c1hub ... --json`)"] = [json.loads(failed)]

        outputs["`c1client list --json`"] = [
            json.loads(line)
            for line in (await run("c1client", "list", "--data", laptop, "--json")).splitlines()
        ]
        outputs["`c1client show SEQ --json`"] = [
            json.loads(await run("c1client", "show", "2", "--data", laptop, "--json"))
        ]
        outputs["`c1client status --json`"] = [
            json.loads(await run("c1client", "status", "--data", laptop, "--json"))
        ]
        verified = json.loads(await run("c1client", "verify", "--data", laptop, "--json"))
        outputs["`c1client verify --json`"] = [verified]
        outputs["Errors (`c1client ... --json`)"] = [
            json.loads(await run("c1client", "show", "99", "--data", laptop, "--json", code=1))
        ]

        bundle = tmp_path / "room.c1b"
        await run("c1hub", "export", "--data", str(room_dir), "--format", "bundle",
                  "--out", str(bundle))  # fmt: skip
        outputs["`c1hub verify BUNDLE --json`"] = [
            json.loads(await run("c1hub", "verify", str(bundle), "--json"))
        ]
        jsonl = await run("c1hub", "export", "--data", str(room_dir), "--format", "jsonl")
        outputs["`c1hub export --format jsonl`"] = [json.loads(x) for x in jsonl.splitlines()]
        csv_text = await run("c1hub", "export", "--data", str(room_dir), "--format", "csv")
    finally:
        await room.stop()

    # Parts no clean run prints, taken from the objects the commands print them from.
    from client.errors import ClientError
    from client.store import Problem

    err = ClientError("store failed", "penyimpanan gagal").to_dict()
    outputs["`c1client enter --json`"].append({"error": err})
    outputs["`c1client verify --json`"].append(
        dict(verified, ok=False, problems=[Problem(3, "bad_signature", "x", "y").to_dict()])
    )
    from client.errors import SyncError
    from client.sync import SyncReport

    round_ = SyncReport()
    round_.failed("http://192.168.1.10:8470", SyncError("no answer", "tidak ada jawaban",
                                                        code="unreachable"))  # fmt: skip
    outputs["`c1client sync --json`"].append({"errors": round_.errors})
    rejected = ingest.Outcome(0, ingest.REJECT, b"\0" * 32, 5, "out_of_order", "send seq 4 first")
    outputs["`c1client sync --json`"].append({"rejected": [rejected.to_dict()]})
    backoff = dict(status["upstream"], retry_in_s=1.5, retry_at=clock.now())
    outputs["`c1hub status --json`"].append({"upstream": backoff})

    assert set(_json_doc()) == set(outputs) | {"`c1hub export --format csv`"}
    for section, objs in outputs.items():
        check_json_section(section, objs)

    header = next(csv.reader(io.StringIO(csv_text)))
    doc = _json_doc()["`c1hub export --format csv`"]
    assert [k for k, _ in doc] == header, "CSV columns differ from docs/json-output.md"


def test_json_output_md_checker_can_fail() -> None:
    with pytest.raises(AssertionError, match="not in docs"):
        check_json_section("`c1client init --json`", [{"node_id": "A", "surprise": 1}])
    with pytest.raises(AssertionError, match="documented as"):
        check_json_section(
            "`c1client init --json`",
            [{"node_id": 5, "name": "n", "data_dir": "d", "created": True}],
        )
    with pytest.raises(AssertionError, match="never printed"):
        check_json_section("`c1client init --json`", [{"node_id": "A"}])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        CLI_MD.write_text(cli_reference(), encoding="utf-8")
        print(f"wrote {CLI_MD.relative_to(REPO)}")
    else:
        print("usage: python -m tests.test_docs --write   (regenerates docs/cli.md)")
        sys.exit(2)
