"""How fast to talk to an upstream: backoff after failures, batch size by how it is doing.

Sans-IO: callers pass ``now`` (monotonic seconds) and a ``random.Random``; nothing here sleeps.
DESIGN §2.8: capped exponential backoff with *full jitter* (a delay drawn uniformly from
[0, min(cap, base * 2**failures)]), never shorter than the upstream's Retry-After, so that
hundreds of hubs coming back at once spread out instead of knocking the server over again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    failures: int = 0
    until: float = 0.0  # monotonic time before which no call should be made

    def failed(self, now: float, rng: random.Random, retry_after: float | None = None) -> float:
        """Record a failure; return the delay chosen (also stored as ``until``)."""
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 30))
        delay = rng.uniform(0, ceiling)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, 10 * self.cap))
        self.until = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.until = 0.0

    def waiting(self, now: float) -> bool:
        return now < self.until


@dataclass(slots=True)
class BatchSizer:
    """Grow by half (at least 10) while calls are fast; halve on failure or slowness."""

    size: int = 200
    low: int = 10
    high: int = 2000
    slow_s: float = 5.0

    def succeeded(self, elapsed_s: float) -> None:
        if elapsed_s > self.slow_s:
            self.size = max(self.low, self.size // 2)
        else:
            self.size = min(self.high, self.size + max(self.size // 2, 10))

    def failed(self) -> None:
        self.size = max(self.low, self.size // 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
