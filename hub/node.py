"""A running hub process: the wiring around the hub service, with an explicit lifecycle.

``Hub(config)`` reads the data folder (key, name, admin token; a folder or token open to
other users is refused, ``hub.datadir``). ``start()`` takes the data-folder lock, starts the
examine worker pool, opens the store, builds the forwarder (with ``--upstream``) and the
service, serves HTTP on TCP and on the admin socket (``admin.sock``, for the admin commands
of this machine), writes the runtime file (``hub.json``), starts
the forwarder, then advertises on mDNS in the background. ``stop()`` undoes exactly what was
done, in reverse order (also after a start that failed halfway). ``async with Hub(config)``
does both; ``serve_forever`` adds the signals. ``open_offline`` opens the store and the service
without serving, for the admin commands while no hub runs.

What a hub *does* is ``hub.service.HubService``; this module only puts it in a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import os
import resource
import signal
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from aiohttp import web

from hub.access import is_loopback
from hub.blobstore import open_blobs
from hub.config import HubConfig
from hub.connections import ACCEPT_BATCH, ConnectionLimits, HubRunner, connection_cap
from hub.datadir import (
    ADMIN_SOCKET,
    TOKEN_FILE,
    AdminSocket,
    TokenFile,
    check_private,
    make_private,
    new_token,
    write_private,
)
from hub.discovery import Advertiser
from hub.errors import AlreadyRunning, HubError, NotInitialised
from hub.examine import make_pool, warm_pool
from hub.forwarder import META_UPSTREAM_KEY, Forwarder
from hub.protocol import identity
from hub.protocol.quota import Quotas
from hub.scans import HubScans
from hub.server import make_app
from hub.service import HubService
from hub.shared import keyfile
from hub.shared.master import load_master
from hub.shared.netif import lan_addresses
from hub.status import DeviceInfo
from hub.storage import HubStorage
from hub.store import DeviceRow, HubStore
from hub.upstream import HttpUpstream, UpstreamStore

log = logging.getLogger(__name__)

LOCK_FILE = "hub.lock"
RUNTIME_FILE = "hub.json"
NAME_FILE = "name"
DB_FILE = "db.url"  # the --db of the last start (PostgreSQL), for the offline admin commands


def init_data_dir(data_dir: Path, name: str) -> identity.Identity:
    """Create the hub's data folder (0700, also when it was there already) and key, name
    and admin token (0600); idempotent for the same folder."""
    make_private(data_dir)
    ident, _created = keyfile.load_or_create(data_dir)
    name_file = data_dir / NAME_FILE
    if not name_file.exists():
        write_private(name_file, name + "\n")
    if not (data_dir / TOKEN_FILE).exists():
        new_token(data_dir)
    return ident


def read_name(data_dir: Path) -> str:
    name_file = data_dir / NAME_FILE
    return name_file.read_text().strip() if name_file.exists() else ""


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


def read_db(data_dir: Path) -> str | None:
    """The ``--db`` this folder's hub last ran with (the admin commands use it while no hub
    runs), or None: SQLite in the folder."""
    try:
        return (data_dir / DB_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def write_db(data_dir: Path, db: str) -> None:
    """Remember ``--db`` (it may hold a password: 0600)."""
    if read_db(data_dir) != db:
        write_private(data_dir / DB_FILE, db + "\n")


async def open_store(
    data_dir: Path, db: str | None, *, refuse_unknown: bool, quotas: Quotas | None = None
) -> HubStorage:
    """The SQLite store in ``data_dir`` (``db`` None), or the PostgreSQL store at ``db``; both
    apply ``quotas``."""
    if db:
        from hub.pg.store import PgStore  # the national extra: rooms never import asyncpg

        return await PgStore.open(db, refuse_unknown=refuse_unknown, quotas=quotas)
    return await HubStore.open(data_dir, refuse_unknown=refuse_unknown, quotas=quotas)


def _upstream_view(store: HubStorage) -> UpstreamStore:
    """What the forwarder reads of the store: the SQLite store itself, or the per-device view
    of the PostgreSQL one."""
    if isinstance(store, HubStore):
        return store
    from hub.pg.forwarding import PgUpstreamStore
    from hub.pg.store import PgStore

    assert isinstance(store, PgStore)
    return PgUpstreamStore(store)


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one and say so; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1_048_576) if soft != resource.RLIM_INFINITY else soft
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-file limit: %d (could not raise it to %d: %s)", soft, hard, exc)
            return soft
        log.info("open-file limit raised from %d to %d", soft, hard)
        return hard
    log.info("open-file limit: %d", soft)
    return soft if soft != resource.RLIM_INFINITY else 1_048_576


class AcceptErrors:
    """The event loop's exception handler: a failed ``accept()`` (out of file descriptors)
    is logged at most once per 60 s, without a traceback; the hub keeps serving the
    connections it has. Anything else goes to the previous handler."""

    interval = 60.0

    def __init__(self, previous: Any):
        self.previous = previous
        self.last = -self.interval
        self.missed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
            now = time.monotonic()
            self.missed += 1
            if now - self.last >= self.interval:
                log.warning("cannot accept connections (%s); %d refused since the last note",
                            exc.strerror or exc, self.missed)  # fmt: skip
                self.last, self.missed = now, 0
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


class Hub:
    """One hub process over one data folder (see the module docstring)."""

    def __init__(self, config: HubConfig):
        self.config = config
        self.data_dir = config.data_dir
        if not (self.data_dir / keyfile.KEY_FILE).exists():
            raise NotInitialised(
                f"{self.data_dir} holds no hub; run: c1hub init --data {self.data_dir} --name NAME"
            )
        try:
            self.ident = keyfile.load(self.data_dir / keyfile.KEY_FILE)
        except ValueError as exc:  # not a c1hub key (a loose file mode is a PermissionError)
            raise HubError(str(exc)) from None
        check_private(self.data_dir)
        self.name = read_name(self.data_dir)
        self.role = "root" if config.root else "hub"
        self.token = TokenFile(self.data_dir)
        self.token.current()  # a missing token is said now, not at the first admin call
        self.url: str | None = None
        self.port: int | None = None
        self.forwarder: Forwarder | None = None
        self._service: HubService | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def service(self) -> HubService:
        assert self._service is not None, "hub not started"
        return self._service

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the folder, open everything and serve (see the module docstring)."""
        cfg = self.config
        async with self._starting() as stack:
            if cfg.approve_all:
                log.warning(
                    "!!! --approve-all is ON: every device is approved on first contact with NO "
                    "comparison-code check. This is for tests and demos only; never use it in a "
                    "real counting room. !!!"
                )
            master = load_master(cfg.wilayah) if cfg.wilayah else None
            pool = stack.enter_context(_pool(cfg))
            warm = asyncio.create_task(warm_pool(pool), name="warm-pool")
            stack.push_async_callback(_finish, warm)
            store = await self._open_store(stack)
            blobs = await open_blobs(self.data_dir, cfg.blobs)
            stack.push_async_callback(blobs.close)
            scans = HubScans(self.data_dir, store, root=cfg.root, blobs=blobs,
                             partial_max_age=cfg.partial_max_age)  # fmt: skip
            await scans.load()
            stack.callback(scans.close)
            expiry = asyncio.create_task(scans.run_expiry(), name="scan-expiry")
            stack.push_async_callback(_finish, expiry)
            if cfg.upstream:
                self.forwarder = Forwarder(
                    _upstream_view(store), HttpUpstream(cfg.upstream), self.ident, self.name,
                    kbps=cfg.upstream_kbps, lanes=cfg.upstream_lanes, scans=scans,
                )  # fmt: skip
            self._service = HubService(
                store, self.ident, name=self.name, root=cfg.root, master=master, pool=pool,
                max_batch=cfg.max_batch, max_endorsements=cfg.max_endorsements,
                approve_all=cfg.approve_all, upstream=self.forwarder, scans=scans, blobs=blobs,
            )  # fmt: skip
            app = make_app(self._service, admin_token=self.token.current, max_body=cfg.max_body,
                           max_inflight_bytes=cfg.max_inflight_bytes,
                           body_timeout=cfg.body_timeout, listen_host=cfg.host)  # fmt: skip
            await self._serve(stack, app)
            self._write_runtime()
            stack.callback((self.data_dir / RUNTIME_FILE).unlink, missing_ok=True)
            if self.forwarder is not None:
                await self.forwarder.start()
                stack.push_async_callback(self.forwarder.stop)
            if cfg.mdns:
                self._advertise(stack)
            log.info("%s %s (%s) listening on %s:%s",
                     self.role, self.name, self.ident.node_id, cfg.host, self.port)  # fmt: skip

    async def open_offline(self) -> None:
        """Open the store and the service without serving: for admin commands while no hub
        runs (the lock keeps a hub from starting meanwhile)."""
        async with self._starting() as stack:
            store = await self._open_store(stack)
            known = await store.get_meta(META_UPSTREAM_KEY) is not None
            scans = HubScans(self.data_dir, store, root=self.config.root)
            await scans.load()
            self._service = HubService(
                store, self.ident, name=self.name, root=self.config.root,
                max_batch=self.config.max_batch, upstream_known=known, scans=scans,
            )  # fmt: skip

    async def stop(self) -> None:
        """Undo what ``start``/``open_offline`` did, in reverse order."""
        stack, self._stack = self._stack, None
        self._service = None
        self.forwarder = None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.asynccontextmanager
    async def _starting(self) -> AsyncIterator[contextlib.AsyncExitStack]:
        """Each step registers its undo on the stack; a failure undoes what was done."""
        if self._stack is not None:
            raise RuntimeError("this hub is already started")
        self._stack = stack = contextlib.AsyncExitStack()
        try:
            stack.enter_context(self._lock())
            yield stack
        except BaseException:
            await self.stop()
            raise

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
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
        try:
            yield
        finally:
            os.close(fd)

    async def _open_store(self, stack: contextlib.AsyncExitStack) -> HubStorage:
        db = self.config.db or read_db(self.data_dir)
        store = await open_store(
            self.data_dir, db, refuse_unknown=self.config.root, quotas=self.config.quotas
        )
        stack.push_async_callback(store.close)
        if self.config.db:
            write_db(self.data_dir, self.config.db)
        return store

    async def _serve(self, stack: contextlib.AsyncExitStack, app: web.Application) -> None:
        cfg = self.config
        nofile = raise_open_file_limit()
        max_connections = connection_cap(cfg.max_connections, nofile)
        if max_connections < cfg.max_connections:
            log.warning("max_connections lowered from %d to %d (open-file limit %d)",
                        cfg.max_connections, max_connections, nofile)  # fmt: skip
        limits = ConnectionLimits(
            cfg.header_timeout, cfg.keepalive_timeout, max_connections, cfg.body_timeout
        )
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        loop.set_exception_handler(AcceptErrors(previous))
        stack.callback(loop.set_exception_handler, previous)
        admin = AdminSocket(self.data_dir)
        stack.callback(admin.close)
        runner = HubRunner(app, limits=limits, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, self.config.host, self.config.port, backlog=ACCEPT_BATCH)
        await site.start()
        runner.tune_listeners(cfg.header_timeout)
        await web.SockSite(runner, admin.sock).start()  # same app: one implementation
        addresses = runner.addresses  # (host, port, ...) of each listening socket
        self.port = int(addresses[0][1]) if addresses else self.config.port
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.url = f"http://{host}:{self.port}"

    def _advertise(self, stack: contextlib.AsyncExitStack) -> None:
        """Advertise in the background: registering takes ~1.2 s, and it retries with capped
        backoff, so a hub started before its Wi-Fi is up still advertises once the network
        comes. mDNS is only a hint; the hub serves meanwhile."""
        assert self.port is not None
        ifaces = list(self.config.mdns_interfaces) if self.config.mdns_interfaces else None
        if ifaces is None and self.config.host not in ("0.0.0.0", "::", ""):
            ifaces = [self.config.host]  # advertise only where the hub listens
        advertiser = Advertiser(
            name=self.name,
            node_id=self.ident.node_id,
            public_key=self.ident.public,
            port=self.port,
            role=self.role,
            interfaces=ifaces,
        )
        task = asyncio.create_task(advertiser.start_with_retry(), name="mdns")
        stack.push_async_callback(_finish, task)
        stack.push_async_callback(_stop_advertising, advertiser)

    def _write_runtime(self) -> None:
        info = {"pid": os.getpid(), "url": self.url, "port": self.port,
                "node_id": self.ident.node_id, "admin_socket": ADMIN_SOCKET}  # fmt: skip
        write_private(self.data_dir / RUNTIME_FILE, json.dumps(info))

    # -- for tests written against the earlier Hub (tests/hub/test_forwarder.py and
    # -- tests/client/test_sync.py); everything else calls ``self.service``. -----------------

    async def approve(self, d: DeviceRow) -> DeviceInfo:
        return await self.service.approve(d.node_id, d.role)

    async def revoke(self, d: DeviceRow) -> DeviceInfo:
        return await self.service.revoke(d.node_id)

    def status(self) -> dict[str, Any]:
        return self.service.status_now()


def laptop_line(host: str, port: int | None) -> str:
    """Where laptops can reach this hub (for the start line): its LAN addresses when it
    listens on all of them, never 127.0.0.1, which is of no use to another machine."""
    if host in ("0.0.0.0", "::", ""):
        addrs = lan_addresses()
        if not addrs:
            return "laptops: no LAN address yet (is the network up?); the console shows them"
        return "laptops can use " + ", ".join(f"http://{a}:{port}" for a in addrs)
    if is_loopback(host) or host == "localhost":
        return f"laptops cannot reach {host}: listen with --host 0.0.0.0 to serve the room"
    return f"laptops can use http://{host}:{port}"


@contextlib.contextmanager
def _pool(cfg: HubConfig) -> Iterator[Executor]:
    pool = make_pool(cfg.wilayah, cfg.examine_workers)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


async def _finish(task: asyncio.Task[Any]) -> None:
    """Wait for a background task at shutdown (cancelled first if still running)."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def _stop_advertising(advertiser: Advertiser) -> None:
    try:
        await advertiser.stop()
    except Exception as exc:
        log.debug("mDNS stop: %s", exc)


@contextlib.asynccontextmanager
async def open_offline(config: HubConfig) -> AsyncIterator[HubService]:
    """The service of a hub that is not running (admin commands); the folder stays locked."""
    hub = Hub(config)
    await hub.open_offline()
    try:
        yield hub.service
    finally:
        await hub.stop()


async def serve_forever(config: HubConfig) -> None:
    """Run a hub until SIGINT/SIGTERM (the CLI's entry point)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Hub(config) as hub:
        # What the hub holds once started (modules, the store's memory) lives as long as the
        # process: out of the garbage collector's full passes, which would otherwise scan it
        # all, on the event loop, whenever enough new objects have come.
        gc.freeze()
        what = "national stand-in" if hub.role == "root" else "room hub"
        master = f", master {config.wilayah}" if config.wilayah else ", no polling-station master"
        up = f", forwarding to {config.upstream}" if config.upstream else ""
        print(f"c1hub: {what} {hub.name!r} ({hub.ident.node_id}) at {hub.url}{master}{up}",
              flush=True)  # fmt: skip
        print(f"c1hub: {laptop_line(config.host, hub.port)}", flush=True)
        await stop.wait()
        log.info("stopping")
