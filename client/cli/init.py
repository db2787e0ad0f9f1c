"""``c1client init``: this laptop's key and local store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from hub.protocol import clock

from ..i18n import Messages
from ..store import ClientStore
from .base import common_options, emit, json_option, make_config, run


@dataclass(frozen=True, slots=True)
class Initialised:
    node_id: str
    name: str
    data_dir: Path
    created: bool

    def to_dict(self) -> dict[str, Any]:
        """The ``c1client init --json`` document (docs/json-output.md)."""
        return {
            "node_id": self.node_id,
            "name": self.name,
            "data_dir": str(self.data_dir),
            "created": self.created,
        }


@click.command()
@common_options
@click.option("--name", required=True, help="This laptop's name, e.g. the operator's seat.")
@json_option
def init(data_dir: Path | None, lang: str | None, verbose: int, name: str, as_json: bool) -> None:
    """Create this laptop's key and local store, and print its node id.

    The node id (XXXX-XXXX-XXXX) names this laptop in the hub's device list. When the laptop
    first syncs, both screens show a sixteen-digit comparison code: the coordinator approves the
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
            done = Initialised(store.node_id, store.name, cfg.data_dir, created)
        if as_json:
            emit(done.to_dict())
            return 0
        click.echo(msg("init_created" if created else "init_exists", name=done.name,
                       data_dir=done.data_dir))  # fmt: skip
        click.echo(msg("node_id", node_id=done.node_id))
        return 0

    run(cfg, as_json, work)
