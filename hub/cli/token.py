"""``c1hub token rotate``: a fresh admin token."""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli.base import EXIT_USAGE, data_option, fail, failure, main


@main.group()
def token() -> None:
    """The admin token (admin.token in the data folder, mode 0600)."""


@token.command()
@data_option
def rotate(data_dir: Path) -> None:
    """Replace the admin token with a fresh one (mode 0600, atomically).

    A running hub takes the new token at its next admin call: the old one gets 401 from then
    on. Works whether the hub runs or not. Prints the file's path, never the token.
    """
    from hub.datadir import check_private, new_token
    from hub.errors import NotInitialised, NotPrivate
    from hub.shared.keyfile import KEY_FILE

    try:
        if not (data_dir / KEY_FILE).exists():
            raise NotInitialised(
                f"{data_dir} holds no hub; run: c1hub init --data {data_dir} --name NAME"
            )
        check_private(data_dir, token=False)  # a token open to others is what this replaces
        path = new_token(data_dir)
    except NotPrivate as exc:
        fail(failure(exc), status=EXIT_USAGE)
    except (NotInitialised, OSError) as exc:
        fail(failure(exc))
    click.echo(f"new admin token written to {path}")
