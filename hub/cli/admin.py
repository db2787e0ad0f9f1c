"""``c1hub devices | approve | revoke | status``: the coordinator's commands.

They work on the hub's machine with ``--data``: through the running hub's admin socket
(``DATA/admin.sock``, a Unix socket: the same HTTP API, with the admin token from the data
folder, never over TCP) when a hub serves that folder, otherwise directly on its store
through the hub service (``hub.node.open_offline``), which keeps the folder locked meanwhile.
Both ways answer with the same result types. A data folder or admin token open to other
users is refused (exit 2, with the ``chmod`` to run).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import click

from hub.cli.base import data_option, json_option, main, print_json, run
from hub.config import HubConfig
from hub.datadir import ADMIN_SOCKET, read_token, socket_path
from hub.errors import HubError
from hub.protocol.errors import ProtocolError
from hub.protocol.text import escape
from hub.protocol.trust import ROLE_NOT_CONFIRMED
from hub.render import status_text
from hub.service import HubService
from hub.status import PAGE_MAX, DeviceInfo

ADMIN_TIMEOUT = 30.0
T = TypeVar("T")


class Admin(Protocol):
    async def devices(self, limit: int | None = None, after: str = "") -> list[DeviceInfo]: ...
    async def approve(self, device_id: str, role: str | None) -> DeviceInfo: ...
    async def revoke(self, device_id: str) -> DeviceInfo: ...
    async def status(self) -> dict[str, Any]: ...


class RemoteHub:
    """The admin API of the hub serving the folder (JSON over HTTP on its admin socket,
    admin token)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str):
        self.session = session
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def _call(self, method: str, path: str, **params: str) -> Any:
        url = self.url + path
        async with self.session.request(method, url, headers=self.headers, params=params) as r:
            data = await r.json()
            if r.status >= 400:
                err = data.get("error", {}) if isinstance(data, dict) else {}
                raise ProtocolError(
                    str(err.get("reason") or f"HTTP {r.status}"), code=str(err.get("code", "http"))
                )
            return data

    async def devices(self, limit: int | None = None, after: str = "") -> list[DeviceInfo]:
        page = {"limit": str(limit)} if limit is not None else {}
        page.update({"after": after} if after else {})
        return [DeviceInfo.from_dict(d) for d in await self._call("GET", "/v1/devices", **page)]

    async def approve(self, device_id: str, role: str | None) -> DeviceInfo:
        path, params = f"/v1/devices/{device_id}/approve", {"role": role} if role else {}
        return DeviceInfo.from_dict(await self._call("POST", path, **params))

    async def revoke(self, device_id: str) -> DeviceInfo:
        return DeviceInfo.from_dict(await self._call("POST", f"/v1/devices/{device_id}/revoke"))

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = await self._call("GET", "/v1/status")
        return status


class LocalHub:
    """The same operations on the store of a hub that is not running."""

    def __init__(self, service: HubService):
        self.service = service

    async def devices(self, limit: int | None = None, after: str = "") -> list[DeviceInfo]:
        return await self.service.devices(limit, after)

    async def approve(self, device_id: str, role: str | None) -> DeviceInfo:
        return await self.service.approve(device_id, role)

    async def revoke(self, device_id: str) -> DeviceInfo:
        return await self.service.revoke(device_id)

    async def status(self) -> dict[str, Any]:
        return await self.service.status(max_age=0)


@contextlib.asynccontextmanager
async def admin(data_dir: Path) -> AsyncIterator[Admin]:
    """The running hub of ``data_dir`` (through its admin socket) if there is one, else its
    store, offline."""
    from hub.node import open_offline, read_runtime

    info = read_runtime(data_dir)
    if info is not None:  # a hub holds the folder
        token = read_token(data_dir)
        if not (data_dir / ADMIN_SOCKET).exists():
            raise HubError(
                f"the hub serving {data_dir} (pid {info.get('pid', '?')}) has no admin socket "
                f"{data_dir / ADMIN_SOCKET}: it is still starting, or it is an older c1hub "
                "(restart it)"
            )
        timeout = aiohttp.ClientTimeout(total=ADMIN_TIMEOUT)
        with socket_path(data_dir) as path:
            connector = aiohttp.UnixConnector(path=path)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:
                yield RemoteHub(s, "http://localhost", token)
    else:
        async with open_offline(HubConfig(data_dir=data_dir, mdns=False)) as service:
            yield LocalHub(service)


def on_hub(data_dir: Path, op: Callable[[Admin], Awaitable[T]], as_json: bool = False) -> T:
    """Run one admin operation on the hub of ``data_dir`` (``run``: errors are messages)."""

    async def go() -> T:
        async with admin(data_dir) as hub:
            return await op(hub)

    return run(go(), as_json)


async def all_devices(hub: Admin, after: str = "") -> list[DeviceInfo]:
    """Every device (after ``after``), asked for a page of ``PAGE_MAX`` at a time: a root with
    tens of thousands of devices answers each call in bounded time."""
    rows: list[DeviceInfo] = []
    while True:
        page = await hub.devices(PAGE_MAX, after)
        rows += page
        if len(page) < PAGE_MAX:
            return rows
        after = page[-1].id


@main.command()
@data_option
@json_option
@click.option(
    "--limit",
    type=click.IntRange(1, PAGE_MAX),
    default=None,
    help=f"List at most N devices (one page, up to {PAGE_MAX}). Default: all of them.",
)
@click.option(
    "--after",
    metavar="ID",
    default="",
    help="Start after this device (node id or public key): the last ID of the previous page.",
)
def devices(data_dir: Path, as_json: bool, limit: int | None, after: str) -> None:
    """List enrolled laptops and hubs with their state and comparison code, oldest first.

    JSON: a list of {"id", "name", "role": "laptop"|"hub", "state":
    "pending"|"approved"|"revoked", "code", ...}. With --limit, one page; the next one
    starts --after the last ID listed.
    """

    def op(hub: Admin) -> Awaitable[list[DeviceInfo]]:
        return all_devices(hub, after) if limit is None else hub.devices(limit, after)

    rows = on_hub(data_dir, op, as_json)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("no devices yet: start c1client sync on a laptop")
        return
    click.echo(f"{'ID':<16}{'ROLE':<8}{'STATE':<10}{'CODE':<21}{'ENTRIES':>8}  NAME")
    for r in rows:
        mark = "  FORK!" if r.forked else ""
        click.echo(
            f"{r.id:<16}{r.role:<8}{r.state:<10}{r.code:<21}{r.entries:>8}  {escape(r.name)}{mark}"
        )
    if limit is not None and len(rows) == limit:
        click.echo(f"\nmore: c1hub devices --data {data_dir} --limit {limit} --after {rows[-1].id}")
    pending = [r for r in rows if r.state == "pending"]
    if pending:
        click.echo(
            f"\n{len(pending)} pending: compare each code with the one on that laptop's (or "
            "hub's) screen, then "
            f"c1hub approve --data {data_dir} ID"
        )


@main.command()
@data_option
@click.option(
    "--as",
    "role",
    type=click.Choice(["laptop", "hub"]),
    default=None,
    help="The device's role, as it enrolled. Required for a hub: an approved hub vouches for "
    "the devices it approves, and their entries count here without your approval.",
)
@click.argument("device_id")
def approve(data_dir: Path, role: str | None, device_id: str) -> None:
    """Approve a pending device (after comparing the code on both screens).

    A hub is approved only with --as hub: approving a hub means trusting every device it
    approves. Exit 2 when the role is not the device's.
    """

    async def go(hub: Admin) -> DeviceInfo:
        try:
            return await hub.approve(device_id, role)
        except ProtocolError as exc:
            if exc.code == ROLE_NOT_CONFIRMED:
                raise click.UsageError(exc.message) from None
            raise

    d = on_hub(data_dir, go)
    click.echo(f"approved {d.id} ({escape(d.name)}) as {d.role}, code {d.code}")


@main.command()
@data_option
@click.argument("device_id")
def revoke(data_dir: Path, device_id: str) -> None:
    """Revoke a device: its entries from now on are refused; earlier ones stay."""

    d = on_hub(data_dir, lambda hub: hub.revoke(device_id))
    click.echo(f"revoked {d.id} ({escape(d.name)}) after seq {d.revoked_after_seq}")


@main.command()
@data_option
@json_option
def status(data_dir: Path, as_json: bool) -> None:
    """What the hub holds: entries, TPS by status, flags, forks, devices, progress."""

    s = on_hub(data_dir, lambda hub: hub.status(), as_json)
    if as_json:
        print_json(s)
        return
    click.echo(status_text(s))
