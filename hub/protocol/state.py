"""Derived state: a pure function of a set of entries (DESIGN §2.5, §3 "Double entry").

For each (election, form, TPS):

- an entry is *live* unless another entry for the same (election, form, TPS) supersedes it;
- one live entry (or several identical ones from the same origin): ``single``;
- two or more live entries from different origins, all with identical numbers: ``verified``;
- live entries whose numbers differ: ``conflict``.

Also the hub-level rules: R12 (one scan hash under two different TPS) and R13 (same TPS,
different forms, users totals differ). Every node holding the same entries computes the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SINGLE = "single"
VERIFIED = "verified"
CONFLICT = "conflict"
STATUSES = (SINGLE, VERIFIED, CONFLICT)

Key = tuple[str, str, str]  # (election, form, tps)


@dataclass(frozen=True, slots=True)
class EntryFacts:
    """What derived state needs to know about one entry."""

    hash: bytes
    origin: bytes
    key: Key
    numbers: bytes  # entry.numbers(body)
    supersedes: bytes | None = None
    users_total_j: int = 0
    scans: tuple[str, ...] = ()


@dataclass(slots=True)
class TpsState:
    key: Key
    status: str
    live: list[bytes] = field(default_factory=list)  # hashes, sorted
    superseded: list[bytes] = field(default_factory=list)


def derive(entries: Iterable[EntryFacts]) -> dict[Key, TpsState]:
    """Status of every (election, form, TPS) that has at least one entry."""
    by_key: dict[Key, list[EntryFacts]] = defaultdict(list)
    for e in entries:
        by_key[e.key].append(e)
    return {k: tps_state(k, group) for k, group in by_key.items()}


def tps_state(k: Key, group: Sequence[EntryFacts]) -> TpsState:
    """Status of one (election, form, TPS) from its entries (at least one)."""
    if len(group) == 1:  # the common case, kept cheap
        return TpsState(k, SINGLE, [group[0].hash], [])
    hashes = {e.hash for e in group}
    dead = {e.supersedes for e in group if e.supersedes in hashes and e.supersedes != e.hash}
    live = [e for e in group if e.hash not in dead]
    cycle = not live
    if cycle:  # a supersedes cycle: nothing can be live; show every entry as a conflict
        live, dead = list(group), set()
    if cycle or len({e.numbers for e in live}) > 1:
        status = CONFLICT
    elif len({e.origin for e in live}) > 1:
        status = VERIFIED
    else:
        status = SINGLE
    return TpsState(
        key=k,
        status=status,
        live=sorted(e.hash for e in live),
        superseded=sorted(h for h in dead if h is not None),
    )


def status_counts(states: Iterable[TpsState]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for s in states:
        counts[s.status] += 1
    return counts


def scan_reuse(entries: Iterable[EntryFacts]) -> dict[str, list[str]]:
    """R12: scan hashes that appear under two or more different TPS -> sorted TPS codes."""
    where: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        for s in e.scans:
            where[s].add(e.key[2])
    return {s: sorted(t) for s, t in where.items() if len(t) > 1}


def users_mismatch(
    entries: Sequence[EntryFacts], states: dict[Key, TpsState]
) -> dict[tuple[str, str], dict[str, list[int]]]:
    """R13: (election, tps) whose live entries of different forms disagree on users total J.

    Returns ``{(election, tps): {form: [users_total_j, ...]}}`` for each mismatch.
    """
    live = {h for s in states.values() for h in s.live}
    first: dict[tuple[str, str], int] = {}  # (election, tps) -> first users total seen
    differs: set[tuple[str, str]] = set()
    for e in entries:
        if e.hash in live:
            k = (e.key[0], e.key[2])
            seen = first.setdefault(k, e.users_total_j)
            if seen != e.users_total_j:
                differs.add(k)
    if not differs:
        return {}
    per_tps: dict[tuple[str, str], dict[str, set[int]]] = {k: {} for k in differs}
    for e in entries:
        k = (e.key[0], e.key[2])
        if k in per_tps and e.hash in live:
            per_tps[k].setdefault(e.key[1], set()).add(e.users_total_j)
    out: dict[tuple[str, str], dict[str, list[int]]] = {}
    for k, forms in per_tps.items():
        if len(forms) > 1:
            out[k] = {f: sorted(v) for f, v in sorted(forms.items())}
    return out
