"""The double-entry work list: which forms need keying again, without their numbers.

Derived, like the room's status, from the entries a hub holds (``state.derive``; DESIGN §2.5):

- **second**: a (election, form, TPS) whose live entries all come from one laptop (status
  ``single``). Another laptop should key it again, blind: the list never carries the numbers.
  A laptop is not offered the forms it keyed itself.
- **correction**: a (election, form, TPS) in ``conflict``. Someone should key the paper again
  and save it as a correction that supersedes the wrong reading.

Each live reading is described by its record hash, its origin and a 16-byte **digest** of its
numbers (``digest(entry.numbers(body))``, the value hubs keep as ``EntryFacts.numbers``). Two
readings agree iff their digests are equal, so a laptop can tell whether its own keying agrees
with a reading (and which reading a correction should supersede) without ever receiving the
numbers. Laptops keep the digests to themselves: the operator's screen shows only "agrees" or
"differs".

Pure: no I/O, no clock. ``hub/server.py`` serves it as ``GET /v1/work`` (docs/protocol.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import state
from .identity import fingerprint

SECOND = "second"
CORRECTION = "correction"
DIGEST_LEN = 16
MAX_LIMIT = 500
MAX_KEYS = 100


def digest(numbers: bytes) -> bytes:
    """The digest of an entry's canonical numbers (``entry.numbers``): equal iff they agree."""
    return hashlib.sha256(numbers).digest()[:DIGEST_LEN]


@dataclass(frozen=True, slots=True)
class Reading:
    """One live entry of a form, without its numbers."""

    hash: bytes
    origin: bytes
    digest: bytes

    def to_wire(self, asker: bytes | None) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "origin": fingerprint(self.origin),
            "digest": self.digest,
            "mine": 1 if asker is not None and self.origin == asker else 0,
        }


@dataclass(frozen=True, slots=True)
class Item:
    key: state.Key
    status: str  # single | verified | conflict (state.STATUSES)
    readings: tuple[Reading, ...]  # the live entries, by hash

    def to_wire(self, asker: bytes | None) -> dict[str, Any]:
        return {
            "election": self.key[0],
            "form": self.key[1],
            "tps": self.key[2],
            "status": self.status,
            "live": [r.to_wire(asker) for r in self.readings],
        }


@dataclass(slots=True)
class WorkList:
    second: list[Item] = field(default_factory=list)
    correction: list[Item] = field(default_factory=list)
    more_second: int = 0  # how many more were left out by the limit
    more_correction: int = 0
    keys: list[Item] = field(default_factory=list)  # the keys asked about, in the order asked

    def to_wire(self, asker: bytes | None) -> dict[str, Any]:
        return {
            "second": [i.to_wire(asker) for i in self.second],
            "correction": [i.to_wire(asker) for i in self.correction],
            "more": {"second": self.more_second, "correction": self.more_correction},
            "keys": [i.to_wire(asker) for i in self.keys],
        }


@dataclass(frozen=True, slots=True)
class Query:
    """What a laptop asks for; every filter is optional."""

    asker: bytes | None = None  # the asking laptop's key: its own forms are not offered
    election: str | None = None
    form: str | None = None
    tps_prefix: str = ""  # e.g. a kelurahan (10 digits) or kecamatan (6)
    limit: int = 100
    keys: tuple[state.Key, ...] = ()  # forms to report whatever their status


def build(entries: Iterable[state.EntryFacts], q: Query) -> WorkList:
    """The work list for ``q`` from the accepted entries a hub holds."""
    facts = list(entries)
    by_hash = {e.hash: e for e in facts}
    states = state.derive(facts)
    out = WorkList()

    def item(s: state.TpsState) -> Item:
        readings = tuple(
            Reading(h, by_hash[h].origin, by_hash[h].numbers) for h in s.live if h in by_hash
        )
        return Item(s.key, s.status, readings)

    for k in sorted(states):
        s = states[k]
        if q.election is not None and k[0] != q.election:
            continue
        if q.form is not None and k[1] != q.form:
            continue
        if not k[2].startswith(q.tps_prefix):
            continue
        if s.status == state.CONFLICT:
            if len(out.correction) < q.limit:
                out.correction.append(item(s))
            else:
                out.more_correction += 1
        elif s.status == state.SINGLE:
            origins = {by_hash[h].origin for h in s.live}
            if q.asker is not None and q.asker in origins:
                continue  # keyed here: a second keying must come from another laptop
            if len(out.second) < q.limit:
                out.second.append(item(s))
            else:
                out.more_second += 1
    for k in q.keys:
        found = states.get(k)
        out.keys.append(item(found) if found is not None else Item(k, "none", ()))
    return out


def parse_key(text: str) -> tuple[str, str]:
    """``"PPWP:3171011001001"`` -> (form, tps); ValueError if it is not that shape."""
    form, sep, tps = text.partition(":")
    if not sep or not form or len(tps) != 13 or not tps.isdigit():
        raise ValueError(f"a key is FORM:TPS (13 digits), not {text!r}")
    return form, tps


def keys_of(election: str, texts: Sequence[str]) -> tuple[state.Key, ...]:
    return tuple((election, *parse_key(t)) for t in texts)
