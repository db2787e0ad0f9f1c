"""The click plumbing of ``c1hub``, in one place: the group, the shared options, running a
command's coroutine, turning every expected error into a message and an exit code (see
``hub.cli``), and printing JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiohttp
import click

from hub import __version__
from hub.config import SETTINGS_BY_NAME, HubConfig
from hub.errors import HubError, NotPrivate
from hub.protocol.discovery_names import parse_interfaces
from hub.protocol.errors import ProtocolError
from hub.protocol.text import OneLineFormatter
from hub.shared.errors import CallError, DatabaseError, SharedError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EXIT_FAILED = 1  # the command ran and something failed, was refused or is wrong
EXIT_USAGE = 2  # bad usage; also a data folder or admin token open to other users
EXIT_INTERRUPTED = 130


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)  # one record, one line: text from the
    handler.setFormatter(  # network is escaped (hub.protocol.text)
        OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="c1hub")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """c1hub — the room hub for C1 (C.Hasil) tally entry.

    Laptops running c1client push their signed entries here over the room's LAN; the hub
    verifies them, stores them durably, gives signed receipts, shows the room's progress and
    forwards one consolidated stream upstream.
    """
    _setup_logging(verbose)


# -- options ----------------------------------------------------------------------------------


def setting(name: str, *flags: str, **kw: Any) -> Callable[[F], F]:
    """A click option whose default, help and environment variable come from
    ``hub.config.SETTINGS`` (declared once)."""
    st = SETTINGS_BY_NAME[name]
    kw.setdefault("help", st.help)
    if st.default is not None:
        kw.setdefault("default", st.default)
        kw.setdefault("show_default", True)
    if st.env is not None:
        kw.setdefault("envvar", st.env)
    return click.option(*flags, name, **kw)


def data_option(f: F) -> F:
    return setting(
        "data_dir", "--data", required=True, type=click.Path(file_okay=False, path_type=Path)
    )(f)


def json_option(f: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (stable shape, see docs)."
    )(f)


def hub_config(**kw: Any) -> HubConfig:
    """The server commands' options as one validated ``HubConfig`` (bad values: usage)."""
    if kw.get("mdns_interfaces"):
        kw["mdns_interfaces"] = tuple(parse_interfaces(kw["mdns_interfaces"]) or ()) or None
    else:
        kw["mdns_interfaces"] = None
    try:
        return HubConfig(**kw)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


# -- running a command ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """An expected failure, as ``--json`` prints it: ``{"error": {"code", "reason"}}``."""

    code: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "reason": self.reason}}


EXPECTED = (HubError, ProtocolError, SharedError, OSError, aiohttp.ClientError, TimeoutError)


def failure(exc: BaseException) -> Failure:
    """What went wrong, in words for the coordinator, with a stable code."""
    if isinstance(exc, ProtocolError):
        return Failure(exc.code, exc.message)
    if isinstance(exc, HubError):
        return Failure(exc.code, str(exc))
    if isinstance(exc, CallError):
        return Failure(exc.code, exc.message)
    if isinstance(exc, DatabaseError):
        return Failure("database", exc.message)
    if isinstance(exc, SharedError):
        return Failure("failed", exc.message)
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return Failure("unreachable", f"the running hub does not answer: {exc or 'timeout'}")
    return Failure("os_error", str(exc))  # port in use, unreadable or loose-mode key file, ...


def fail(f: Failure, as_json: bool = False, status: int = EXIT_FAILED) -> NoReturn:
    if as_json:
        print_json(f.to_dict())
    click.echo(f"error: {f.reason}", err=True)
    sys.exit(status)


def run(coro: Coroutine[Any, Any, T] | Awaitable[T], as_json: bool = False) -> T:
    """Run a command's coroutine; every expected error becomes a message and exit code 1
    (with ``as_json``, also the error object on stdout), 2 for a data folder or admin token
    open to other users; Ctrl-C exits 130."""

    async def wrapped() -> T:
        return await coro

    try:
        return asyncio.run(wrapped())
    except NotPrivate as exc:
        fail(failure(exc), as_json, EXIT_USAGE)
    except EXPECTED as exc:
        fail(failure(exc), as_json)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))
