"""The admin token and the data folder (finding 7): the token must not cross the LAN in
clear, must be kept like ``node.key``, and must be rotatable; the data folder must not be
readable by other users of the hub machine.

What the LAN would see is simulated on loopback: a small recording relay on 127.0.0.2 stands
where the hub's LAN address would be, and records every byte the admin command sends there.
"""

from __future__ import annotations

import contextlib
import json
import socket
import stat
import threading
from pathlib import Path

import pytest

from hub.protocol.identity import Identity, fingerprint
from tests.integration.procs import C1HUB, HubProc, Procs, run
from tests.security import forge
from tests.security.wire import MSGPACK, call, hello


class RecordingRelay:
    """A TCP relay on ``host`` that forwards to ``target`` and keeps a copy of every byte the
    clients send. Started and stopped by the test (threads joined on ``close``)."""

    def __init__(self, host: str, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.2)
        self.addr = self.listener.getsockname()
        self.seen = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, name="relay-accept")
        self._accept.start()

    @property
    def url(self) -> str:
        return f"http://{self.addr[0]}:{self.addr[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=30)
            self._socks += [client, upstream]
            for src, dst, record in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=self._pump, args=(src, dst, record), name="relay")
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        src.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if record:
                with self._lock:
                    self.seen += data
            try:
                dst.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._accept.join(timeout=10)
        self.listener.close()
        for t in self._threads:
            t.join(timeout=10)
        for s in self._socks:
            s.close()


def _loopback_alias_usable() -> bool:
    try:
        with socket.create_server(("127.0.0.2", 0)):
            return True
    except OSError:
        return False


def test_admin_commands_never_send_the_token_over_tcp(procs: Procs) -> None:
    if not _loopback_alias_usable():
        pytest.skip("finding 7 token-on-the-wire test NOT RUN: cannot bind 127.0.0.2 here")
    hub = procs.hub("hub").start()
    token = (hub.data / "admin.token").read_text().strip()
    laptop = Identity.generate()
    call(hub.port, "POST", "/v1/enroll", forge.enrollment(laptop, hello(hub.url)["public"]),
         {"Content-Type": MSGPACK})  # fmt: skip
    relay = RecordingRelay("127.0.0.2", ("127.0.0.1", hub.port))
    try:
        # The hub's runtime file names an address that is not this machine's loopback
        # listener, as with `--host <LAN IP>`: the relay stands in for that LAN address.
        runtime = hub.data / "hub.json"
        info = json.loads(runtime.read_text())
        info["url"] = relay.url
        runtime.write_text(json.dumps(info))
        run(C1HUB, "approve", "--data", hub.data, fingerprint(laptop.public))
        run(C1HUB, "revoke", "--data", hub.data, fingerprint(laptop.public))
    finally:
        relay.close()
    assert token.encode() not in relay.seen, "the admin token crossed the (simulated) LAN"
    assert b"Authorization" not in relay.seen
    (dev,) = hub.devices()
    assert dev["state"] == "revoked"  # the commands did reach the hub, another way


def test_a_world_readable_admin_token_is_refused(procs: Procs) -> None:
    hub = procs.hub("hub")
    token = hub.data / "admin.token"
    token.chmod(0o644)
    p = run(C1HUB, "devices", "--data", hub.data, check=False)
    assert p.returncode != 0 and "admin.token" in p.stderr, (p.stdout, p.stderr)
    with pytest.raises(AssertionError, match=r"admin\.token"):
        hub.start(timeout=30)
    token.chmod(0o600)
    hub.start()


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_init_makes_an_existing_open_folder_private(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    data.mkdir()
    data.chmod(0o755)
    run(C1HUB, "init", "--data", data, "--name", "Hotel A")
    run(C1HUB, "devices", "--data", data)  # opens (creates) the store
    assert _private(data), oct(data.stat().st_mode)
    files = [p for p in data.iterdir() if p.name.startswith("hub.db") or p.suffix == ".token"]
    assert any(p.name == "hub.db" for p in files), files
    loose = {p.name: oct(p.stat().st_mode) for p in files if not _private(p)}
    assert not loose, loose


def test_serve_refuses_an_open_data_folder(procs: Procs) -> None:
    hub = procs.hub("hub")
    hub.data.chmod(0o755)
    with pytest.raises(AssertionError, match="chmod 700"):
        hub.start(timeout=30)


def test_admin_token_can_be_rotated_on_a_running_hub(procs: Procs) -> None:
    hub: HubProc = procs.hub("hub").start()
    path = hub.data / "admin.token"
    old = path.read_text().strip()
    p = run(C1HUB, "token", "rotate", "--data", hub.data)
    new = path.read_text().strip()
    assert new and new != old
    assert old not in p.stdout + p.stderr and new not in p.stdout + p.stderr
    assert _private(path)

    def approve_unknown(token: str) -> int | None:
        r = call(hub.port, "POST", "/v1/devices/AAAA-AAAA-AAAA/approve", b"",
                 {"Authorization": f"Bearer {token}", "Accept": "application/json"})  # fmt: skip
        return r.status

    assert approve_unknown(old) == 401  # the old token stopped working at once
    assert approve_unknown(new) == 404  # the new one is taken (no such device)


def test_admin_endpoints_refuse_without_the_token(procs: Procs) -> None:
    """Guard (holds today): no token, no approval, whatever the caller claims."""
    hub = procs.hub("hub").start()
    laptop = Identity.generate()
    call(hub.port, "POST", "/v1/enroll", forge.enrollment(laptop, hello(hub.url)["public"]),
         {"Content-Type": MSGPACK})  # fmt: skip
    for headers in ({}, {"Authorization": "Bearer "}, {"X-Forwarded-For": "127.0.0.1"},
                    {"Authorization": "Bearer " + "A" * 43}):  # fmt: skip
        r = call(hub.port, "POST", f"/v1/devices/{fingerprint(laptop.public)}/approve", b"",
                 {"Accept": "application/json", **headers})  # fmt: skip
        assert r.status == 401 and r.error["code"] == "unauthorized", r
    assert hub.devices()[0]["state"] == "pending"
