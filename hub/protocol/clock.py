"""The only place protocol users read the clock. Core code takes ``now`` as an argument."""

from __future__ import annotations

import time


def now() -> float:
    """Wall-clock seconds since the epoch."""
    return time.time()


def now_s() -> int:
    """Whole unix seconds (entry and receipt timestamps)."""
    return int(time.time())


def monotonic() -> float:
    return time.monotonic()
