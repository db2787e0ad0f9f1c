"""``c1hub``: the room hub, the national stand-in, enrollment and status.

Thin: parse -> HubConfig -> ``asyncio.run(...)``. Admin commands (devices, approve, revoke,
status) work on the hub's machine with ``--data``: through the running hub's HTTP API when one
is serving that folder, otherwise directly on its store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hub import __version__
from hub.config import SETTINGS_BY_NAME, HubConfig
from hub.errors import HubError
from hub.protocol.discovery_names import parse_interfaces
from hub.shared import keyfile

log = logging.getLogger(__name__)

DATA_HELP = "Hub data folder (env C1HUB_DATA)."
F = TypeVar("F", bound=Callable[..., Any])


def _data_option(f: Any) -> Any:
    return click.option(
        "--data",
        "data_dir",
        envvar="C1HUB_DATA",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=DATA_HELP,
    )(f)


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="c1hub")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """c1hub — the room hub for C1 (C.Hasil) tally entry.

    Laptops running c1client push their signed entries here over the room's LAN; the hub
    verifies them, stores them durably, gives signed receipts, shows the room's progress and
    forwards one consolidated stream upstream.
    """
    _setup_logging(verbose)


@main.command()
@_data_option
@click.option("--name", required=True, help="A name the room will recognise, e.g. 'Hotel A R.2'.")
def init(data_dir: Path, name: str) -> None:
    """Create the hub's key and data folder (safe to run twice)."""
    from hub.node import init_data_dir

    ident = init_data_dir(data_dir, name)
    click.echo(f"hub id: {ident.node_id}")
    click.echo(f"data:   {data_dir}")


def _setting(name: str, *flags: str, **kw: Any) -> Callable[[F], F]:
    """A click option whose default and help come from ``hub.config.SETTINGS`` (declared once)."""
    st = SETTINGS_BY_NAME[name]
    kw.setdefault("help", st.help)
    if st.default is not None:
        kw.setdefault("default", st.default)
        kw.setdefault("show_default", True)
    return click.option(*flags, name, **kw)


def _serve_options(f: Any) -> Any:
    opts = [
        _data_option,
        _setting("host", "--host"),
        _setting("port", "--port", type=click.IntRange(0, 65535)),
        _setting("mdns", "--mdns/--no-mdns"),
        _setting("mdns_interfaces", "--mdns-interface"),
        _setting("wilayah", "--wilayah",
                 type=click.Path(dir_okay=False, exists=True, path_type=Path)),
        _setting("max_batch", "--max-batch", type=click.IntRange(1)),
        _setting("max_body", "--max-body", type=click.IntRange(1024)),
        _setting("approve_all", "--approve-all", is_flag=True, hidden=True),
        _setting("examine_workers", "--examine-workers",
                 type=click.Choice(["processes", "threads"])),
    ]  # fmt: skip
    for o in reversed(opts):
        f = o(f)
    return f


def _config(**kw: Any) -> HubConfig:
    kw["mdns_interfaces"] = (
        tuple(parse_interfaces(kw["mdns_interfaces"]) or ()) or None
        if kw.get("mdns_interfaces")
        else None
    )
    try:
        return HubConfig(**kw)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except HubError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # port in use, unreadable or loose-mode key file, ...: say it plainly
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


@main.command()
@_serve_options
@_setting("upstream", "--upstream")
@_setting("upstream_kbps", "--upstream-kbps", type=click.IntRange(0))
def serve(**kw: Any) -> None:
    """Run the room hub until Ctrl-C."""
    from hub.node import serve_forever

    _run(serve_forever(_config(**kw)))


@main.command()
@_serve_options
def national(**kw: Any) -> None:
    """Run the national stand-in: a hub with no upstream, the root of the tree."""
    from hub.node import serve_forever

    _run(serve_forever(_config(root=True, **kw)))


# -- admin commands ---------------------------------------------------------------------------


async def _admin(data_dir: Path, method: str, path: str) -> Any:
    """Call the running hub's admin API, or do the same offline on its store."""
    from hub.node import Hub, admin_token, read_runtime

    info = read_runtime(data_dir)
    if info and info.get("url"):
        import aiohttp

        headers = {"Authorization": f"Bearer {admin_token(data_dir)}", "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as s,
            s.request(method, info["url"] + path, headers=headers) as r,
        ):
            data = await r.json()
            if r.status >= 400:
                raise HubError(data.get("error", {}).get("reason", f"HTTP {r.status}"))
            return data
    hub = Hub(HubConfig(data_dir=data_dir, mdns=False))
    await hub.open_offline()
    try:
        from hub import status as st

        store = hub._store()
        if path == "/v1/status":
            return hub.status()
        if path == "/v1/devices":
            return st.device_list(store.snapshot(), hub.ident.public)
        dev_id, action = path.split("/")[3:5]
        d = store.find_device(dev_id)
        if d is None:
            raise HubError(f"no device {dev_id!r} at this hub; see c1hub devices --data {data_dir}")
        d = await (hub.approve(d) if action == "approve" else hub.revoke(d))
        return hub.device_row(d)
    finally:
        await hub.stop()


def _print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@main.command()
@_data_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable shape, see docs).")
def devices(data_dir: Path, as_json: bool) -> None:
    """List enrolled laptops and hubs with their state and comparison code.

    JSON: a list of {"id", "name", "state": "pending"|"approved"|"revoked", "code", ...}.
    """
    rows = _run(_admin(data_dir, "GET", "/v1/devices"))
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("no devices yet: start c1client sync on a laptop")
        return
    click.echo(f"{'ID':<16}{'STATE':<10}{'CODE':<9}{'ENTRIES':>8}  NAME")
    for r in rows:
        mark = "  FORK!" if r["forked"] else ""
        click.echo(
            f"{r['id']:<16}{r['state']:<10}{r['code']:<9}{r['entries']:>8}  {r['name']}{mark}"
        )
    pending = [r for r in rows if r["state"] == "pending"]
    if pending:
        click.echo(
            f"\n{len(pending)} pending: compare each code with the one on that laptop's (or "
            "hub's) screen, then "
            f"c1hub approve --data {data_dir} ID"
        )


@main.command()
@_data_option
@click.argument("device_id")
def approve(data_dir: Path, device_id: str) -> None:
    """Approve a pending device (after comparing the code on both screens)."""
    row = _run(_admin(data_dir, "POST", f"/v1/devices/{device_id}/approve"))
    click.echo(f"approved {row['id']} ({row['name']}), code {row['code']}")


@main.command()
@_data_option
@click.argument("device_id")
def revoke(data_dir: Path, device_id: str) -> None:
    """Revoke a device: its entries from now on are refused; earlier ones stay."""
    row = _run(_admin(data_dir, "POST", f"/v1/devices/{device_id}/revoke"))
    click.echo(f"revoked {row['id']} ({row['name']}) after seq {row['revoked_after_seq']}")


@main.command()
@_data_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable shape, see docs).")
def status(data_dir: Path, as_json: bool) -> None:
    """What the hub holds: entries, TPS by status, flags, forks, devices, progress."""
    s = _run(_admin(data_dir, "GET", "/v1/status"))
    if as_json:
        _print_json(s)
        return
    from hub.render import status_text

    click.echo(status_text(s))


@main.command()
@_data_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "bundle"]),
    default="csv",
    show_default=True,
    help="csv/jsonl for spreadsheets; bundle = signed, verifiable.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file (default: stdout for csv/jsonl; required for bundle).",
)
def export(data_dir: Path, fmt: str, out: Path | None) -> None:
    """Export every stored entry: CSV, JSON lines, or a signed bundle (c1hub verify).

    Works while the hub runs (it reads a consistent snapshot) or while it is stopped.
    """  # fmt: skip
    from hub import export as ex
    from hub.protocol import clock
    from hub.shared.keyfile import KEY_FILE

    try:
        if fmt == "bundle":
            if out is None:
                raise click.UsageError("a bundle is binary: give --out FILE.c1b")
            ident = keyfile.load(data_dir / KEY_FILE)
            name_file = data_dir / "name"
            name = name_file.read_text().strip() if name_file.exists() else ""
            with open(out, "wb") as f:
                n = ex.export_bundle(data_dir, ident, name, f, clock.now_s())
        else:
            write = ex.export_csv if fmt == "csv" else ex.export_jsonl
            if out is None:
                n = write(data_dir, sys.stdout)
            else:
                with open(out, "w", encoding="utf-8", newline="") as f:
                    n = write(data_dir, f)
    except FileNotFoundError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"exported {n} entries" + (f" to {out}" if out else ""), err=True)


@main.command()
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable shape, see docs).")
def verify(bundle: Path, as_json: bool) -> None:
    """Check a signed bundle offline: the hub's signature, every entry's signature and chain.

    Exit 0 if everything verifies, 1 otherwise (each problem is listed).
    JSON: {"ok", "hub", "name", "created_at", "records", "origins", "endorsements",
    "problems": [str]}.
    """
    from hub.export import verify_bundle

    with open(bundle, "rb") as f:
        rep = verify_bundle(f)
    if as_json:
        _print_json(rep.to_dict())
    else:
        click.echo(f"bundle from hub {rep.hub_id} ({rep.name}): {rep.records} entries from "
                   f"{rep.origins} devices, {rep.endorsements} endorsements")  # fmt: skip
        for p in rep.problems:
            click.echo(f"PROBLEM: {p}")
        click.echo("OK: every signature and chain verifies" if rep.ok else "FAILED")
    sys.exit(0 if rep.ok else 1)


@main.command()
@click.option(
    "--laptops",
    default=4,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Simulated operator laptops.",
)
@click.option(
    "--forms",
    default=240,
    show_default=True,
    type=click.IntRange(1, 200_000),
    help="Distinct forms to type (plus double entries).",
)
@click.option(
    "--wilayah",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Polling-station master: real DKI Jakarta TPS codes and R11 checks.",
)
@click.option("--seed", default=2024, show_default=True, type=int, help="Workload seed.")
@click.option(
    "--outage/--no-outage",
    default=True,
    show_default=True,
    help="Take the national server down midway and bring it back.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's data folders here (default: a temp folder, removed).",
)
@click.option(
    "--pace",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0, 10),
    help="Seconds between typing rounds (0 = as fast as possible).",
)
@click.pass_context
def demo(ctx: click.Context, /, **kw: Any) -> None:
    """A whole room on this machine: national stand-in, room hub, laptops, an outage.

    Ends by checking that the national side holds exactly the entries the laptops made, every
    signature verified; exits 1 if not.
    """  # fmt: skip
    from hub.demo import DemoOptions, main_sync

    if not ctx.parent or not ctx.parent.params.get("verbose"):
        for name in ("hub", "client"):  # the demo prints its own story; -v shows the logs
            logging.getLogger(name).setLevel(logging.ERROR)
    sys.exit(main_sync(DemoOptions(**kw)))


if __name__ == "__main__":
    main()
