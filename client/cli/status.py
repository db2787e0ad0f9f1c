"""``c1client status``: this laptop, its entries, and where they are."""

from __future__ import annotations

from pathlib import Path

import click

from hub.protocol.text import escape

from .. import scanstate
from ..i18n import Messages
from ..scans import blob_store
from .base import common_options, emit, json_option, local_time, make_config, open_store, run

_AT_HUB = {"pending": "status_pending", "approved": "status_approved", "revoked": "status_revoked"}


@click.command()
@common_options
@json_option
def status(data_dir: Path | None, lang: str | None, verbose: int, as_json: bool) -> None:
    """Show this laptop's id, how many entries it holds, and where they are.

    at_hub counts every entry the hub holds, those confirmed upstream included:
    local_only + at_hub = entries, and confirmed_upstream <= at_hub.

    \b
    --json: {"node_id": str, "name": str, "data_dir": str, "entries": int, "last_seq": int,
    "flagged": int, "hub": {"id": str|null, "url": str|null, "last_ok_at": int|null,
    "state": "pending"|"approved"|"revoked"|null, "code": str|null},
    "at_hub": int, "confirmed_upstream": int, "local_only": int,
    "oldest_local_entered_at": int|null, "scans": {"local": int, "at_hub": int,
    "confirmed_upstream": int, "bytes_pending": int}}

    scans counts page images by where they are, as the hub last answered.
    """
    cfg = make_config(data_dir=data_dir, lang=lang, verbose=verbose)
    msg = Messages(cfg.lang)

    async def work() -> int:
        async with await open_store(cfg) as store:
            s = await store.summary()
            sc = await scanstate.summary(store.db, blob_store(cfg.data_dir))
        if as_json:
            emit({**s.to_dict(cfg.data_dir), "scans": sc.to_dict()})
            return 0
        click.echo(msg("status_laptop", name=s.name, node_id=s.node_id))
        click.echo(msg("status_entries", entries=s.entries, last_seq=s.last_seq, flagged=s.flagged))
        hub = f"{s.hub.node_id}  {s.hub.url}" if s.hub else msg("status_no_hub")
        click.echo(msg("status_hub", hub=hub))
        if s.hub is not None and s.hub.state in _AT_HUB:
            # The code came from the hub: shown escaped, like all text from the network.
            click.echo(msg(_AT_HUB[s.hub.state], code=escape(s.hub.code or "-")))
        oldest = s.oldest_local_entered_at
        at = "" if oldest is None else msg("status_oldest", at=local_time(oldest))
        click.echo(msg("status_local", count=s.local_only, oldest=at))
        click.echo(msg("status_at_hub", count=s.at_hub))
        click.echo(msg("status_confirmed", count=s.confirmed_upstream))
        mb = f"{sc.bytes_pending / 1e6:.1f}"
        click.echo(msg("status_scans", local=sc.local, at_hub=sc.at_hub,
                       upstream=sc.confirmed_upstream, mb=mb))  # fmt: skip
        return 0

    run(cfg, as_json, work)
