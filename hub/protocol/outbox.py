"""The forwarder's decisions, without I/O (DESIGN §2.4, §2.8; STYLE 1).

The outbox is "what upstream does not hold yet". These functions decide, from plain values,
which devices have something to send, which refusal in a reply is the cause to park a device
on, when a receipt for more than this hub holds confirms what it sent, and when upstream holds
less than it signed for. ``hub/forwarder.py`` does the HTTP and SQLite around them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def candidates(
    limits: Mapping[int, int],
    confirmed: Mapping[int, int],
    cursor: Mapping[int, int],
    parked_until: Mapping[int, float],
    now: float,
) -> list[int]:
    """Devices with records beyond what upstream is known to hold, not parked at ``now``.

    ``limits[dev]`` is the highest seq that may be forwarded (0 for held devices);
    upstream is known to hold ``max(cursor, confirmed)``.
    """
    return [
        dev
        for dev, limit in limits.items()
        if limit > max(cursor.get(dev, 0), confirmed.get(dev, 0))
        and parked_until.get(dev, 0.0) <= now
    ]


def causes(
    items: Iterable[Any], sent_to: Mapping[int, int], device_of: Callable[[str], int | None]
) -> dict[int, dict[str, Any]]:
    """Per device of this batch, the refused record with the lowest seq: the cause (the later
    ones wait behind it). Items that name no device of the batch, or no whole seq, are
    ignored: an unsigned reply must not park a device on a record it was never sent."""
    first: dict[int, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or type(item.get("seq")) is not int:
            continue
        origin = item.get("origin")
        dev = device_of(origin) if isinstance(origin, str) else None
        if dev is None or dev not in sent_to:
            continue
        if dev not in first or item["seq"] < first[dev]["seq"]:
            first[dev] = item
    return first


def confirmed_by_duplicates(
    ahead: Mapping[int, int], sent_to: Mapping[int, int], refused: Iterable[int]
) -> dict[int, int]:
    """Devices whose receipt names more than this hub holds (another hub of the room
    forwarded more of the log) and for which upstream refused nothing just sent: every record
    sent was accepted or was byte-for-byte a duplicate, so upstream holds this hub's records up
    to the last one sent. Returns dev -> that seq."""
    refused = set(refused)
    return {
        dev: sent_to[dev]
        for dev, up_seq in ahead.items()
        if dev in sent_to and dev not in refused and up_seq >= sent_to[dev]
    }


def lost_upstream(heads: Mapping[int, int], confirmed: Mapping[int, int]) -> dict[int, int]:
    """Devices for which upstream now holds less than it signed receipts for (restored from a
    backup, say): dev -> the seq upstream holds now."""
    return {dev: held for dev, held in heads.items() if dev in confirmed and held < confirmed[dev]}
