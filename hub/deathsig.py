"""Worker processes die with their hub (issue 8, finding 13; Linux).

``follow_parent()`` asks the kernel to SIGKILL the calling process when its parent dies
(``prctl(PR_SET_PDEATHSIG)``). The examine pool's forkserver imports this module as its
preload (``hub.examine.make_pool``): importing it is what arms the forkserver, whose parent is
the hub. Each worker calls ``follow_parent()`` in its initializer: its parent is the
forkserver. So a hub killed with ``kill -9`` takes the forkserver down, that takes the
workers, and the resource tracker, whose pipe they all held, reads EOF and exits too.
The hub itself never imports this module.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def follow_parent() -> None:
    """Die (SIGKILL) when the parent process dies; at once if it is already gone."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


if __name__ != "__main__":
    follow_parent()
