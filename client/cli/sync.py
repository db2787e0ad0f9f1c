"""``c1client sync``: send this laptop's entries to its hub(s) and keep the receipts.

The rounds are ``client.sync``'s (``sync_once``, ``sync_forever``); this module prints them.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import click

from hub.protocol.discovery_names import parse_interfaces

from ..i18n import Messages
from ..sync import SyncReport, sync_forever, sync_once
from .base import common_options, emit, json_option, make_config, open_store, run


@click.command()
@common_options
@click.option(
    "--hub",
    "hub_urls",
    metavar="URL",
    multiple=True,
    help="The hub's address, e.g. http://192.168.1.10:8470 (default: find it by mDNS, "
    "then the last address that worked). Repeat for a room with two hubs.",
)
@click.option(
    "--add-hub",
    is_flag=True,
    help="Also enroll at a hub other than the pinned one (a room with two hubs: this laptop "
    "then pushes to both). Compare the code on both screens first.",
)
@click.option("--once", is_flag=True, help="Sync once and exit (default: keep syncing).")
@click.option(
    "--mdns-interface",
    "mdns_interfaces",
    metavar="ADDRS",
    help="Comma-separated interface addresses to browse mDNS on (e.g. 127.0.0.1); "
    "default: this machine's LAN interfaces.",
)
@click.option(
    "--batch",
    default=500,
    show_default=True,
    type=click.IntRange(1, 5000),
    help="Entries per push.",
)
@json_option
def sync(
    data_dir: Path | None,
    lang: str | None,
    verbose: int,
    hub_urls: tuple[str, ...],
    add_hub: bool,
    once: bool,
    mdns_interfaces: str | None,
    batch: int,
    as_json: bool,
) -> None:
    """Send this laptop's entries to the room hub and keep its signed receipts.

    Finds the hub (--hub, else mDNS, else the last address that worked; every candidate is
    asked at once and has C1CLIENT_HELLO_TIMEOUT seconds to answer), checks it is the hub this
    laptop is enrolled at (its key is pinned at first contact), enrolls if needed, and pushes
    every entry the hub lacks. Without --once it keeps going as new entries are saved and as
    the hub comes and goes (retrying with backoff). A hub or candidate address that failed
    (no answer to hello, not a hub) while another hub was synced is listed in "errors".

    \b
    --json (one object per round): {"hub": {"id", "url"}, "state": "pending"|"approved"|...,
    "code": "1234 5678 9012 3456", "pushed": int, "accepted": int, "duplicate": int, "at_hub": int,
    "confirmed_upstream": int, "local_only": int, "rejected": [{"seq", "code", "reason"}],
    "refused_hubs": [url], "errors": [{"url", "code", "reason", "reason_id"}]}
    """  # fmt: skip
    cfg = make_config(data_dir=data_dir, lang=lang, verbose=verbose)
    msg = Messages(cfg.lang)
    try:
        ifaces = parse_interfaces(mdns_interfaces)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mdns-interface") from None

    def report(rep: SyncReport, entries: int) -> None:
        if as_json:
            emit(rep.to_dict())
            return
        for h in rep.hubs:
            click.echo(msg("sync_hub", hub_id=h["id"], url=h["url"]))
            if h["state"] == "pending":
                click.echo(msg("sync_pending", code=h["code"], node_id=store_id[0]))
            elif h["state"] == "revoked":
                click.echo(msg("sync_revoked"))
        for e in rep.errors:
            click.echo(f"{msg('error')}: {e['reason_id' if cfg.lang == 'id' else 'reason']}")
        for r in rep.rejected[:20]:
            click.echo(msg("sync_rejected", seq=r.get("seq"), reason=r.get("reason")))
        click.echo(msg("sync_done", pushed=rep.pushed, at_hub=rep.at_hub, entries=entries,
                       confirmed=rep.confirmed_upstream, local_only=rep.local_only))  # fmt: skip

    store_id = [""]

    async def work() -> int:
        async with await open_store(cfg) as store:
            store_id[0] = store.node_id
            if once:
                async with aiohttp.ClientSession() as http:
                    rep = await sync_once(store, http, hub_url=hub_urls, mdns_interfaces=ifaces,
                                          batch=batch, add_hub=add_hub,
                                          hello_timeout=cfg.hello_timeout,
                                          partial_max_age=cfg.partial_max_age)  # fmt: skip
                report(rep, await store.last_seq())
                return 1 if rep.rejected or rep.errors else 0

            states: dict[str, str] = {}  # hub id -> this laptop's state there, last shown

            def on_report(rep: SyncReport) -> None:
                changed = {
                    h["id"]: h["state"] for h in rep.hubs if states.get(h["id"]) != h["state"]
                }
                if rep.pushed or as_json or changed:
                    report(rep, rep.at_hub + rep.local_only)
                for hub_id, st in changed.items():
                    if st == "approved" and hub_id in states and not as_json:
                        click.echo(msg("sync_approved", hub_id=hub_id))
                states.update(changed)

            def on_error(reason: str, delay: float) -> None:
                click.echo(msg("sync_retry", reason=reason, delay=delay), err=True)

            await sync_forever(store, hub_url=hub_urls, mdns_interfaces=ifaces, batch=batch,
                               add_hub=add_hub, hello_timeout=cfg.hello_timeout,
                               partial_max_age=cfg.partial_max_age,
                               on_report=on_report, on_error=on_error)  # fmt: skip
        return 0

    run(cfg, as_json, work)
