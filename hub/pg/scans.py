"""The PostgreSQL store's index of scans (``hub.storage.ScanBook``; DESIGN §3 "Scans").

The tables of migration 6 (``hub.pg.schema``): ``scans`` (one row per page hash an entry held
names; ``size``/``kind`` set once the blob is held), ``scan_entries`` (one row per hash and
entry: for the forwarder and to find the entries a blob completes), ``scan_waiting`` (the
entries whose scans are not all held, with how many are missing) and ``scan_totals`` (the
status counts, 16 rows summed on reading). A trigger on ``records`` fills them in the ingest
transaction, so a hash is named exactly when an entry naming it is committed, whichever
receiver stored it. ``add_held``: the first receiver to store a blob marks it held (one
transaction); every receiver sees it after that COMMIT. Every read is an indexed look-up or
reads at most ``limit`` entries and 16 rows: no cost grows with the number of scans.

The forwarder's cursor (``newly_confirmed``) is kept in the database, so that a restart does
not walk every entry's scans again: ``scan_cursor`` (migration 7) holds, per device, the seq up
to which the scans of its entries are *settled*, that is known to be held upstream (the
``HubScans.upstream`` mapping the book follows, ``follow_upstream``). A restarted book hands out
again only what lies after it: the entries whose scans were handed out but not yet known
upstream (still to send, or not held here yet), so nothing is lost and the walk is bounded by
what was in flight. In this process: per device the seq handed out so far, and the entries
handed out whose scans upstream is not yet known to hold (the forwarder's window), and per
such scan the entries waiting for it. The owner of the mapping tells the book each hash
upstream takes (``upstream_took``), which costs the book the entries waiting for that hash, not
a walk of every scan waiting (on a hub with an upstream, entries go before scans, so the window
is usually the whole backlog of scans). Only one forwarder runs per hub (docs/scaling.md), so
one process moves the cursor; it only moves forward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from hub.protocol.blobsync import ScanCounts
from hub.storage import HeldBlob, ScanSummary

from .schema import Conn


class _Db(Protocol):
    """The store's one-statement calls (``hub.pg.pool.Db``)."""

    async def fetch(self, sql: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Any: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> str: ...


SHARD = "pg_backend_pid() % 16"  # the row of scan_totals this connection moves


class PgScanBook:
    """``ScanBook`` over the tables of migration 6 (see the module docstring). ``tx()`` is one
    transaction on a pooled connection (``hub.pg.pool.Db.tx``)."""

    def __init__(self, db: _Db, tx: Callable[[], AbstractAsyncContextManager[Conn]]):
        self.db = db
        self._tx = tx
        self._offered: dict[int, int] | None = None  # dev -> seq handed out (read at first use)
        self._settled: dict[int, int] = {}  # dev -> seq: the cursor as saved in scan_cursor
        self._window: dict[int, dict[int, set[str]]] = {}  # dev -> seq -> scans not upstream
        self._waits: dict[str, list[tuple[int, int]]] = {}  # scan -> (dev, seq) of the window
        self._upstream: Mapping[str, int] = {}  # what upstream is known to hold (HubScans')
        self._dirty: set[int] = set()  # devices whose cursor may move

    def follow_upstream(self, upstream: Mapping[str, int]) -> None:
        """Settle the forwarder's cursor by ``upstream`` (hash -> size of what upstream is
        known to hold; a mapping that only grows, kept up to date by its owner, who tells the
        book each hash it adds: ``upstream_took``)."""
        self._upstream = upstream

    def upstream_took(self, digest: str) -> None:
        """``digest`` was just added to the mapping followed: take it out of the entries of the
        window that wait for it (a look at those entries only, not at every scan waiting); the
        next ``newly_confirmed`` saves the cursors that can move."""
        for dev, seq in self._waits.pop(digest, ()):
            entry = self._window.get(dev, {}).get(seq)
            if entry is not None:
                entry.discard(digest)
                if not entry:
                    del self._window[dev][seq]
            self._dirty.add(dev)

    async def lookup(self, hashes: Sequence[str]) -> dict[str, HeldBlob | None]:
        rows = await self.db.fetch(
            "SELECT s.hash, s.size, s.kind FROM unnest($1::text[]) u(h)"
            " JOIN scans s ON s.hash = u.h",
            list(hashes),
        )
        return {r[0]: HeldBlob(r[1], r[2]) if r[1] is not None else None for r in rows}

    async def held(self, digest: str) -> HeldBlob | None:
        r = await self.db.fetchrow(
            "SELECT size, kind FROM scans WHERE hash = $1 AND size IS NOT NULL", digest
        )
        return HeldBlob(r[0], r[1]) if r is not None else None

    async def add_held(self, digest: str, size: int, kind: str, now: int) -> bool:
        """Mark the blob held, then (in later statements of the same transaction, so that they
        see an entry committed while this one waited for the scan's row lock) take one off the
        missing count of every entry naming it, and move the totals."""
        async with self._tx() as con:
            done = await con.execute(
                "UPDATE scans SET size = $2, kind = $3, held_at = $4"
                " WHERE hash = $1 AND size IS NULL",
                digest, size, kind, now,
            )  # fmt: skip
            if not done.endswith(" 1"):
                return False
            await con.execute(
                "UPDATE scan_waiting w SET missing = w.missing - 1 FROM scan_entries e"
                " WHERE e.scan = $1 AND w.dev = e.dev AND w.seq = e.seq",
                digest,
            )
            gone = await con.execute(
                "DELETE FROM scan_waiting w USING scan_entries e"
                " WHERE e.scan = $1 AND w.dev = e.dev AND w.seq = e.seq AND w.missing <= 0",
                digest,
            )
            await con.execute(
                "INSERT INTO scan_totals(shard, held, held_bytes, waiting)"
                f" VALUES ({SHARD}, 1, $1, -$2::bigint) ON CONFLICT (shard) DO UPDATE SET"
                " held = scan_totals.held + 1, held_bytes = scan_totals.held_bytes + $1,"
                " waiting = scan_totals.waiting - $2::bigint",
                size, int(gone.split()[-1]),
            )  # fmt: skip
        return True

    async def summary(self, upstream: Mapping[str, int] | None, limit: int) -> ScanSummary:
        r = await self.db.fetchrow(
            "SELECT COALESCE(sum(expected), 0), COALESCE(sum(held), 0),"
            " COALESCE(sum(held_bytes), 0), COALESCE(sum(waiting), 0) FROM scan_totals"
        )
        expected, held, held_bytes, waiting = (int(x) for x in r)
        pend = pend_bytes = 0
        if upstream is not None:  # upstream holds only blobs held here
            pend = max(held - len(upstream), 0)
            pend_bytes = max(held_bytes - sum(upstream.values()), 0)
        rows = await self.db.fetch(
            "SELECT w.election, w.form, w.tps, ARRAY(SELECT e.scan FROM scan_entries e"
            " JOIN scans c ON c.hash = e.scan WHERE e.dev = w.dev AND e.seq = w.seq"
            " AND c.size IS NULL ORDER BY e.scan) FROM scan_waiting w"
            " ORDER BY w.dev, w.seq LIMIT $1",
            limit,
        )
        listed = [((r[0], r[1], r[2]), list(r[3])) for r in rows]
        counts = ScanCounts(expected, held, expected - held, pend, pend_bytes)
        return ScanSummary(counts, waiting, listed)

    async def newly_confirmed(self, confirmed: Mapping[int, int]) -> list[str]:
        """The scans of entries upstream confirmed, after the cursor (see the module
        docstring): first save the cursor where the window settled (a failure raises before
        anything moved), then read the entries after what was handed out, up to
        ``confirmed``."""
        if self._offered is None:  # a (re)started book: from the saved cursor on
            rows = await self.db.fetch("SELECT dev, seq FROM scan_cursor")
            self._settled = {int(r[0]): int(r[1]) for r in rows}
            self._offered = dict(self._settled)
        offered = self._offered
        await self._save(self._settle())
        moved = {d: s for d, s in confirmed.items() if s > offered.get(d, 0)}
        if not moved:
            return []
        devs = sorted(moved)
        rows = await self.db.fetch(
            "SELECT e.dev, e.seq, e.scan FROM scan_entries e JOIN unnest($1::bigint[],"
            " $2::bigint[], $3::bigint[]) u(dev, lo, hi) ON e.dev = u.dev AND e.seq > u.lo"
            " AND e.seq <= u.hi ORDER BY e.dev, e.seq, e.scan",
            devs, [offered.get(d, 0) for d in devs], [moved[d] for d in devs],
        )  # fmt: skip
        offered.update(moved)
        up = self._upstream
        for dev, seq, scan in rows:
            if scan not in up:
                self._window.setdefault(dev, {}).setdefault(seq, set()).add(scan)
                self._waits.setdefault(scan, []).append((dev, seq))
        self._dirty.update(devs)  # saved by the next call
        return list(dict.fromkeys(r[2] for r in rows))

    def _settle(self) -> dict[int, int]:
        """The cursors (of the devices whose window or hand-out changed since the last save,
        ``upstream_took`` having taken out of the window what upstream now holds) that can
        move: up to the first entry of the window, or to what was handed out when the window
        is empty."""
        assert self._offered is not None
        moves: dict[int, int] = {}
        for dev in self._dirty:
            window = self._window.get(dev)
            if window:
                to = next(iter(window)) - 1  # the window is in seq order
            else:
                self._window.pop(dev, None)
                to = self._offered.get(dev, 0)
            if to > self._settled.get(dev, 0):
                moves[dev] = to
        return moves

    async def _save(self, moves: Mapping[int, int]) -> None:
        if not moves:
            self._dirty.clear()
            return
        devs = sorted(moves)
        await self.db.execute(
            "INSERT INTO scan_cursor(dev, seq) SELECT * FROM unnest($1::bigint[], $2::bigint[])"
            " ON CONFLICT (dev) DO UPDATE SET seq = GREATEST(scan_cursor.seq, EXCLUDED.seq)",
            devs, [moves[d] for d in devs],
        )  # fmt: skip
        self._settled.update(moves)
        self._dirty.clear()
