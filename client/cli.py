"""``c1client``: the operator laptop's command line.

Thin: each command parses its options, builds one ``ClientConfig``, and runs one coroutine
against the store (``asyncio.run``). Messages are Indonesian by default, English with
``--lang en`` (or ``C1_LANG=en``). ``--json`` output shapes are stable and documented in each
command's docstring. Exit codes: 0 success; 1 something was rejected, failed or is wrong
(the message says what); 2 bad usage.

With ``--json``, a failure prints ``{"error": {"code", "reason", "reason_id"}}`` on stdout (and
the message on stderr). New commands take the common options with ``@common_options`` and run
with ``run(cfg, as_json, coroutine_function)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from hub.protocol import clock, entry, generator, record, rules
from hub.protocol.errors import ProtocolError
from hub.protocol.identity import fingerprint
from hub.protocol.wilayah import Master

from .config import SETTINGS, ClientConfig, setting
from .errors import ClientError, InputError, StoreDamagedError, StoreError
from .i18n import Messages
from .intake import Rejected, Saved, Tally, enter_items, read_items
from .store import ClientStore, Marks
from .sync import SyncReport, sync_forever, sync_once
from .ui.command import ui as ui_command  # the operator's station (client/ui/)

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


# -- shared plumbing -------------------------------------------------------------------------


def _setting_option(name: str, *flags: str, **kw: Any) -> Callable[[F], F]:
    """A click option whose default, environment variable and help come from SETTINGS."""
    s = setting(name)
    kw.setdefault("help", s.help)
    return click.option(
        *flags,
        name,
        default=s.default,
        envvar=s.env,
        show_envvar=True,
        show_default=s.default is not None,
        **kw,
    )


def common_options(f: F) -> F:
    """``--data``, ``--lang``, ``-v``: taken by every command."""
    f = click.option(
        "-v",
        "--verbose",
        count=True,
        help="Log more on stderr (-v: info, -vv: debug).",
    )(f)
    f = _setting_option("lang", "--lang", type=click.Choice(["id", "en"]))(f)
    f = _setting_option(
        "data_dir", "--data", type=click.Path(file_okay=False, path_type=Path), metavar="DIR"
    )(f)
    return f


def json_option(f: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print machine-readable JSON on stdout (shape in the command's help).",
    )(f)


def make_config(**values: Any) -> ClientConfig:
    """The one config of a command run. Settings a command has no option for are still read
    from their environment variable (e.g. C1CLIENT_BUSY_TIMEOUT for every command)."""
    for s in SETTINGS:
        if values.get(s.name) is None and s.env in os.environ:
            values[s.name] = os.environ[s.env]
    try:
        return ClientConfig.build(**values)
    except ClientError as exc:
        raise click.UsageError(exc.message) from None
    except ValueError as exc:  # a number setting given as text that is not a number
        raise click.UsageError(f"bad setting value: {exc}") from None


def _emit(obj: Any) -> None:
    click.echo(_dumps(obj))


class _LogHandler:
    """Attach a stderr log handler for one command run (only the CLI configures logging)."""

    def __init__(self, verbose: int):
        self.level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def __enter__(self) -> None:
        root = logging.getLogger()
        self._old = root.level
        root.addHandler(self.handler)
        root.setLevel(self.level)

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._old)


def run(cfg: ClientConfig, as_json: bool, work: Callable[[], Awaitable[int]]) -> None:
    """Run one command's coroutine; map ClientError to a clear message and exit code 1."""
    msg = Messages(cfg.lang)

    async def main() -> int:
        try:
            return await work()
        except ProtocolError as exc:  # a stored record that no longer decodes
            raise StoreDamagedError(
                f"a stored entry is damaged ({exc.message}): run `c1client verify`",
                f"ada entri tersimpan yang rusak ({exc.message}): jalankan `c1client verify`",
            ) from exc
        except sqlite3.Error as exc:
            raise StoreError(
                f"the local store failed: {exc}", f"penyimpanan lokal gagal: {exc}"
            ) from exc

    with _LogHandler(cfg.verbose):
        try:
            code = asyncio.run(main())
        except ClientError as exc:
            log.debug("command failed", exc_info=True)
            if as_json:
                _emit({"error": exc.to_dict()})
            click.echo(f"{msg('error')}: {exc.text(cfg.lang)}", err=True)
            code = 1
    if code:
        sys.exit(code)


async def _open(cfg: ClientConfig) -> ClientStore:
    return await ClientStore.open(cfg.data_dir, busy_timeout=cfg.busy_timeout)


def _load_master(path: Path | None) -> Master | None:
    if path is None:
        return None
    try:
        return Master.load(path)
    except (OSError, ProtocolError) as exc:
        raise InputError(
            f"{path} is not a usable polling-station master: {exc}",
            f"{path} bukan data wilayah yang dapat dipakai: {exc}",
        ) from None


def _time(at: int | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _state_label(msg: Messages, state: str) -> str:
    return msg(f"state_{state}")


# -- commands --------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="c1hub", prog_name="c1client")
def main() -> None:
    """c1client: enter C1 (C.Hasil) forms on this laptop, signed and kept safe.

    Every entry is signed with this laptop's key the moment it is saved, and kept in a local
    store that nothing edits or deletes. Start with `c1client init --name NAME`.
    """


@main.command()
@common_options
@click.option("--name", required=True, help="This laptop's name, e.g. the operator's seat.")
@json_option
def init(data_dir: Path | None, lang: str | None, verbose: int, name: str, as_json: bool) -> None:
    """Create this laptop's key and local store, and print its node id.

    The node id (XXXX-XXXX-XXXX) names this laptop in the hub's device list. When the laptop
    first syncs, both screens show a six-digit comparison code: the coordinator approves the
    laptop only if the codes match. Running init again with the same name changes nothing and
    prints the same id; with another name it is refused (a laptop keeps its name). An existing
    node.key (restored from a backup) is used, never replaced.

    \b
    --json: {"node_id": str, "name": str, "data_dir": str, "created": bool}
    """
    cfg = make_config(data_dir=data_dir, lang=lang, verbose=verbose)
    msg = Messages(cfg.lang)

    async def work() -> int:
        store, created = await ClientStore.create(
            cfg.data_dir, name, now=clock.now_s(), busy_timeout=cfg.busy_timeout
        )
        async with store:
            if as_json:
                _emit(
                    {
                        "node_id": store.node_id,
                        "name": store.name,
                        "data_dir": str(cfg.data_dir),
                        "created": created,
                    }
                )
            else:
                key = "init_created" if created else "init_exists"
                click.echo(msg(key, name=store.name, data_dir=cfg.data_dir))
                click.echo(msg("node_id", node_id=store.node_id))
        return 0

    run(cfg, as_json, work)


class _HumanEnter:
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
        for f in s.flags:
            click.echo(f"    {f.rule:<4} {m.pick(f.id, f.en)}")
            click.echo(f"         ({m.pick(f.en, f.id)})")

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


class _JsonEnter(_HumanEnter):
    """Streams ``saved`` as each batch commits; keeps rejections (small) for the end."""

    def __init__(self, msg: Messages, progress_after: int):
        super().__init__(msg, progress_after)
        self.first = True
        click.echo('{"saved":[', nl=False)

    def saved(self, s: Saved) -> None:
        click.echo(("\n" if self.first else ",\n") + _dumps(s.to_dict()), nl=False)
        self.first = False

    def finish(self, t: Tally, error: ClientError | None) -> None:
        rej = ",\n".join(_dumps(r.to_dict()) for r in self.rejections)
        counts = {"read": t.read, "saved": t.saved, "flagged": t.flagged, "rejected": t.rejected}
        tail = f'\n],"rejected":[{chr(10) if rej else ""}{rej}\n],"counts":{_dumps(counts)}'
        if error is not None:
            tail += f',"error":{_dumps(error.to_dict())}'
        click.echo(tail + "}")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@main.command()
@common_options
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@_setting_option(
    "wilayah", "--wilayah", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@_setting_option("batch_size", "--batch-size", type=click.IntRange(1, 10_000))
@_setting_option("progress_after", "--progress-after", type=click.IntRange(0))
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
        master = _load_master(cfg.wilayah)
        async with await _open(cfg) as store:
            out = (_JsonEnter if as_json else _HumanEnter)(msg, cfg.progress_after)
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


@main.command(name="list")
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

    async def work() -> int:
        async with await _open(cfg) as store:
            marks = await store.marks()
            any_rows = False
            async for e in store.entries():
                state = marks.state(e.seq)
                if as_json:
                    _emit(
                        {
                            "seq": e.seq,
                            "hash": e.hash.hex(),
                            "election": e.election,
                            "tps": e.tps,
                            "form": e.form,
                            "flags": list(e.flags),
                            "state": state,
                            "entered_at": e.entered_at,
                        }
                    )
                    continue
                if not any_rows:
                    click.echo(
                        msg(
                            "list_header",
                            seq=msg("col_seq"),
                            hash=msg("col_hash"),
                            tps=msg("col_tps"),
                            form=msg("col_form"),
                            state=msg("col_state"),
                            flags=msg("col_flags"),
                        )
                    )
                click.echo(
                    msg(
                        "list_header",
                        seq=f"#{e.seq}",
                        hash=e.hash.hex()[:12],
                        tps=e.tps,
                        form=e.form,
                        state=_state_label(msg, state),
                        flags=",".join(e.flags) or "-",
                    )
                )
                any_rows = True
            if not any_rows and not as_json:
                click.echo(msg("list_empty"))
        return 0

    run(cfg, as_json, work)


@main.command()
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
        async with await _open(cfg) as store:
            e = await store.get(seq)
            marks = await store.marks()
        if e is None:
            raise ClientError(
                f"There is no entry {seq}.", f"Tidak ada entri nomor {seq}.", code="no_entry"
            )
        return _show(msg, e.raw, marks, as_json)

    run(cfg, as_json, work)


def _show(msg: Messages, raw: bytes, marks: Marks, as_json: bool) -> int:
    rec = record.decode(raw)
    body = entry.decode_body(rec.body)
    flags = rules.check(body)
    state = marks.state(rec.seq)
    if as_json:
        _emit(
            {
                "seq": rec.seq,
                "hash": rec.hash.hex(),
                "prev": rec.prev.hex(),
                "origin": fingerprint(rec.origin),
                "state": state,
                "flags": [f.to_dict() for f in flags],
                "entry": entry.to_json(body),
            }
        )
        return 0
    click.echo(msg("show_head", seq=rec.seq, state=_state_label(msg, state)))
    click.echo(msg("show_hash", hash=rec.hash.hex()))
    click.echo(msg("show_entered", at=_time(body["entered_at"]), operator=body["operator"]))
    if body.get("supersedes"):
        click.echo(msg("show_supersedes", hash=body["supersedes"]))
    if flags:
        click.echo(msg("show_flags"))
        for f in flags:
            click.echo(f"    {f.rule:<4} {msg.pick(f.id, f.en)}")
            click.echo(f"         ({msg.pick(f.en, f.id)})")
    else:
        click.echo(msg("show_no_flags"))
    click.echo(json.dumps(entry.to_json(body), ensure_ascii=False, indent=2))
    return 0


@main.command()
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
    "oldest_local_entered_at": int|null}
    """
    cfg = make_config(data_dir=data_dir, lang=lang, verbose=verbose)
    msg = Messages(cfg.lang)

    async def work() -> int:
        async with await _open(cfg) as store:
            s = await store.summary()
        if as_json:
            _emit(
                {
                    "node_id": s.node_id,
                    "name": s.name,
                    "data_dir": str(cfg.data_dir),
                    "entries": s.entries,
                    "last_seq": s.last_seq,
                    "flagged": s.flagged,
                    "hub": {
                        "id": s.hub.node_id if s.hub else None,
                        "url": s.hub.url if s.hub else None,
                        "last_ok_at": s.hub.last_ok_at if s.hub else None,
                        "state": s.hub.state if s.hub else None,
                        "code": s.hub.code if s.hub else None,
                    },
                    "at_hub": s.at_hub,
                    "confirmed_upstream": s.confirmed_upstream,
                    "local_only": s.local_only,
                    "oldest_local_entered_at": s.oldest_local_entered_at,
                }
            )
            return 0
        click.echo(msg("status_laptop", name=s.name, node_id=s.node_id))
        click.echo(msg("status_entries", entries=s.entries, last_seq=s.last_seq, flagged=s.flagged))
        hub = f"{s.hub.node_id}  {s.hub.url}" if s.hub else msg("status_no_hub")
        click.echo(msg("status_hub", hub=hub))
        if s.hub is not None and s.hub.state:
            key = {"pending": "status_pending", "approved": "status_approved",
                   "revoked": "status_revoked"}.get(s.hub.state)  # fmt: skip
            if key is not None:
                click.echo(msg(key, code=s.hub.code or "-"))
        oldest = s.oldest_local_entered_at
        click.echo(
            msg(
                "status_local",
                count=s.local_only,
                oldest="" if oldest is None else msg("status_oldest", at=_time(oldest)),
            )
        )
        click.echo(msg("status_at_hub", count=s.at_hub))
        click.echo(msg("status_confirmed", count=s.confirmed_upstream))
        return 0

    run(cfg, as_json, work)


@main.command()
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
        async with await _open(cfg) as store:
            report = await store.verify()
        if as_json:
            _emit(
                {
                    "ok": report.ok,
                    "entries": report.checked,
                    "last_seq": report.last_seq,
                    "problems": [p.to_dict() for p in report.problems],
                }
            )
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


@main.command()
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

    Finds the hub (--hub, else mDNS, else the last address that worked), checks it is the hub
    this laptop is enrolled at (its key is pinned at first contact), enrolls if needed, and
    pushes every entry the hub lacks. Without --once it keeps going as new entries are saved
    and as the hub comes and goes (retrying with backoff).

    \b
    --json (one object per round): {"hub": {"id", "url"}, "state": "pending"|"approved"|...,
    "code": "123 456", "pushed": int, "accepted": int, "duplicate": int, "at_hub": int,
    "confirmed_upstream": int, "local_only": int, "rejected": [{"seq", "code", "reason"}],
    "refused_hubs": [url]}
    """  # fmt: skip
    from hub.protocol.discovery_names import parse_interfaces

    cfg = make_config(data_dir=data_dir, lang=lang, verbose=verbose)
    msg = Messages(cfg.lang)
    try:
        ifaces = parse_interfaces(mdns_interfaces)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mdns-interface") from None

    def report(rep: SyncReport, entries: int) -> None:
        if as_json:
            _emit(rep.to_dict())
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
        import aiohttp

        async with await _open(cfg) as store:
            store_id[0] = store.node_id
            if once:
                async with aiohttp.ClientSession() as http:
                    rep = await sync_once(store, http, hub_url=hub_urls, mdns_interfaces=ifaces,
                                          batch=batch, add_hub=add_hub)  # fmt: skip
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
                               add_hub=add_hub, on_report=on_report,
                               on_error=on_error)  # fmt: skip
        return 0

    run(cfg, as_json, work)


def generate_forms(
    count: int,
    *,
    seed: int,
    master: Master | None,
    region: str,
    forms: tuple[str, ...],
    mistake_rate: float,
    operator: str,
) -> Iterator[dict[str, Any]]:
    """``count`` realistic forms, one at a time: the forms ``generator.room_workload`` gives one
    laptop for the same seed (a test keeps the two in step), without holding them all."""
    rng = random.Random(seed)
    codes = generator.tps_codes(master, region, rng)
    made = 0
    while made < count:
        tps = next(codes)
        for form in forms:
            if made >= count:
                break
            if form == "DPRD_KABKO" and tps.startswith("31"):
                continue
            f = generator.make_form(
                rng, tps, form, operator=operator, voters_rng=random.Random(f"{seed}/{tps}")
            )
            if rng.random() < mistake_rate:
                generator.add_mistake(rng, f)
            made += 1
            yield f


def _forms(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    forms = tuple(f.strip().upper() for f in value.split(",") if f.strip())
    bad = [f for f in forms if f not in entry.FORMS]
    if bad or not forms:
        raise click.BadParameter(
            f"unknown form type {', '.join(bad) or '(none)'}; use {','.join(entry.FORMS)}"
        )
    return forms


@main.command()
@click.option("--count", required=True, type=click.IntRange(1), help="How many forms.")
@click.option("--seed", default=2024, show_default=True, help="Same seed, same forms.")
@click.option(
    "--wilayah",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar=setting("wilayah").env,
    help="Polling-station master: use real TPS codes from it (else synthetic province 99).",
)
@click.option(
    "--region",
    default="31",
    show_default=True,
    help="Region code prefix for TPS codes from the master (31 = DKI Jakarta).",
)
@click.option(
    "--forms",
    default="PPWP",
    show_default=True,
    callback=_forms,
    help=f"Comma-separated form types, from {','.join(entry.FORMS)}.",
)
@click.option(
    "--mistakes",
    default=0.15,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of forms given one paper mistake (they will be saved with flags).",
)
@click.option("--operator", default="Operator 01", show_default=True, help="Operator name.")
@click.option("--data", "data_dir", hidden=True, help="Accepted and ignored.")
@click.option("--lang", hidden=True, help="Accepted and ignored.")
@click.option("-v", "--verbose", count=True, help="Log more on stderr.")
def generate(
    count: int,
    seed: int,
    wilayah: Path | None,
    region: str,
    forms: tuple[str, ...],
    mistakes: float,
    operator: str,
    data_dir: str | None,
    lang: str | None,
    verbose: int,
) -> None:
    """Write COUNT realistic C1 forms as JSON lines on stdout (for demos and tests).

    The numbers are consistent except for the share --mistakes of forms, which carry one of
    the mistakes real forms have (72 written as 172, valid and invalid swapped, ...). Pipe
    into `c1client enter -`. Touches no store.
    """
    cfg = make_config(lang=lang, verbose=verbose)
    with _LogHandler(cfg.verbose):
        try:
            master = _load_master(wilayah)
            out = sys.stdout
            for f in generate_forms(
                count,
                seed=seed,
                master=master,
                region=region,
                forms=forms,
                mistake_rate=mistakes,
                operator=operator,
            ):
                out.write(_dumps(f) + "\n")
            out.flush()
        except ClientError as exc:
            click.echo(f"{Messages(cfg.lang)('error')}: {exc.text(cfg.lang)}", err=True)
            sys.exit(1)
        except ValueError as exc:  # the region ran out of TPS codes
            click.echo(f"{Messages(cfg.lang)('error')}: {exc}", err=True)
            sys.exit(1)


main.add_command(ui_command)

if __name__ == "__main__":
    main()
