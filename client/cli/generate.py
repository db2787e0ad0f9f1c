"""``c1client generate``: realistic practice forms (``hub.shared.generator.laptop_forms``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hub.protocol import entry
from hub.shared import generator

from ..config import load_wilayah, setting
from ..errors import ClientError, InputError
from .base import EXIT_FAILED, LogHandler, dumps, fail, make_config


def _forms(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    forms = tuple(f.strip().upper() for f in value.split(",") if f.strip())
    bad = [f for f in forms if f not in entry.FORMS]
    if bad or not forms:
        raise click.BadParameter(
            f"unknown form type {', '.join(bad) or '(none)'}; use {','.join(entry.FORMS)}"
        )
    return forms


@click.command()
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
    with LogHandler(cfg.verbose):
        try:
            master = load_wilayah(wilayah)
            out = sys.stdout
            for f in generator.laptop_forms(
                count,
                seed=seed,
                master=master,
                region=region,
                forms=forms,
                mistake_rate=mistakes,
                operator=operator,
            ):
                out.write(dumps(f) + "\n")
            out.flush()
        except ClientError as exc:
            fail(cfg, False, exc)
            sys.exit(EXIT_FAILED)
        except ValueError as exc:  # the region ran out of TPS codes
            fail(cfg, False, InputError(str(exc), code="bad_region"))
            sys.exit(EXIT_FAILED)
