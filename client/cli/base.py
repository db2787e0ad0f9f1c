"""The click plumbing every ``c1client`` command shares, in one place.

- ``common_options`` (``--data``, ``--lang``, ``-v``) and ``json_option`` (``--json``), their
  defaults, environment variables and help taken from ``client.config.SETTINGS``;
- ``make_config``: one frozen ``ClientConfig`` per run;
- ``run``: runs a command's coroutine, turns every expected failure into a message (and, with
  ``--json``, an ``{"error": {...}}`` object on stdout) with exit code 1;
- ``emit``: one compact JSON document (or JSON line) on stdout;
- ``Group``: the command group; Ctrl-C ends any command with exit code 130 and a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from hub.protocol import rules
from hub.protocol.errors import ProtocolError
from hub.protocol.text import REFUSED, OneLineFormatter

from ..config import SETTINGS, ClientConfig, setting
from ..errors import ClientError, StoreDamagedError, StoreError
from ..i18n import Messages
from ..store import ClientStore

log = logging.getLogger("client.cli")

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and something failed, was refused or is wrong
EXIT_USAGE = 2  # click's own: bad usage
EXIT_INTERRUPTED = 130  # Ctrl-C

_LANG_KEY = "client.cli.lang"  # the run's language, for messages outside a command


class Group(click.Group):
    """``c1client``'s command group: an interrupt (Ctrl-C) is a message and exit code 130,
    never a traceback. What was saved before it stays saved."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            lang = ctx.meta.get(_LANG_KEY) or os.environ.get(setting("lang").env or "", "id")
            click.echo(Messages(lang if lang in ("id", "en") else "id")("interrupted"), err=True)
            ctx.exit(EXIT_INTERRUPTED)


def setting_option(name: str, *flags: str, **kw: Any) -> Callable[[F], F]:
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
    f = setting_option("lang", "--lang", type=click.Choice(["id", "en"]))(f)
    f = setting_option(
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
        if values.get(s.name) is None and s.env is not None and s.env in os.environ:
            values[s.name] = os.environ[s.env]
    try:
        cfg = ClientConfig.build(**values)
    except ClientError as exc:
        raise click.UsageError(exc.message) from None
    except ValueError as exc:  # a number setting given as text that is not a number
        raise click.UsageError(f"bad setting value: {exc}") from None
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_LANG_KEY] = cfg.lang
    return cfg


def dumps(obj: Any) -> str:
    """Compact JSON on one line. JSON escapes U+0000-U+001F itself; the other characters
    ``hub.protocol.text`` refuses (U+007F-U+009F, U+2028, U+2029, bidi controls) are written
    as ``\\uXXXX`` too, so that no reader splits the line and no terminal acts on them. The
    values read back unchanged."""
    out = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return REFUSED.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


def emit(obj: Any) -> None:
    """One compact JSON document (a JSON line) on stdout."""
    click.echo(dumps(obj))


class LogHandler:
    """Attach a stderr log handler for one command run (only the CLI configures logging)."""

    def __init__(self, verbose: int):
        self.level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
        self.handler = logging.StreamHandler(sys.stderr)
        # One record, one line: text from the network in a message is escaped.
        self.handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))

    def __enter__(self) -> None:
        root = logging.getLogger()
        self._old = root.level
        root.addHandler(self.handler)
        root.setLevel(self.level)

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._old)


def fail(cfg: ClientConfig, as_json: bool, exc: ClientError) -> None:
    """Say what failed: the message on stderr, and with ``--json`` the error on stdout."""
    log.debug("command failed", exc_info=True)
    if as_json:
        emit({"error": exc.to_dict()})
    click.echo(f"{Messages(cfg.lang)('error')}: {exc.text(cfg.lang)}", err=True)


def run(cfg: ClientConfig, as_json: bool, work: Callable[[], Awaitable[int]]) -> None:
    """Run one command's coroutine; its result is the exit code. Every expected failure
    (ClientError, a damaged store, the file system refusing) is a message and exit code 1."""

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
        except OSError as exc:
            raise ClientError(
                f"the system refused: {exc}", f"sistem menolak: {exc}", code="os_error"
            ) from exc

    with LogHandler(cfg.verbose):
        try:
            code = asyncio.run(main())
        except ClientError as exc:
            fail(cfg, as_json, exc)
            code = EXIT_FAILED
    if code:
        sys.exit(code)


async def open_store(cfg: ClientConfig) -> ClientStore:
    return await ClientStore.open(cfg.data_dir, busy_timeout=cfg.busy_timeout)


def local_time(at: int | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def state_label(msg: Messages, state: str) -> str:
    return msg(f"state_{state}")


def print_flags(msg: Messages, flags: Iterable[rules.Flag]) -> None:
    """Each flag on two lines: in the run's language, then in the other."""
    for f in flags:
        click.echo(f"    {f.rule:<4} {msg.pick(f.id, f.en)}")
        click.echo(f"         ({msg.pick(f.en, f.id)})")
