"""``c1client ui``: serve the operator's station on 127.0.0.1 and sync in the background.

Lifecycle (``serve``): open the store, ``ui.db`` and the scan store; start the HTTP server on
127.0.0.1 (only); start ``client.sync.sync_forever`` (the code ``c1client sync`` runs); open the
browser. Ctrl-C (SIGINT) or SIGTERM stops the server, then the sync (it finishes its round),
then closes the stores, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from client.config import SETTINGS as CLIENT_SETTINGS
from client.config import ClientConfig, load_wilayah
from client.errors import ClientError
from client.store import ClientStore
from client.sync import sync_forever
from hub.protocol.text import OneLineFormatter
from hub.shared.blobs import BlobStore

from .config import SETTINGS, UiConfig

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SYNC_STOP_TIMEOUT = 35.0  # one HTTP call's timeout, and a little


def _s(name: str) -> Any:
    for s in (*CLIENT_SETTINGS, *SETTINGS):
        if s.name == name:
            return s
    raise KeyError(name)


F = TypeVar("F", bound=Callable[..., Any])


def _opt(name: str, *flags: str, **kw: Any) -> Callable[[F], F]:
    s = _s(name)
    kw.setdefault("help", s.help)
    opt: Callable[[F], F] = click.option(
        *flags, name, default=s.default, envvar=s.env, show_envvar=True,
        show_default=s.default is not None, **kw,
    )  # fmt: skip
    return opt


@click.command(name="ui")
@_opt("data_dir", "--data", type=click.Path(file_okay=False, path_type=Path), metavar="DIR")
@_opt("port", "--port", type=click.IntRange(0, 65535))
@click.option(
    "--hub",
    "hub_urls",
    metavar="URL",
    multiple=True,
    help="The hub's address, e.g. http://192.168.1.10:8470 (default: find it by mDNS, then "
    "the last address that worked).",
)
@_opt("operator", "--operator", metavar="NAME")
@_opt("scans_dir", "--scans", type=click.Path(exists=True, file_okay=False, path_type=Path),
      metavar="DIR")  # fmt: skip
@click.option("--no-browser", is_flag=True, help="Do not open the browser.")
@click.option("--no-sync", is_flag=True, help="Do not sync with a hub (practice, tests).")
@_opt("lang", "--lang", type=click.Choice(["id", "en"]))
@_opt("wilayah", "--wilayah", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_opt("election", "--election", metavar="ID")
@_opt("max_scan_mb", "--max-scan-mb", type=click.IntRange(1, 200))
@click.option(
    "--mdns-interface",
    "mdns_interfaces",
    metavar="ADDRS",
    help="Comma-separated interface addresses to browse mDNS on (default: LAN interfaces).",
)
@click.option("-v", "--verbose", count=True, help="Log more on stderr (-v: info, -vv: debug).")
def ui(
    data_dir: Path | None,
    port: int | None,
    hub_urls: tuple[str, ...],
    operator: str | None,
    scans_dir: Path | None,
    no_browser: bool,
    no_sync: bool,
    lang: str | None,
    wilayah: Path | None,
    election: str | None,
    max_scan_mb: int | None,
    mdns_interfaces: str | None,
    verbose: int,
) -> None:
    """Serve the operator's entry station (a web page on 127.0.0.1) and sync in the background.

    Operators sign in with their name, key C.Hasil forms with the keyboard, see the checks
    R1-R11 as they type, attach the scanned pages, and save with Ctrl+Enter: each saved form
    is signed and committed exactly as `c1client enter` does it. The same background sync as
    `c1client sync` sends entries to the hub. Ctrl-C stops both.

    The page is Indonesian by default (--lang en, or its language control). It answers only
    on 127.0.0.1, only to its own page (Host, Origin and a per-run token are checked). See
    docs/ui.md; the operators' guide is docs/operator-guide.md.
    """
    from hub.protocol.discovery_names import parse_interfaces

    values: dict[str, Any] = {"data_dir": data_dir, "lang": lang, "wilayah": wilayah}
    for s in CLIENT_SETTINGS:  # settings without an option here, from their environment
        if s.name not in values and s.env is not None and s.env in os.environ:
            values[s.name] = os.environ[s.env]
    try:
        client = ClientConfig.build(**values, verbose=verbose)
        cfg = UiConfig.build(
            client,
            port=port,
            operator=operator,
            scans_dir=scans_dir,
            election=election,
            max_scan_mb=max_scan_mb,
            hub_urls=hub_urls,
            mdns_interfaces=parse_interfaces(mdns_interfaces),
            open_browser=not no_browser,
            sync=not no_sync,
        )
    except ClientError as exc:
        raise click.UsageError(exc.text(lang or "id")) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    try:
        asyncio.run(serve(cfg))
    except ClientError as exc:
        click.echo(f"{'Galat' if cfg.client.lang == 'id' else 'Error'}: "
                   f"{exc.text(cfg.client.lang)}", err=True)  # fmt: skip
        sys.exit(1)
    finally:
        root.removeHandler(handler)


async def serve(cfg: UiConfig, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:  # fmt: skip
    """Run the station until ``stop`` is set (or SIGINT/SIGTERM when it is not given)."""
    # The station's server, pages and logic are imported here, not with the module: every
    # `c1client` command loads this module for its --help, and only `ui` needs them.
    from aiohttp import web

    from .drafts import UiStore
    from .server import Guard, make_app
    from .station import Station

    data = cfg.client.data_dir
    master = await asyncio.to_thread(load_wilayah, cfg.client.wilayah)
    store = await ClientStore.open(data, busy_timeout=cfg.client.busy_timeout)
    try:
        ui_store = await UiStore.open(data)
    except BaseException:
        await store.close()
        raise
    blobs = BlobStore(data / "blobs", max_size=cfg.max_scan_mb * 1024 * 1024)
    station = Station(cfg, store, ui_store, blobs, master)
    runner: web.AppRunner | None = None
    sync_task: asyncio.Task[None] | None = None
    own_stop = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        await station.start()
        guard = Guard(cfg.port)
        runner = web.AppRunner(make_app(station, guard), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, cfg.port)
        try:
            await site.start()
        except OSError as exc:
            raise ClientError(
                f"cannot listen on {HOST}:{cfg.port}: {exc.strerror} (is another c1client ui "
                "running? use --port)",
                f"tidak dapat memakai {HOST}:{cfg.port}: {exc.strerror} (c1client ui lain "
                "berjalan? pakai --port)",
                code="port_busy",
            ) from None
        port = int(runner.addresses[0][1])
        guard.set_port(port)
        url = f"http://{HOST}:{port}/"
        lang = cfg.client.lang
        click.echo(
            (f"Stasiun entri siap: {url}  (Ctrl-C untuk berhenti)" if lang == "id"
             else f"Entry station ready: {url}  (Ctrl-C stops it)"),
        )  # fmt: skip
        sys.stdout.flush()
        if own_stop:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        if cfg.sync:
            sync_task = asyncio.create_task(
                sync_forever(
                    store,
                    hub_url=cfg.hub_urls or None,
                    mdns_interfaces=cfg.mdns_interfaces,
                    hello_timeout=cfg.client.hello_timeout,
                    partial_max_age=cfg.client.partial_max_age,
                    on_report=station.connection.on_sync_report,
                    on_error=station.connection.on_sync_error,
                    stop=stop,
                ),
                name="c1client-ui-sync",
            )
        if cfg.open_browser:
            loop.run_in_executor(None, webbrowser.open, url)
        if ready is not None:
            ready.set()
        await stop.wait()
        click.echo("Berhenti…" if lang == "id" else "Stopping…")
    finally:
        stop.set()
        if own_stop:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()
        if sync_task is not None:
            try:
                await asyncio.wait_for(sync_task, SYNC_STOP_TIMEOUT)
            except (TimeoutError, Exception) as exc:  # a sync failure must not block shutdown
                log.warning("background sync stopped: %r", exc)
        await station.stop()
        await ui_store.close()
        await store.close()
