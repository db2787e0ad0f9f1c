"""``c1hub``: the room hub, the national stand-in, enrollment, status, exports.

Thin: each command parses its options, builds what it needs (a ``HubConfig`` for the server
commands) and runs one coroutine (``asyncio.run``). The click plumbing — the group, the shared
options, running a coroutine, errors, JSON — is in ``hub/cli/base.py``; the commands live by
group:

- ``hub/cli/serve.py``   ``serve``, ``national``, ``demo``
- ``hub/cli/admin.py``   ``devices``, ``approve``, ``revoke``, ``status``: through the running
                         hub's admin socket (``DATA/admin.sock``) when one serves the folder,
                         otherwise on its store through the hub service
- ``hub/cli/init.py``    ``init``
- ``hub/cli/token.py``   ``token rotate``
- ``hub/cli/files.py``   ``export``, ``verify``

Exit codes (the same for ``c1client``): 0 success; 1 the command ran and something failed, was
refused or is wrong (the message on stderr says what; with ``--json`` an
``{"error": {"code", "reason"}}`` object on stdout); 2 bad usage (click's own); 130 interrupted.
Every expected error is a message, never a traceback. A data folder or admin token open to
other users is refused with exit 2 and the ``chmod`` to run.
"""

from __future__ import annotations

from hub.cli import admin, files, init, serve, token
from hub.cli.base import main

__all__ = ["admin", "files", "init", "main", "serve", "token"]

if __name__ == "__main__":
    main()
