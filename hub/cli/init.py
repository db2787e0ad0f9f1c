"""``c1hub init``: a new hub data folder."""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli.base import Failure, data_option, fail, failure, main


@main.command()
@data_option
@click.option("--name", required=True, help="A name the room will recognise, e.g. 'Hotel A R.2'.")
def init(data_dir: Path, name: str) -> None:
    """Create the hub's key and data folder (safe to run twice)."""
    from hub.node import init_data_dir

    try:
        ident = init_data_dir(data_dir, name)
    except OSError as exc:  # an unwritable folder, a key file others may read
        fail(failure(exc))
    except ValueError as exc:  # node.key is not a c1hub key
        fail(Failure("bad_key", str(exc)))
    click.echo(f"hub id: {ident.node_id}")
    click.echo(f"data:   {data_dir}")
