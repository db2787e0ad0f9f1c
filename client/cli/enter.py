"""``c1client enter``: check C1 entries from files and save the good ones, signed.

The saving is ``client.intake.enter_items`` (also used by the operator UI); this module prints
what it reports: each saved entry as its transaction commits, the rejections at the end.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from hub.protocol import clock

from ..config import load_wilayah
from ..errors import ClientError
from ..i18n import Messages
from ..intake import Rejected, Saved, Tally, enter_items, read_items
from .base import (
    common_options,
    dumps,
    json_option,
    make_config,
    open_store,
    print_flags,
    run,
    setting_option,
)


class HumanEnter:
    """Prints each saved entry as its batch commits; rejections are listed at the end."""

    def __init__(self, msg: Messages, progress_after: int):
        self.msg = msg
        self.progress_after = progress_after
        self.tty = sys.stderr.isatty()
        self.rejections: list[Rejected] = []

    def saved(self, s: Saved) -> None:
        m = self.msg
        if not s.flags:
            click.echo(m("saved", seq=s.seq, tps=s.tps, form=s.form))
            return
        click.echo(m("saved_flags", seq=s.seq, tps=s.tps, form=s.form))
        print_flags(m, s.flags)

    def rejected(self, r: Rejected) -> None:
        self.rejections.append(r)

    def progress(self, t: Tally, done: bool) -> None:
        text = self.msg("progress", read=t.read, saved=t.saved, rejected=t.rejected)
        if self.tty:
            click.echo("\r" + text, err=True, nl=done)
        elif t.read >= self.progress_after:
            click.echo(text, err=True)

    def finish(self, t: Tally, error: ClientError | None) -> None:
        m = self.msg
        for r in self.rejections:
            if r.line is None:
                where = m("where", source=r.source, number=r.index + 1)
            else:
                where = m("where_line", source=r.source, number=r.index + 1, line=r.line)
            field = f" [{r.field}]" if r.field else ""
            click.echo(m("rejected", where=where, field=field, reason=m.pick(r.alasan, r.reason)))
        if error is None:
            click.echo(m("enter_done", saved=t.saved, flagged=t.flagged, rejected=t.rejected))
            if t.rejected:
                click.echo(m("enter_some_rejected"))


class JsonEnter(HumanEnter):
    """Streams ``saved`` as each batch commits; keeps rejections (small) for the end."""

    def __init__(self, msg: Messages, progress_after: int):
        super().__init__(msg, progress_after)
        self.first = True
        click.echo('{"saved":[', nl=False)

    def saved(self, s: Saved) -> None:
        click.echo(("\n" if self.first else ",\n") + dumps(s.to_dict()), nl=False)
        self.first = False

    def finish(self, t: Tally, error: ClientError | None) -> None:
        rej = ",\n".join(dumps(r.to_dict()) for r in self.rejections)
        tail = f'\n],"rejected":[{chr(10) if rej else ""}{rej}\n],"counts":{dumps(t.to_dict())}'
        if error is not None:
            tail += f',"error":{dumps(error.to_dict())}'
        click.echo(tail + "}")


@click.command()
@common_options
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@setting_option(
    "wilayah", "--wilayah", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@setting_option("batch_size", "--batch-size", type=click.IntRange(1, 10_000))
@setting_option("progress_after", "--progress-after", type=click.IntRange(0))
@json_option
def enter(
    data_dir: Path | None,
    lang: str | None,
    verbose: int,
    files: tuple[str, ...],
    wilayah: Path | None,
    batch_size: int | None,
    progress_after: int | None,
    as_json: bool,
) -> None:
    """Check C1 entries from FILE... and save the good ones, signed.

    Each FILE holds a JSON object, a JSON array of objects, or JSON lines (one object per
    line); `-` reads stdin. Files are streamed and saved in transactions of --batch-size.

    An entry whose numbers break rules R1-R10 is SAVED with flags (the form is transcribed as
    written, mistakes included), and the flags are listed. An entry is REJECTED (not saved)
    when it is malformed (the message names the file, entry number, line and field), or when
    rule R11 fails: its TPS is not in the --wilayah master, or its form is not contested in
    that province (DKI Jakarta, 31, has no DPRD_KABKO; checked even without a master). Other
    entries in the same file are still saved. Exit code 1 if anything was rejected.

    \b
    --json (streamed as entries are committed):
    {"saved": [{"seq": int, "hash": hex, "tps": str, "form": str, "flags": [{"rule", "level",
    "field", "en", "id"}], "source": str, "index": int}],
    "rejected": [{"source": str, "index": int, "line": int|null, "field": str|null,
    "code": str, "reason": str, "reason_id": str}],
    "counts": {"read", "saved", "flagged", "rejected"}, "error": {...} only if the store failed}
    (index counts from 0; "source" is the file as given, "stdin" for -.)
    """
    cfg = make_config(
        data_dir=data_dir,
        lang=lang,
        verbose=verbose,
        wilayah=wilayah,
        batch_size=batch_size,
        progress_after=progress_after,
    )
    msg = Messages(cfg.lang)
    stdin = sys.stdin.buffer

    def items() -> Iterator[Any]:
        for f in files:
            yield from read_items(f, stdin if f == "-" else None)

    async def work() -> int:
        master = await asyncio.to_thread(load_wilayah, cfg.wilayah)  # off the loop: ~0.3 s
        async with await open_store(cfg) as store:
            out = (JsonEnter if as_json else HumanEnter)(msg, cfg.progress_after)
            tally = Tally()
            try:
                await enter_items(
                    store,
                    items(),
                    master=master,
                    clock=clock.now_s,
                    batch_size=cfg.batch_size,
                    sink=out,
                    tally=tally,
                )
            except ClientError as exc:
                out.finish(tally, exc)  # what was saved stays saved; say what was not
                if not as_json:
                    raise
                click.echo(f"{msg('error')}: {exc.text(cfg.lang)}", err=True)  # JSON has it
                return 1
            out.finish(tally, None)
            return 1 if tally.rejected else 0

    run(cfg, as_json, work)
