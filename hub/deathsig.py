"""Worker processes die with their hub (issue 8, finding 13; Linux).

``follow_parent(parent)`` makes the calling process exit when ``parent`` is no longer its
parent, in two independent ways: the kernel's ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, and a
daemon thread that checks ``os.getppid()`` twice a second (the belt to the signal's braces:
a parent that died before the ``prctl`` took effect is caught by comparing with the pid the
process was *meant* to have as parent, not with the one it finds).

The hub names itself in ``C1HUB_PARENT_PID`` before it starts the examine pool
(``hub.examine.make_pool``). The pool's forkserver imports this module as its preload:
importing it arms the forkserver against that pid, then puts the forkserver's own pid in the
variable, which the workers it forks inherit. Each worker calls ``follow_parent()`` in its
initializer and so follows the forkserver. A hub killed with ``kill -9`` takes the forkserver
down, that takes the workers, and the resource tracker, whose pipe they all held, reads EOF and
exits too. The hub itself never imports this module.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
PARENT_ENV = "C1HUB_PARENT_PID"
POLL_S = 0.5


def expected_parent() -> int:
    """The pid this process is meant to follow: ``C1HUB_PARENT_PID``, else its parent now."""
    try:
        return int(os.environ[PARENT_ENV])
    except (KeyError, ValueError):
        return os.getppid()


def follow_parent(parent: int | None = None) -> None:
    """Exit when ``parent`` (default ``expected_parent()``) stops being this process's parent;
    at once if it already has."""
    if not sys.platform.startswith("linux"):
        return
    parent = expected_parent() if parent is None else parent
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="c1hub-deathsig", daemon=True).start()


def _watch(parent: int) -> None:
    while True:
        time.sleep(POLL_S)
        if os.getppid() != parent:
            os._exit(1)


if __name__ != "__main__":
    follow_parent()
    os.environ[PARENT_ENV] = str(os.getpid())  # the workers this process forks follow it
