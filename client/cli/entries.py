"""``c1client list`` and ``c1client show``: the entries in this laptop's store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from hub.protocol import entry, record, rules
from hub.protocol.identity import fingerprint

from ..db import StoredEntry
from ..errors import ClientError
from ..i18n import Messages
from ..status import Marks
from .base import (
    common_options,
    emit,
    json_option,
    local_time,
    make_config,
    open_store,
    print_flags,
    run,
    state_label,
)


@dataclass(frozen=True, slots=True)
class Listed:
    """One line of ``c1client list``: a stored entry and where it is."""

    entry: StoredEntry
    state: str

    def to_dict(self) -> dict[str, Any]:
        """One ``c1client list --json`` line (docs/json-output.md)."""
        e = self.entry
        return {
            "seq": e.seq,
            "hash": e.hash.hex(),
            "election": e.election,
            "tps": e.tps,
            "form": e.form,
            "flags": list(e.flags),
            "state": self.state,
            "entered_at": e.entered_at,
        }


@dataclass(frozen=True, slots=True)
class Shown:
    """``c1client show``: one entry in full, decoded from its signed bytes."""

    record: record.Record
    body: dict[str, Any]
    flags: list[rules.Flag]
    state: str

    @classmethod
    def of(cls, raw: bytes, marks: Marks) -> Shown:
        rec = record.decode(raw)
        body = entry.decode_body(rec.body)
        return cls(rec, body, rules.check(body), marks.state(rec.seq))

    def to_dict(self) -> dict[str, Any]:
        """The ``c1client show --json`` document (docs/json-output.md)."""
        return {
            "seq": self.record.seq,
            "hash": self.record.hash.hex(),
            "prev": self.record.prev.hex(),
            "origin": fingerprint(self.record.origin),
            "state": self.state,
            "flags": [f.to_dict() for f in self.flags],
            "entry": entry.to_json(self.body),
        }


@click.command(name="list")
@common_options
@json_option
def list_(data_dir: Path | None, lang: str | None, verbose: int, as_json: bool) -> None:
    """List every entry in this laptop's store, oldest first, with its state.

    States: local (only on this laptop), at_hub (the hub gave a receipt), confirmed (upstream
    confirmed it).

    \b
    --json: JSON lines, one object per entry:
    {"seq": int, "hash": hex, "election": str, "tps": str, "form": str, "flags": [rule id],
    "state": "local"|"at_hub"|"confirmed", "entered_at": unix seconds}
    """
    cfg = make_config(data_dir=data_dir, lang=lang, verbose=verbose)
    msg = Messages(cfg.lang)

    def line(seq: str, hash_: str, tps: str, form: str, state: str, flags: str) -> None:
        click.echo(
            msg("list_header", seq=seq, hash=hash_, tps=tps, form=form, state=state, flags=flags)
        )

    async def work() -> int:
        async with await open_store(cfg) as store:
            marks = await store.marks()
            any_rows = False
            async for e in store.entries():
                row = Listed(e, marks.state(e.seq))
                if as_json:
                    emit(row.to_dict())
                    continue
                if not any_rows:
                    line(msg("col_seq"), msg("col_hash"), msg("col_tps"), msg("col_form"),
                         msg("col_state"), msg("col_flags"))  # fmt: skip
                line(f"#{e.seq}", e.hash.hex()[:12], e.tps, e.form,
                     state_label(msg, row.state), ",".join(e.flags) or "-")  # fmt: skip
                any_rows = True
            if not any_rows and not as_json:
                click.echo(msg("list_empty"))
        return 0

    run(cfg, as_json, work)


@click.command()
@common_options
@click.argument("seq", type=click.IntRange(1))
@json_option
def show(data_dir: Path | None, lang: str | None, verbose: int, seq: int, as_json: bool) -> None:
    """Show entry SEQ in full: the signed entry, its flags with messages, and its state.

    \b
    --json: {"seq": int, "hash": hex, "prev": hex, "origin": node id,
    "state": "local"|"at_hub"|"confirmed", "flags": [{"rule", "level", "field", "en", "id"}],
    "entry": {the entry as JSON (the input format) plus "entered_at" and "supersedes"}}
    Exit code 1 if there is no entry SEQ.
    """
    cfg = make_config(data_dir=data_dir, lang=lang, verbose=verbose)
    msg = Messages(cfg.lang)

    async def work() -> int:
        async with await open_store(cfg) as store:
            e = await store.get(seq)
            marks = await store.marks()
        if e is None:
            raise ClientError(
                f"There is no entry {seq}.", f"Tidak ada entri nomor {seq}.", code="no_entry"
            )
        shown = Shown.of(e.raw, marks)
        if as_json:
            emit(shown.to_dict())
            return 0
        rec, body = shown.record, shown.body
        click.echo(msg("show_head", seq=rec.seq, state=state_label(msg, shown.state)))
        click.echo(msg("show_hash", hash=rec.hash.hex()))
        click.echo(msg("show_entered", at=local_time(body["entered_at"]),
                       operator=body["operator"]))  # fmt: skip
        if body.get("supersedes"):
            click.echo(msg("show_supersedes", hash=body["supersedes"]))
        if shown.flags:
            click.echo(msg("show_flags"))
            print_flags(msg, shown.flags)
        else:
            click.echo(msg("show_no_flags"))
        click.echo(json.dumps(entry.to_json(body), ensure_ascii=False, indent=2))
        return 0

    run(cfg, as_json, work)
