"""A running hub: identity, store, master, worker threads, HTTP server and mDNS, with an
explicit lifecycle (``start``/``stop``, or ``async with Hub(config)``).

The core decisions live in ``hub.protocol``; this module wires I/O around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from aiohttp import web

from hub import status as status_mod
from hub.config import HubConfig
from hub.errors import AlreadyRunning, NotInitialised
from hub.examine import Checked, examine_batch, make_pool, warm_pool
from hub.protocol import clock, enroll, identity, receipt
from hub.protocol.errors import DeviceError
from hub.protocol.ingest import APPROVED, REVOKED
from hub.shared import keyfile
from hub.shared.master import load_master
from hub.store import DeviceRow, HubStore, PushResult, StoreView

log = logging.getLogger(__name__)

LOCK_FILE = "hub.lock"
RUNTIME_FILE = "hub.json"
TOKEN_FILE = "admin.token"


def init_data_dir(data_dir: Path, name: str) -> identity.Identity:
    """Create the hub's data folder and key; idempotent for the same folder."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ident, _created = keyfile.load_or_create(data_dir)
    name_file = data_dir / "name"
    if not name_file.exists():
        name_file.write_text(name + "\n")
    token = data_dir / TOKEN_FILE
    if not token.exists():
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return ident


def read_runtime(data_dir: Path) -> dict[str, Any] | None:
    """What a running hub wrote about itself (pid, url), or None if no hub holds the folder."""
    lock = data_dir / LOCK_FILE
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # nobody holds it
    finally:
        os.close(fd)
    try:
        data: dict[str, Any] = json.loads((data_dir / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data


def admin_token(data_dir: Path) -> str:
    return (data_dir / TOKEN_FILE).read_text().strip()


class Hub:
    def __init__(self, config: HubConfig):
        self.config = config
        self.data_dir = config.data_dir
        if not (self.data_dir / keyfile.KEY_FILE).exists():
            raise NotInitialised(
                f"{self.data_dir} holds no hub; run: c1hub init --data {self.data_dir} --name NAME"
            )
        self.ident = keyfile.load(self.data_dir / keyfile.KEY_FILE)
        name_file = self.data_dir / "name"
        self.name = name_file.read_text().strip() if name_file.exists() else ""
        self.role = "root" if config.root else "hub"
        self.master = load_master(config.wilayah) if config.wilayah else None
        self.token = admin_token(self.data_dir)
        self.store: HubStore | None = None
        self.pool: Executor | None = None
        self.runner: web.AppRunner | None = None
        self.url: str | None = None
        self.port: int | None = None
        self._lock_fd: int | None = None
        self._advertiser: Any = None
        self._advertise_task: asyncio.Task[None] | None = None
        self.started_at = clock.now()
        self.push_count = 0
        self.forwarder: Any = None
        self._status_cache: tuple[float, dict[str, Any]] | None = None
        self._warm_task: asyncio.Task[None] | None = None
        self._upstream_known = False  # offline: this hub has forwarded somewhere before
        self._status_task: asyncio.Future[dict[str, Any]] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def _take_lock(self) -> None:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = read_runtime(self.data_dir) or {}
            raise AlreadyRunning(
                f"another c1hub is already serving {self.data_dir}"
                + (f" (pid {info.get('pid')}, {info.get('url')})" if info else "")
                + "; stop it first, or use another --data folder"
            ) from None
        self._lock_fd = fd

    async def start(self) -> None:
        from hub.server import make_app

        self._take_lock()
        try:
            if self.config.approve_all:
                log.warning(
                    "!!! --approve-all is ON: every device is approved on first contact with NO "
                    "comparison-code check. This is for tests and demos only; never use it in a "
                    "real counting room. !!!"
                )
            self.pool = make_pool(self.config.wilayah, self.config.examine_workers)
            self._warm_task = asyncio.create_task(warm_pool(self.pool), name="warm-pool")
            self.store = await HubStore.open(self.data_dir, refuse_unknown=self.config.root)
            if self.config.upstream:
                from hub.forwarder import Forwarder

                self.forwarder = Forwarder(self, self.config.upstream, self.config.upstream_kbps)
            app = make_app(self)
            self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self.runner.setup()
            site = web.TCPSite(self.runner, self.config.host, self.config.port)
            await site.start()
            server = site._server
            assert server is not None
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1] if sockets else self.config.port
            host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
            self.url = f"http://{host}:{self.port}"
            self._write_runtime()
            if self.forwarder is not None:
                await self.forwarder.start()
            if self.config.mdns:
                self._advertise_task = asyncio.create_task(self._advertise(), name="mdns")
            log.info(
                "%s %s (%s) listening on %s:%s",
                self.role, self.name, self.ident.node_id, self.config.host, self.port,
            )  # fmt: skip
        except BaseException:
            await self.stop()
            raise

    async def open_offline(self) -> None:
        """Open the store without serving: for admin commands while no hub runs."""
        self._take_lock()
        try:
            self.store = await HubStore.open(self.data_dir, refuse_unknown=self.config.root)
            self._upstream_known = await self.store.get_meta("upstream_public") is not None
        except BaseException:
            await self.stop()
            raise

    async def _advertise(self) -> None:
        from hub.discovery import Advertiser

        assert self.port is not None
        ifaces = list(self.config.mdns_interfaces) if self.config.mdns_interfaces else None
        if ifaces is None and self.config.host not in ("0.0.0.0", "::", ""):
            ifaces = [self.config.host]  # advertise only where the hub listens
        self._advertiser = Advertiser(
            name=self.name,
            node_id=self.ident.node_id,
            public_key=self.ident.public,
            port=self.port,
            role=self.role,
            interfaces=ifaces,
        )
        # Retries with capped backoff: a hub started before its Wi-Fi is up still advertises
        # once the network comes. mDNS is only a hint; the hub serves meanwhile.
        await self._advertiser.start_with_retry()

    def _write_runtime(self) -> None:
        info = {
            "pid": os.getpid(),
            "url": self.url,
            "port": self.port,
            "node_id": self.ident.node_id,
        }
        tmp = self.data_dir / (RUNTIME_FILE + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(self.data_dir / RUNTIME_FILE)

    async def stop(self) -> None:
        if self.forwarder is not None:
            await self.forwarder.stop()
        if self._advertise_task is not None:
            self._advertise_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._advertise_task
            self._advertise_task = None
        if self._advertiser is not None:
            try:
                await self._advertiser.stop()
            except Exception as exc:
                log.debug("mDNS stop: %s", exc)
            self._advertiser = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self._warm_task is not None:
            with contextlib.suppress(BaseException):
                await self._warm_task
            self._warm_task = None
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        if self._lock_fd is not None:
            try:
                (self.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- operations used by the HTTP layer ---------------------------------------------------

    def _store(self) -> HubStore:
        assert self.store is not None, "hub not started"
        return self.store

    async def examine(self, raws: Sequence[bytes]) -> list[Checked]:
        return await examine_batch(self.pool, raws, self.master)

    async def push(
        self, raws: Sequence[bytes], endorsements: Sequence[bytes] = ()
    ) -> tuple[PushResult, list[bytes]]:
        """Store a batch durably; return the result and one signed receipt per origin."""
        store = self._store()
        opened = [
            enroll.open_endorsement(e) for e in endorsements if not store.knows_endorsement(e)
        ]
        examined = await self.examine(raws)
        now = clock.now_s()
        result = await self._store().push(examined, now, opened)
        self.push_count += 1
        receipts = [
            receipt.issue(self.ident, origin, head.seq, head.hash, now).raw
            for origin, head in sorted(result.heads.items())
            if head.seq > 0
        ]
        if self.config.approve_all:
            for origin in result.plan.new_origins:
                d = self._store().devices.get(origin)
                if d is not None and d.state != APPROVED:
                    await self.approve(d)
        return result, receipts

    async def enroll(self, raw: bytes) -> tuple[DeviceRow, str]:
        req = enroll.open_request(raw, self.ident.public)
        d = await self._store().enroll(req.device, req.name, req.role, clock.now_s())
        if self.config.approve_all and d.state != APPROVED and d.state != REVOKED:
            d = await self.approve(d)
        return d, identity.comparison_code(self.ident.public, d.public)

    async def approve(self, d: DeviceRow) -> DeviceRow:
        if d.forked:
            raise DeviceError(
                f"device {d.node_id} has a fork; it cannot be approved. Enroll the laptop again "
                "with a fresh data folder (c1client init) and re-enter its forms."
            )
        now = clock.now_s()
        endorsement = enroll.endorse(self.ident, d.public, d.name, d.role, now)
        log.info("approved device %s (%s)", d.node_id, d.name)
        d = await self._store().approve(d.public, now, endorsement)
        self._forget_status()
        return d

    async def revoke(self, d: DeviceRow) -> DeviceRow:
        log.warning("revoked device %s (%s)", d.node_id, d.name)
        d = await self._store().revoke(d.public, clock.now_s())
        self._forget_status()
        return d

    def _forget_status(self) -> None:
        """After a coordinator's action, the next status shows it (not the shared copy)."""
        self._status_cache = None
        self._status_task = None

    def device_row(self, d: DeviceRow) -> dict[str, Any]:
        """``d`` as listed by ``c1hub devices --json``."""
        rows = status_mod.device_list(self._store().snapshot(), self.ident.public)
        return next(x for x in rows if x["id"] == d.node_id)

    def status(self) -> dict[str, Any]:
        """The status dict, computed here and now (blocks the loop: fine for small stores,
        the CLI and tests; the HTTP API uses ``status_async``)."""
        return self._finish_status(self._build_status(self._store().snapshot()))

    async def status_async(self, max_age: float = 1.0) -> dict[str, Any]:
        """The status dict, derived on a worker thread from a snapshot and shared by callers
        within ``max_age`` seconds, so big stores do not stall pushes."""
        now = clock.monotonic()
        if self._status_cache is not None and now - self._status_cache[0] < max_age:
            return self._finish_status(dict(self._status_cache[1]))
        if self._status_task is None or self._status_task.done():
            view = self._store().snapshot()
            self._status_task = asyncio.ensure_future(asyncio.to_thread(self._build_status, view))
        task = self._status_task
        built = await asyncio.shield(task)
        if task is self._status_task:  # not forgotten meanwhile
            self._status_cache = (clock.monotonic(), built)
        return self._finish_status(dict(built))

    def _build_status(self, view: StoreView) -> dict[str, Any]:
        return status_mod.build(
            view,
            node_id=self.ident.node_id,
            name=self.name,
            role=self.role,
            hub_public=self.ident.public,
            master=self.master,
            now=clock.now(),
        )

    def _finish_status(self, s: dict[str, Any]) -> dict[str, Any]:
        """Add the parts that change fastest and cost nothing: the upstream block."""
        if self.forwarder is not None:
            s["upstream"] = self.forwarder.status()
        elif not self.config.root:
            s["upstream"] = status_mod.no_upstream(self._store(), self._upstream_known)
        return s


async def serve_forever(config: HubConfig) -> None:
    """Run a hub until SIGINT/SIGTERM (the CLI's entry point)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Hub(config) as hub:
        what = "national stand-in" if hub.role == "root" else "room hub"
        master = f", master {config.wilayah}" if config.wilayah else ", no polling-station master"
        up = f", forwarding to {config.upstream}" if config.upstream else ""
        print(f"c1hub: {what} {hub.name!r} ({hub.ident.node_id}) at {hub.url}{master}{up}",
              flush=True)  # fmt: skip
        await stop.wait()
        log.info("stopping")
