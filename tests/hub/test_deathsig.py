"""``hub.deathsig``: a process armed to follow a parent exits when that parent is gone, even
when it was already gone before the arming (the race the kernel's signal alone misses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

FOLLOWER = "import hub.deathsig, time; print('armed', flush=True); time.sleep(60)"


def test_a_process_whose_named_parent_is_already_gone_exits_at_once() -> None:
    """The forkserver is told its hub's pid: if the hub died before the forkserver armed
    itself, its parent is already someone else, and it must not live on."""
    env = dict(os.environ, C1HUB_PARENT_PID=str(os.getpid() + 1_000_000))  # not our parent
    proc = subprocess.run(
        [sys.executable, "-c", FOLLOWER], env=env, capture_output=True, timeout=30
    )
    assert proc.returncode == 1, proc
    assert b"armed" not in proc.stdout


def test_a_follower_dies_with_its_parent_killed_by_sigkill() -> None:
    """A middle process arms a follower against itself, then is killed with SIGKILL: the
    follower is gone soon after, not adopted and left running."""
    middle_code = (
        "import os, subprocess, sys, time\n"
        "env = dict(os.environ, C1HUB_PARENT_PID=str(os.getpid()))\n"
        f"p = subprocess.Popen([sys.executable, '-c', {FOLLOWER!r}], env=env)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    middle = subprocess.Popen([sys.executable, "-c", middle_code], stdout=subprocess.PIPE)
    try:
        assert middle.stdout is not None
        follower = int(middle.stdout.readline())
        os.kill(middle.pid, signal.SIGKILL)
        middle.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running(follower):
            time.sleep(0.05)
        assert not _running(follower), f"follower {follower} outlived its parent"
    finally:
        middle.kill()
        middle.wait()
        if middle.stdout is not None:
            middle.stdout.close()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
