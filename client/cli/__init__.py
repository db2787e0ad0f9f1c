"""``c1client``: the operator laptop's command line, one module per command.

Thin: each command parses its options, builds one ``ClientConfig`` (``base.make_config``), and
runs one coroutine against the store (``base.run``). Messages are Indonesian by default,
English with ``--lang en`` (or ``C1_LANG=en``). With ``--json``, output is the ``to_dict()`` of
the command's result type, documented in its help and in docs/json-output.md.

Exit codes (the same for ``c1hub``; docs/cli.md):

- ``0`` success;
- ``1`` the command ran and something failed, was refused or is wrong: the message says what
  (with ``--json``, an ``{"error": {"code", "reason", "reason_id"}}`` object on stdout);
- ``2`` bad usage (click's own: an unknown option, a bad value);
- ``130`` interrupted (Ctrl-C); what was saved before stays saved.

Every expected error is a message, never a traceback. A new command takes ``@common_options``
and ``@json_option`` and calls ``run(cfg, as_json, coroutine_function)``; add it below.
"""

from __future__ import annotations

import click

from client.ui.command import ui as ui_command  # the operator's station (client/ui/)

from . import enter, entries, generate, init, status, sync, verify
from .base import Group, make_config

__all__ = ["main", "make_config"]


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="c1hub", prog_name="c1client")
def main() -> None:
    """c1client: enter C1 (C.Hasil) forms on this laptop, signed and kept safe.

    Every entry is signed with this laptop's key the moment it is saved, and kept in a local
    store that nothing edits or deletes. Start with `c1client init --name NAME`.
    """


for _command in (
    init.init,
    enter.enter,
    entries.list_,
    entries.show,
    status.status,
    verify.verify,
    sync.sync,
    generate.generate,
    ui_command,
):
    main.add_command(_command)
