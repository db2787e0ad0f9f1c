"""``blobsync.ScanTally``: the status figures kept event by event are, after every event, the
figures ``scan_counts`` and ``scan_pending`` compute from scratch; and an event touches only
what it changes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from hub.protocol import blobsync as bs

Key = tuple[str, str, str]


def page(i: int) -> str:
    return f"{i:064x}"


class Reference:
    """The same node's state, kept plainly, and the figures computed from scratch."""

    def __init__(self, root: bool):
        self.root = root
        self.entries: list[tuple[Key, tuple[str, ...]]] = []
        self.held: dict[str, int] = {}
        self.upstream: set[str] = set()

    def figures(self, limit: int = 100) -> tuple[bs.ScanCounts, int, list[Any]]:
        named = dict.fromkeys(h for _, scans in self.entries for h in scans)
        c = bs.scan_counts(named, self.held, None if self.root else self.upstream)
        pending = bs.scan_pending(self.entries, self.held)
        return c, len(pending), pending[:limit]


def tally_figures(t: bs.ScanTally, limit: int = 100) -> tuple[bs.ScanCounts, int, list[Any]]:
    return t.counts(), t.entries_pending, t.pending(limit)


@pytest.mark.parametrize("root", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_tally_equals_the_figures_from_scratch_after_every_event(root: bool, seed: int) -> None:
    rng = random.Random(seed)
    t, ref = bs.ScanTally(root), Reference(root)
    tps = [f"31740{i:08d}" for i in range(12)]
    seq: dict[int, int] = {}
    for step in range(1500):
        r = rng.random()
        if r < 0.45:  # a push: an entry naming 0-3 pages, often pages others name too
            dev = rng.randrange(3)
            seq[dev] = seq.get(dev, 0) + 1
            n = rng.choice((0, 1, 2, 2, 3))
            pool = rng.randrange(10, 400)
            scans = tuple(page(rng.randrange(pool)) for _ in range(n))
            # a correction for the same form and TPS, with the same pages or some new ones
            key = ("pemilu-2024", rng.choice(("ppwp", "dpr")), rng.choice(tps))
            t.add(dev, seq[dev], key, scans)
            ref.entries.append((key, scans))
        elif r < 0.8:  # a page arrives (named or not yet named)
            h, size = page(rng.randrange(450)), rng.randrange(1, 3_000_000)
            if h not in ref.held:
                ref.held[h] = size
            t.arrived(h, size)
        else:  # upstream says it holds a page (held here or not)
            h = page(rng.randrange(450))
            ref.upstream.add(h)
            t.upstream_holds(h)
        if step % 25 == 0 or step > 1450:
            assert tally_figures(t) == ref.figures(), step
    # a tally rebuilt over the same held pages and upstream (after a failed commit, or the
    # index fed again after a restart) gives the same figures
    again = bs.ScanTally(root, dict(t.held), set(t.upstream))
    for i, (key, scans) in enumerate(ref.entries):
        again.add(i % 3, i, key, scans)
    assert tally_figures(again, 10**6) == ref.figures(10**6) == tally_figures(t, 10**6)


def test_a_correction_naming_the_same_pages_counts_them_once() -> None:
    t = bs.ScanTally(root=False)
    key = ("pemilu-2024", "ppwp", "3174010001001")
    a, b, c = page(1), page(2), page(3)
    t.add(1, 1, key, (a, b))
    t.add(1, 2, key, (a, b, c))  # supersedes the first: the same pages and one more
    assert t.counts() == bs.ScanCounts(3, 0, 3, 0, 0) and t.entries_pending == 2
    t.arrived(a, 10)
    t.arrived(b, 20)
    assert t.counts() == bs.ScanCounts(3, 2, 1, 2, 30) and t.entries_pending == 1
    assert t.pending(10) == [(key, [c])]
    t.upstream_holds(a)
    t.arrived(c, 5)
    assert t.counts() == bs.ScanCounts(3, 3, 0, 2, 25) and t.entries_pending == 0


class CountingDict(dict[str, Any]):
    """A dict that counts lookups: what an event reads of everything held."""

    looks = 0

    def __contains__(self, key: object) -> bool:
        CountingDict.looks += 1
        return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        CountingDict.looks += 1
        return super().get(key, default)


def test_an_event_costs_what_it_touches_not_what_is_held() -> None:
    """With 20,000 entries and 40,000 pages, one more entry, a page arriving, upstream
    taking a page and reading the figures each look at a handful of pages."""
    held = CountingDict()
    t = bs.ScanTally(False, held)
    entries: list[tuple[Key, tuple[str, ...]]] = []
    for i in range(20_000):
        entries.append((("pemilu-2024", "ppwp", f"{i:013d}"), (page(2 * i), page(2 * i + 1))))
        t.add(i % 5, i // 5 + 1, *entries[-1])
    for i in range(0, 40_000, 3):
        t.arrived(page(i), 1000)
    for i in range(0, 40_000, 7):
        t.upstream_holds(page(i))
    CountingDict.looks = 0
    entries.append((("pemilu-2024", "dpr", "0" * 13), (page(5), page(10**6))))
    t.add(9, 1, *entries[-1])
    t.arrived(page(10**6), 5)
    t.arrived(page(5), 5)
    t.upstream_holds(page(5))
    c = t.counts()
    listed = t.pending(100)
    assert CountingDict.looks < 40, CountingDict.looks
    named = {page(i) for i in range(40_000)} | {page(10**6)}
    sizes = {h: b.size for h, b in held.items()}
    assert c == bs.scan_counts(named, sizes, t.upstream)
    pending = bs.scan_pending(entries, sizes)
    assert listed == pending[:100] and t.entries_pending == len(pending)
