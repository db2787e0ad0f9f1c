"""The PostgreSQL store's index of scans (``hub.storage.ScanBook``; DESIGN §3 "Scans").

Two tables of migration 4 (``hub.pg.schema``): ``scans`` (one row per page hash an entry held
names; ``size``/``kind`` set once the blob is held) and ``scan_entries`` (one row per hash and
entry, for the list of entries whose scans are pending and for the forwarder). A trigger on
``records`` fills both in the ingest transaction, so a hash is named exactly when an entry
naming it is committed, whichever receiver stored it. ``add_held`` is one UPDATE: the first
receiver to store a blob marks it; every receiver sees it after that COMMIT.

Nothing per scan is kept in this process, except the forwarder's cursor (per device: the seq
up to which the scans of upstream-confirmed entries were handed out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hub.protocol.blobsync import ScanCounts
from hub.storage import HeldBlob, ScanSummary


class _Db(Protocol):
    """The store's one-statement calls (``hub.pg.store._Reads``)."""

    async def fetch(self, sql: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Any: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> str: ...


class PgScanBook:
    """``ScanBook`` over the ``scans`` and ``scan_entries`` tables."""

    def __init__(self, db: _Db):
        self.db = db
        self._offered: dict[int, int] = {}  # dev -> seq: the forwarder's cursor

    async def lookup(self, hashes: Sequence[str]) -> dict[str, HeldBlob | None]:
        rows = await self.db.fetch(
            "SELECT hash, size, kind FROM scans WHERE hash = ANY($1::text[])", list(hashes)
        )
        return {r[0]: HeldBlob(r[1], r[2]) if r[1] is not None else None for r in rows}

    async def held(self, digest: str) -> HeldBlob | None:
        r = await self.db.fetchrow(
            "SELECT size, kind FROM scans WHERE hash = $1 AND size IS NOT NULL", digest
        )
        return HeldBlob(r[0], r[1]) if r is not None else None

    async def add_held(self, digest: str, size: int, kind: str, now: int) -> bool:
        done = await self.db.execute(
            "UPDATE scans SET size = $2, kind = $3, held_at = $4 WHERE hash = $1 AND size IS NULL",
            digest, size, kind, now,
        )  # fmt: skip
        return done.endswith(" 1")

    async def summary(self, upstream: Mapping[str, int] | None, limit: int) -> ScanSummary:
        r = await self.db.fetchrow(
            "SELECT count(*), count(size), COALESCE(sum(size), 0) FROM scans"
        )
        expected, held, held_bytes = int(r[0]), int(r[1]), int(r[2])
        pend = pend_bytes = 0
        if upstream is not None:  # upstream holds only blobs held here
            pend = max(held - len(upstream), 0)
            pend_bytes = max(held_bytes - sum(upstream.values()), 0)
        n = await self.db.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT e.dev, e.seq FROM scans s"
            " JOIN scan_entries e ON e.scan = s.hash WHERE s.size IS NULL) p"
        )
        rows = await self.db.fetch(
            "SELECT e.election, e.form, e.tps, array_agg(e.scan ORDER BY e.scan) FROM scans s"
            " JOIN scan_entries e ON e.scan = s.hash WHERE s.size IS NULL"
            " GROUP BY e.dev, e.seq, e.election, e.form, e.tps ORDER BY e.dev, e.seq LIMIT $1",
            limit,
        )
        listed = [((r[0], r[1], r[2]), list(r[3])) for r in rows]
        counts = ScanCounts(expected, held, expected - held, pend, pend_bytes)
        return ScanSummary(counts, int(n), listed)

    async def newly_confirmed(self, confirmed: Mapping[int, int]) -> list[str]:
        moved = {d: s for d, s in confirmed.items() if s > self._offered.get(d, 0)}
        if not moved:
            return []
        devs = sorted(moved)
        rows = await self.db.fetch(
            "SELECT e.scan FROM scan_entries e JOIN unnest($1::bigint[], $2::bigint[],"
            " $3::bigint[]) u(dev, lo, hi) ON e.dev = u.dev AND e.seq > u.lo AND e.seq <= u.hi"
            " ORDER BY e.dev, e.seq, e.scan",
            devs, [self._offered.get(d, 0) for d in devs], [moved[d] for d in devs],
        )  # fmt: skip
        self._offered.update(moved)
        return list(dict.fromkeys(r[0] for r in rows))
