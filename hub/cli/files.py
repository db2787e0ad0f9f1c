"""``c1hub export`` and ``c1hub verify``: the hub's entries as files, and checking a bundle."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hub.cli.base import Failure, data_option, fail, failure, json_option, main, print_json


@main.command()
@data_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "bundle"]),
    default="csv",
    show_default=True,
    help="csv/jsonl for spreadsheets; bundle = signed, verifiable.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file (default: stdout for csv/jsonl; required for bundle).",
)
def export(data_dir: Path, fmt: str, out: Path | None) -> None:
    """Export every stored entry: CSV, JSON lines, or a signed bundle (c1hub verify).

    Works while the hub runs (it reads a consistent snapshot) or while it is stopped.
    """  # fmt: skip
    from hub import export as ex
    from hub.node import read_name
    from hub.protocol import clock
    from hub.shared import keyfile

    if fmt == "bundle" and out is None:
        raise click.UsageError("a bundle is binary: give --out FILE.c1b")
    try:
        if fmt == "bundle":
            assert out is not None
            ident = keyfile.load(data_dir / keyfile.KEY_FILE)
            with open(out, "wb") as f:
                n = ex.export_bundle(data_dir, ident, read_name(data_dir), f, clock.now_s())
        else:
            write = ex.export_csv if fmt == "csv" else ex.export_jsonl
            if out is None:
                n = write(data_dir, sys.stdout)
            else:
                with open(out, "w", encoding="utf-8", newline="") as f:
                    n = write(data_dir, f)
    except OSError as exc:  # no such data folder, an unwritable --out, ...
        fail(failure(exc))
    except ValueError as exc:  # node.key is not a c1hub key
        fail(Failure("bad_key", str(exc)))
    click.echo(f"exported {n} entries" + (f" to {out}" if out else ""), err=True)


@main.command()
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@json_option
def verify(bundle: Path, as_json: bool) -> None:
    """Check a signed bundle offline: the hub's signature, every entry's signature and chain.

    Exit 0 if everything verifies, 1 otherwise (each problem is listed).
    JSON: {"ok", "hub", "name", "created_at", "records", "origins", "endorsements",
    "problems": [str]}.
    """
    from hub.export import verify_bundle

    try:
        with open(bundle, "rb") as f:
            rep = verify_bundle(f)
    except OSError as exc:
        fail(failure(exc), as_json)
    if as_json:
        print_json(rep.to_dict())
    else:
        click.echo(f"bundle from hub {rep.hub_id} ({rep.name}): {rep.records} entries from "
                   f"{rep.origins} devices, {rep.endorsements} endorsements")  # fmt: skip
        for p in rep.problems:
            click.echo(f"PROBLEM: {p}")
        click.echo("OK: every signature and chain verifies" if rep.ok else "FAILED")
    sys.exit(0 if rep.ok else 1)
