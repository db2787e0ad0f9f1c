"""The one storage interface of a hub (``HubStorage``), and what its two implementations share.

``HubService`` (hub/service.py) talks to its store only through ``HubStorage``. Two stores
implement it, and one contract suite (tests/storecontract/) runs against both:

- ``hub.store.HubStore``: one SQLite file and one writer, group commit, per-entry facts in
  memory (the room hub; the default everywhere);
- ``hub.pg.store.PgStore``: PostgreSQL, shared by several receiver processes, nothing per
  entry in memory (the root and big provincial hubs: ``--db postgresql://...``).

Every method is a coroutine: the PostgreSQL store answers from the database, the SQLite store
from its committed in-memory state (no I/O, so the room hub pays nothing for the interface).
Writes return only after their COMMIT; reads see committed data only.

``hub.node.open_store`` picks the store from the ``--db`` value.

Scans: each store also keeps the hub's index of scans (``ScanBook``, its ``scan_book``): which
page hashes the entries held name, and which blobs are held (size and kind), in the database,
so that several receivers on one database share it (a blob taken by one is held for all).
A blob's bytes live in the blob store (``hub.blobstore``); the book is told of a blob only once
it is durable there, and a blob is taken only if an entry held names it.

Quotas for unapproved devices (issue 8, finding 4) are decided by both stores inside ``push``
and ``enroll``, with ``hub.protocol.quota.Ledger`` over the usage they keep (the SQLite store
in memory, the PostgreSQL store in its device rows, under one lock row): both plan a batch
with ``hub.protocol.ingest.plan`` over the same inputs, and both say refusals with
``QuotaLog``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hub.examine import Checked
from hub.memory import Confirmed, DeviceRow, PushResult
from hub.protocol import state, worklist
from hub.protocol.blobsync import HeldBlob, ScanCounts
from hub.protocol.enroll import Endorsement
from hub.protocol.ingest import Head, Outcome
from hub.protocol.wilayah import Master
from hub.status import DeviceInfo

__all__ = [
    "CountedScanBook", "Counters", "HeldBlob", "HubStorage", "NodeInfo", "OriginView",
    "QuotaLog", "ScanBook", "ScanSummary",
]  # fmt: skip

QUOTA_LOG_S = 60  # records refused for a quota are logged at most once per this many seconds


@dataclass(frozen=True, slots=True)
class OriginView:
    """One origin as the store held it at one moment (``HubStorage.origin_head``)."""

    device: DeviceRow | None  # None: unknown here
    head: Head  # Head() when it has no record here
    confirmed: Confirmed | None  # upstream's newest receipt for it


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who the node is, for the status dict (the store knows only its data)."""

    node_id: str
    name: str
    role: str  # hub | root
    public: bytes
    master: Master | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    """Cheap counters for ``/metrics``: no derived state."""

    records_stored: int
    commits: int
    forks: int  # of devices approved at some point: the alarm
    devices: dict[str, int]  # by state
    forks_unapproved: int = 0  # of keys never approved: evidence, reported apart
    held_records: int = 0  # held from devices never approved (what the quotas count)
    held_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """The ``scans`` of the status: counts, how many entries have scans pending, and the
    first of them ((election, form, TPS), the hashes still to come)."""

    counts: ScanCounts
    entries_pending: int
    listed: list[tuple[tuple[str, str, str], list[str]]]


class ScanBook(Protocol):
    """The hub's index of scans: the hashes named by the entries held, the blobs held."""

    async def lookup(self, hashes: Sequence[str]) -> dict[str, HeldBlob | None]:
        """For each of ``hashes`` that an entry held names: the blob if held, else None.
        Hashes that no entry names are left out."""
        ...

    async def held(self, digest: str) -> HeldBlob | None: ...

    async def add_held(self, digest: str, size: int, kind: str, now: int) -> bool:
        """Record a blob as held, once it is durable in the blob store (after the COMMIT it
        is held for every receiver). False when it already was."""
        ...

    async def newly_confirmed(self, confirmed: Mapping[int, int]) -> list[str]:
        """The scans of the entries upstream now holds (``confirmed``: device id -> seq)
        not returned before, each entry's once, in storing order (for the forwarder). After
        a restart, again those of the entries whose scans were not known to be held upstream
        (``follow_upstream``): a book that keeps its cursor starts there, one that does not
        from the first entry."""
        ...

    def follow_upstream(self, upstream: Mapping[str, int]) -> None:
        """``upstream``: hash -> size of the blobs upstream is known to hold, a mapping its
        owner (``HubScans``) only adds to; a book that keeps the forwarder's cursor moves it
        past the entries whose scans are all in it."""
        ...

    def upstream_took(self, digest: str) -> None:
        """``digest`` was just added to the mapping of ``follow_upstream`` (its owner calls
        this for every hash it adds): a book that keeps the cursor settles by it only the
        entries waiting for that hash."""
        ...


class CountedScanBook(ScanBook, Protocol):
    """A scan book whose figures are in the database (PostgreSQL: its counters, shared by
    every receiver). The SQLite book has no ``summary``: its figures are those of its
    ``blobsync.ScanTally``, kept event by event in memory."""

    async def summary(self, upstream: Mapping[str, int] | None, limit: int) -> ScanSummary:
        """Counts for status; ``upstream``: the held blobs upstream holds (hash -> size), None
        at a node without one."""
        ...


class HubStorage(Protocol):
    """What a hub's service needs of its store (see the module docstring)."""

    @property
    def scan_book(self) -> ScanBook:
        """The scans the entries name and the blobs held (``ScanBook``)."""
        ...

    @property
    def changed(self) -> asyncio.Event:
        """Set after every commit that stored records or changed a device's state."""
        ...

    async def close(self) -> None: ...

    # -- writes (each returns after its COMMIT) ----------------------------------------------

    async def push(
        self, checked: Sequence[Checked], now: int, endorsements: Sequence[Endorsement] = ()
    ) -> PushResult:
        """Store a checked batch: exactly once per (origin, seq), forks kept as evidence.
        ``PushResult.heads`` and ``.devices`` hold every origin touched, as committed."""
        ...

    async def enroll(self, public: bytes, name: str, role: str, now: int) -> DeviceRow: ...

    async def approve(
        self, public: bytes, now: int, endorsement: bytes | None = None
    ) -> DeviceRow: ...

    async def revoke(self, public: bytes, now: int) -> DeviceRow: ...

    async def set_meta(self, key: str, value: bytes) -> None: ...

    # -- reads (committed data only) ---------------------------------------------------------

    async def get_meta(self, key: str) -> bytes | None: ...

    async def device(self, public: bytes) -> DeviceRow | None: ...

    async def lookup(self, node_id: str) -> DeviceRow | None:
        """A device by node id (any case) or public key (hex)."""
        ...

    async def heads_of(self, publics: Sequence[bytes]) -> dict[bytes, Head]:
        """The heads of those origins that have records here."""
        ...

    async def holds_endorsement(self, e: Endorsement) -> bool:
        """True if these endorsement bytes are held already (no need to take them again)."""
        ...

    async def upstream_receipt(self, public: bytes) -> Confirmed | None:
        """Upstream's newest receipt for this origin, if any."""
        ...

    async def origin_head(self, public: bytes) -> OriginView:
        """The origin's device row, head and upstream's receipt, read at one moment (one
        statement on PostgreSQL, no await on SQLite): a commit cannot fall between them."""
        ...

    async def forks(self, limit: int = -1, after: int = 0) -> list[dict[str, Any]]: ...

    async def counted_facts(self, q: worklist.Query) -> list[state.EntryFacts]:
        """The counted entries a work list is built from (filtered by ``q``'s election,
        form and TPS prefix)."""
        ...

    async def status(self, node: NodeInfo, now: float) -> dict[str, Any]:
        """The status dict (docs/json-output.md) without its ``upstream`` block."""
        ...

    async def device_list(self, hub_public: bytes) -> list[DeviceInfo]:
        """Every device, oldest first (by first seen, then node id)."""
        ...

    async def device_page(
        self, hub_public: bytes, after: tuple[int, str] | None, limit: int
    ) -> list[DeviceInfo]:
        """At most ``limit`` devices in ``device_list``'s order, after the (first seen, node
        id) ``after`` (None: from the first)."""
        ...

    async def device_info(self, d: DeviceRow, hub_public: bytes) -> DeviceInfo: ...

    async def counters(self) -> Counters: ...

    async def results(
        self, election: str, level: str = "national", code: str = ""
    ) -> dict[str, Any]:
        """Totals per candidate or party over single and verified TPS under one region,
        TPS per status and flags counted apart, per child region (docs/json-output.md)."""
        ...


class QuotaLog:
    """Says that records were refused for a quota: at WARNING at most once a minute, with how
    many since the last line (an attacker must not flood the log either)."""

    def __init__(self, logger: logging.Logger):
        self._log = logger
        self._refused = 0  # records refused for a quota since the last line
        self._at = -QUOTA_LOG_S

    def __call__(self, refused: Sequence[Outcome], now: int) -> None:
        self._refused += len(refused)
        if not refused or now - self._at < QUOTA_LOG_S:
            return
        self._log.warning(
            "refused %d record(s) of devices never approved for a quota (%s); approve the "
            "pending devices (c1hub devices), revoke strangers",
            self._refused, refused[0].reason,
        )  # fmt: skip
        self._refused, self._at = 0, now
