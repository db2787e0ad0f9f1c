"""Admin calls only from the hub machine itself (``hub.access``): not from a LAN peer, not
from a web page (DNS rebinding, cross-site POSTs), and on the admin socket of a running hub
(``hub.datadir``), whose token can be rotated under it."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.access import loopback_host
from hub.cli.admin import RemoteHub, admin
from hub.config import HubConfig
from hub.datadir import ADMIN_SOCKET, new_token
from hub.errors import HubError, NotPrivate
from hub.node import Hub, init_data_dir
from hub.protocol import enroll
from hub.protocol.identity import Identity
from hub.shared.netif import lan_addresses

from .conftest import TOKEN, Served

AUTH = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}


async def _approve(hub: Served, laptop: Identity, headers: dict[str, str]) -> tuple[int, Any]:
    async with hub.http.post(f"/v1/devices/{laptop.node_id}/approve", headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("localhost:8470", True),
        ("LOCALHOST.:8470", True),
        ("127.0.0.1:8470", True),
        ("127.1.2.3", True),
        ("[::1]:8470", True),
        ("evil.example:8470", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.evil.example", False),
        ("192.0.2.2:8470", False),
        ("", False),
    ],
)
def test_loopback_host_names(host: str, local: bool) -> None:
    assert loopback_host(host) is local


async def test_admin_from_a_lan_peer_is_refused_whatever_its_headers_say(hub: Served) -> None:
    """The hub listens on 127.0.0.1 only; the client connects from this machine's LAN
    address, so the hub sees a non-loopback peer without any packet leaving the machine."""
    lan = lan_addresses()
    if not lan:
        pytest.skip("LAN-peer refusal NOT RUN: this machine has no non-loopback IPv4 address")
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    url = hub.http.make_url(f"/v1/devices/{laptop.node_id}/approve")
    lying = {**AUTH, "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
             "Forwarded": "for=127.0.0.1", "Host": "127.0.0.1"}  # fmt: skip
    connector = aiohttp.TCPConnector(local_addr=(lan[0], 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        for headers in (AUTH, lying):
            async with http.post(url, headers=headers) as r:
                body = await r.json()
                assert r.status == 403 and body["error"]["code"] == "admin_local_only", body
    assert hub.store.devices[laptop.public].state == "pending"
    status, body = await _approve(hub, laptop, AUTH)  # the same call from loopback is taken
    assert status == 200 and body["state"] == "approved"


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},  # DNS rebinding: a foreign name that resolves to 127.0.0.1
        {"Host": "evil.example:8470"},
        {"Origin": "http://evil.example"},  # a cross-site POST from a page in the browser
        {"Origin": "null"},
        {"Origin": "http://localhost:1"},  # another program's page on this machine
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=lambda h: "-".join(f"{k}={v}" for k, v in h.items()),
)
async def test_admin_from_a_foreign_web_page_is_refused(
    hub: Served, headers: dict[str, str]
) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    status, body = await _approve(hub, laptop, {**AUTH, **headers})
    assert status == 403 and body["error"]["code"] == "admin_local_only", body
    assert hub.store.devices[laptop.public].state == "pending"


async def test_admin_from_the_hubs_own_page_is_taken(hub: Served) -> None:
    """What the coordinator's browser sends from a page of the hub at 127.0.0.1."""
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    host = f"127.0.0.1:{hub.http.port}"
    page = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    status, body = await _approve(hub, laptop, {**AUTH, **page})
    assert status == 200 and body["state"] == "approved", body


async def test_a_local_page_still_needs_the_token(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    status, body = await _approve(hub, laptop, {"Host": "localhost"})
    assert status == 401 and body["error"]["code"] == "unauthorized", body


# -- the admin socket of a running hub ----------------------------------------------------


def _config(data: Path) -> HubConfig:
    return HubConfig(data_dir=data, host="127.0.0.1", port=0, mdns=False)


async def _admin_call(data: Path, method: str, path: str, token: str | None) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connector = aiohttp.UnixConnector(path=str(data / ADMIN_SOCKET))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.request(method, "http://localhost" + path, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_a_running_hub_takes_admin_calls_on_its_private_socket(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    init_data_dir(data, "Test Hub")
    token = (data / "admin.token").read_text().strip()
    sock = data / ADMIN_SOCKET
    async with Hub(_config(data)):
        st = sock.lstat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        status, body = await _admin_call(data, "GET", "/v1/devices", None)
        assert status == 200 and body == []
        status, body = await _admin_call(data, "POST", "/v1/devices/AAAA-AAAA-AAAA/approve", None)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        status, body = await _admin_call(data, "POST", "/v1/devices/AAAA-AAAA-AAAA/approve", token)
        assert status == 404 and body["error"]["code"] == "not_found"  # past both checks
        # A rotated token is taken at the next call, and the old one is refused.
        new_token(data)
        status, body = await _admin_call(data, "POST", "/v1/devices/AAAA-AAAA-AAAA/approve", token)
        assert status == 401
        # A token chmod-ed open under the running hub stops admin calls, with the fix named.
        fresh = (data / "admin.token").read_text().strip()
        (data / "admin.token").chmod(0o644)
        status, body = await _admin_call(data, "POST", "/v1/devices/AAAA-AAAA-AAAA/approve", fresh)
        assert status == 401 and "chmod 600" in body["error"]["reason"], body
        (data / "admin.token").chmod(0o600)
        status, body = await _admin_call(data, "POST", "/v1/devices/AAAA-AAAA-AAAA/approve", fresh)
        assert status == 404
    assert not sock.exists()


async def test_a_stale_admin_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    init_data_dir(data, "Test Hub")
    sock_path = data / ADMIN_SOCKET
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))  # bound, never listening: what a killed hub leaves behind
    stale.close()
    async with Hub(_config(data)):
        status, _ = await _admin_call(data, "GET", "/v1/devices", None)
        assert status == 200
    live = socket.socket(socket.AF_UNIX)
    try:
        live.bind(str(sock_path))
        live.listen(1)  # something answers there: not ours to remove
        with pytest.raises(HubError, match="already answers"):
            await Hub(_config(data)).start()
        assert sock_path.exists()
    finally:
        live.close()
        sock_path.unlink()
    sock_path.write_text("not a socket")
    with pytest.raises(HubError, match="not a socket"):
        await Hub(_config(data)).start()
    assert sock_path.read_text() == "not a socket"


async def test_a_deep_data_folder_still_gets_its_admin_socket(tmp_path: Path) -> None:
    """A Unix socket address holds at most 107 bytes; a deeper folder is reached through
    /proc/self/fd."""
    data = tmp_path.joinpath(*["d" * 40] * 3, "hub")
    assert len(os.fsencode(data / ADMIN_SOCKET)) > 108
    init_data_dir(data, "Test Hub")
    async with Hub(_config(data)) as hub:
        assert stat.S_ISSOCK((data / ADMIN_SOCKET).lstat().st_mode)
        laptop = Identity.generate()
        await hub.service.enroll(enroll.make_request(laptop, hub.ident.public, "L", "laptop", 1))
        async with admin(data) as remote:  # what `c1hub approve` does
            assert isinstance(remote, RemoteHub)
            assert (await remote.approve(laptop.node_id, None)).state == "approved"
    assert not (data / ADMIN_SOCKET).exists()


@pytest.mark.parametrize(("name", "mode", "fix"), [
    (".", 0o750, "chmod 700"), (".", 0o705, "chmod 700"),
    ("admin.token", 0o640, "chmod 600"), ("admin.token", 0o602, "chmod 600"),
])  # fmt: skip
def test_a_hub_refuses_a_folder_or_token_open_to_others(
    tmp_path: Path, name: str, mode: int, fix: str
) -> None:
    data = tmp_path / "hub"
    init_data_dir(data, "Test Hub")
    (data / name).chmod(mode)
    with pytest.raises(NotPrivate, match=fix):
        Hub(_config(data))
