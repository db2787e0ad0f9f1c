"""Where a laptop's entries are: local only, at the hub, confirmed upstream (DESIGN §2.7).

Derived, never stored: an entry is ``confirmed`` if its seq is covered by an upstream receipt,
else ``at_hub`` if covered by a hub receipt, else ``local``. Because each record names its
predecessor's hash, a receipt for seq N covers every entry up to N. Upstream only holds what
the hub forwarded, so an entry confirmed upstream is at the hub too: ``at_hub`` counts those as
well, ``local_only + at_hub = entries`` and ``confirmed_upstream <= at_hub``.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL = "local"
AT_HUB = "at_hub"
CONFIRMED = "confirmed"
STATES = (LOCAL, AT_HUB, CONFIRMED)


@dataclass(frozen=True, slots=True)
class Marks:
    """The highest seq covered by a hub receipt and by an upstream receipt."""

    hub: int = 0
    upstream: int = 0

    def state(self, seq: int) -> str:
        if seq <= self.upstream:
            return CONFIRMED
        if seq <= self.hub:
            return AT_HUB
        return LOCAL

    def where(self, last_seq: int) -> Where:
        """How many of the entries 1..``last_seq`` are where."""
        at_hub = min(max(self.hub, self.upstream), last_seq)
        return Where(
            at_hub=at_hub,
            confirmed_upstream=min(self.upstream, last_seq),
            local_only=max(last_seq - at_hub, 0),
        )

    @property
    def local_after(self) -> int:
        """The entries after this seq are local only."""
        return max(self.hub, self.upstream)


@dataclass(frozen=True, slots=True)
class Where:
    at_hub: int
    confirmed_upstream: int
    local_only: int
