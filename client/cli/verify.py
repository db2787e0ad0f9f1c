"""``c1client verify``: re-check everything the store holds."""

from __future__ import annotations

from pathlib import Path

import click

from ..i18n import Messages
from .base import common_options, emit, json_option, make_config, open_store, run


@click.command()
@common_options
@json_option
def verify(data_dir: Path | None, lang: str | None, verbose: int, as_json: bool) -> None:
    """Re-check every stored entry: signature, chain, hashes, and the stored columns.

    Exit code 0 when all entries verify; 1 with every problem listed otherwise (a changed
    byte, a missing or reordered entry, a column that disagrees with the signed entry).

    \b
    --json: {"ok": bool, "entries": int (checked), "last_seq": int,
    "problems": [{"seq": int|null, "code": str, "en": str, "id": str}]}
    """
    cfg = make_config(data_dir=data_dir, lang=lang, verbose=verbose)
    msg = Messages(cfg.lang)

    async def work() -> int:
        async with await open_store(cfg) as store:
            report = await store.verify()
        if as_json:
            emit(report.to_dict())
        elif report.ok:
            click.echo(msg("verify_ok", n=report.checked))
        else:
            click.echo(msg("verify_bad", count=len(report.problems), n=report.checked))
            for p in report.problems:
                what = msg.pick(p.id, p.en)
                if p.seq is None:
                    click.echo(msg("verify_store_problem", what=what))
                else:
                    click.echo(msg("verify_problem", seq=p.seq, what=what))
        return 0 if report.ok else 1

    run(cfg, as_json, work)
