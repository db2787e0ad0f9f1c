"""Quotas on what hosts nobody approved can make a hub keep (sans-IO; issue 8, finding 4).

A room hub holds the records of laptops it does not know yet (they are stored and receipted,
not counted), so that a laptop can push before the coordinator approves it. Without a bound,
anyone on the LAN could fill the disk that way, or bury the coordinator's list under pending
devices. These quotas bound it:

- ``pending_devices``: devices pending at once. A new device past it is refused: an
  enrollment gets ``quota``, a record of an unknown key is refused with ``quota`` and no
  device is made for it, an endorsement that would admit a pending device is left out.
- ``held_records_per_device`` / ``held_bytes_per_device``: what one device that was never
  approved may have stored (bytes: the lengths of its signed records as stored);
  ``held_records`` / ``held_bytes``: the same over all such devices together.

A record over a quota is refused with ``quota``: it is not stored, so it gets no receipt and
nothing acknowledged is lost; the laptop pushes it again after approval. Approving a device
lifts its quota: it is no longer counted, and its next push is taken.

``Ledger`` keeps the figures while one write transaction decides: the committed usage (read,
never changed) plus what this transaction adds, which the store applies to its memory after
the COMMIT (``added``, ``new_pending``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ProtocolError

QUOTA = "quota"

MiB = 1024 * 1024


class QuotaError(ProtocolError):
    """A quota on what devices nobody approved may keep here is reached (HTTP 429)."""

    code = QUOTA


@dataclass(frozen=True, slots=True)
class Quotas:
    pending_devices: int = 1000
    held_records_per_device: int = 5000
    held_bytes_per_device: int = 32 * MiB
    held_records: int = 200_000
    held_bytes: int = 512 * MiB


@dataclass(frozen=True, slots=True)
class Usage:
    """Records and bytes held."""

    records: int = 0
    bytes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.records + other.records, self.bytes + other.bytes)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.records - other.records, self.bytes - other.bytes)


@dataclass(slots=True)
class Ledger:
    """The quotas as one transaction sees them: committed figures plus its own additions.

    ``held`` is the committed usage of every device never approved (by public key), ``total``
    its sum, ``pending`` the devices pending now.
    """

    quotas: Quotas
    held: Mapping[bytes, Usage] = field(default_factory=dict)
    total: Usage = Usage()
    pending: int = 0
    added: dict[bytes, Usage] = field(default_factory=dict)  # what this transaction holds more
    added_total: Usage = Usage()
    new_pending: int = 0  # devices this transaction makes pending

    def usage(self, origin: bytes) -> Usage:
        return self.held.get(origin, Usage()) + self.added.get(origin, Usage())

    @property
    def held_total(self) -> Usage:
        return self.total + self.added_total

    def room_for_device(self) -> str | None:
        """None if one more device may be made pending, or why not."""
        q = self.quotas.pending_devices
        if self.pending + self.new_pending >= q:
            return (
                f"{q} devices are waiting for approval at this hub, its limit "
                "(max_pending_devices): no new device is taken until the coordinator approves "
                "or revokes some (c1hub devices)"
            )
        return None

    def room_for(self, origin: bytes, size: int) -> str | None:
        """None if one more record of ``size`` bytes from ``origin`` (a device never approved)
        may be held, or why not."""
        q, mine, total = self.quotas, self.usage(origin), self.held_total
        checks = [
            (mine.records + 1, q.held_records_per_device, "records", "max_held_records_per_device"),
            (mine.bytes + size, q.held_bytes_per_device, "bytes", "max_held_bytes_per_device"),
            (total.records + 1, q.held_records, "records", "max_held_records"),
            (total.bytes + size, q.held_bytes, "bytes", "max_held_bytes"),
        ]
        for i, (want, limit, unit, setting) in enumerate(checks):
            if want > limit:
                whose = "this device's" if i < 2 else "all unapproved devices'"
                return (
                    f"this device is not approved here, and this record would take {whose} "
                    f"held {unit} over {limit} ({setting}): it is not stored and gets no "
                    "receipt. Push it again once the coordinator has approved the device"
                )
        return None

    def add_device(self) -> None:
        """Count one more pending device (after ``room_for_device`` said yes)."""
        self.new_pending += 1

    def add(self, origin: bytes, size: int) -> None:
        """Count one more held record (after ``room_for`` said yes)."""
        one = Usage(1, size)
        self.added[origin] = self.added.get(origin, Usage()) + one
        self.added_total += one

    def check_new_device(self) -> None:
        """Count one more pending device, or raise QuotaError (an enrollment: 429)."""
        why = self.room_for_device()
        if why is not None:
            raise QuotaError(why)
        self.add_device()
