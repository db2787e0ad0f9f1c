"""``c1hub serve``, ``c1hub national`` and ``c1hub demo``: running hubs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hub.cli.base import data_option, hub_config, main, run, setting
from hub.config import MAX_UPSTREAM_LANES

F = TypeVar("F", bound=Callable[..., Any])


def _serve_options(f: F) -> F:
    opts = [
        data_option,
        setting("host", "--host"),
        setting("port", "--port", type=click.IntRange(0, 65535)),
        setting("mdns", "--mdns/--no-mdns"),
        setting("mdns_interfaces", "--mdns-interface"),
        setting("wilayah", "--wilayah",
                type=click.Path(dir_okay=False, exists=True, path_type=Path)),
        setting("max_batch", "--max-batch", type=click.IntRange(1)),
        setting("max_body", "--max-body", type=click.IntRange(1024)),
        setting("max_endorsements", "--max-endorsements", type=click.IntRange(0)),
        setting("max_inflight_bytes", "--max-inflight-bytes", type=click.IntRange(1024)),
        setting("body_timeout", "--body-timeout", type=click.FloatRange(0, min_open=True)),
        setting("header_timeout", "--header-timeout", type=click.FloatRange(0, min_open=True)),
        setting("keepalive_timeout", "--keepalive-timeout",
                type=click.FloatRange(0, min_open=True)),
        setting("max_connections", "--max-connections", type=click.IntRange(1)),
        setting("db", "--db"),
        setting("blobs", "--blobs"),
        setting("max_pending_devices", "--max-pending-devices", type=click.IntRange(0)),
        setting("max_held_records_per_device", "--max-held-records-per-device",
                type=click.IntRange(0)),
        setting("max_held_bytes_per_device", "--max-held-bytes-per-device",
                type=click.IntRange(0)),
        setting("max_held_records", "--max-held-records", type=click.IntRange(0)),
        setting("max_held_bytes", "--max-held-bytes", type=click.IntRange(0)),
        setting("partial_max_age", "--partial-max-age",
                type=click.FloatRange(0, min_open=True)),
        setting("approve_all", "--approve-all", is_flag=True, hidden=True),
        setting("examine_workers", "--examine-workers",
                type=click.Choice(["processes", "threads"])),
    ]  # fmt: skip
    for o in reversed(opts):
        f = o(f)
    return f


@main.command()
@_serve_options
@setting("upstream", "--upstream")
@setting("upstream_kbps", "--upstream-kbps", type=click.IntRange(0))
@setting("upstream_lanes", "--upstream-lanes", type=click.IntRange(1, MAX_UPSTREAM_LANES))
def serve(**kw: Any) -> None:
    """Run the room hub until Ctrl-C."""
    from hub.node import serve_forever

    run(serve_forever(hub_config(**kw)))


@main.command()
@_serve_options
def national(**kw: Any) -> None:
    """Run the national stand-in: a hub with no upstream, the root of the tree."""
    from hub.node import serve_forever

    run(serve_forever(hub_config(root=True, **kw)))


@main.command()
@click.option(
    "--laptops",
    default=4,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Simulated operator laptops.",
)
@click.option(
    "--forms",
    default=240,
    show_default=True,
    type=click.IntRange(1, 200_000),
    help="Distinct forms to type (plus double entries).",
)
@click.option(
    "--wilayah",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Polling-station master: real DKI Jakarta TPS codes and R11 checks.",
)
@click.option("--seed", default=2024, show_default=True, type=int, help="Workload seed.")
@click.option(
    "--outage/--no-outage",
    default=True,
    show_default=True,
    help="Take the national server down midway and bring it back.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's data folders here (default: a temp folder, removed).",
)
@click.option(
    "--pace",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0, 10),
    help="Seconds between typing rounds (0 = as fast as possible).",
)
@click.pass_context
def demo(ctx: click.Context, /, **kw: Any) -> None:
    """A whole room on this machine: national stand-in, room hub, laptops, an outage.

    Ends by checking that the national side holds exactly the entries the laptops made, every
    signature verified; exits 1 if not.
    """  # fmt: skip
    from hub.demo import DemoOptions, main_sync

    if not ctx.parent or not ctx.parent.params.get("verbose"):
        for name in ("hub", "client"):  # the demo prints its own story; -v shows the logs
            logging.getLogger(name).setLevel(logging.ERROR)
    sys.exit(main_sync(DemoOptions(**kw)))
