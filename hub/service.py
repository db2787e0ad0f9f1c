"""What a hub does, with no HTTP and no process around it: the hub service.

``HubService`` is the one entry point for every operation on a hub: push, enroll, approve,
revoke, heads (the version vector with receipts), the head of one origin, hello, status,
devices, forks and metrics. The HTTP handlers (``hub/server.py``), the command line's offline
admin path, the demo and the tests call it. It checks pushed records on the worker pool
(``hub.examine``), lets the store (``hub.store``) decide and commit them, and signs receipts
and endorsements with the hub's key. It knows its forwarder only through ``UpstreamLink``
(what status and hello show about upstream).

The process around it (data-folder lock, worker pool, HTTP site, mDNS, forwarder, signals)
is ``hub/node.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub import status as status_mod
from hub.blobstore import Blobs
from hub.errors import NotFound
from hub.examine import Checked, examine_batch
from hub.memory import DeviceRow, PushResult
from hub.protocol import PROTOCOL_VERSION, clock, enroll, identity, receipt, trust, worklist
from hub.protocol.enroll import Endorsement
from hub.protocol.errors import LimitError
from hub.protocol.identity import Identity
from hub.protocol.ingest import APPROVED, REVOKED, Head
from hub.protocol.wilayah import Master
from hub.scans import HubScans
from hub.status import PAGE_MAX, DeviceInfo
from hub.storage import HubStorage, NodeInfo
from hub.store import HubStore

log = logging.getLogger(__name__)

MAX_HEADS_QUERY = 10_000  # origins asked about in one heads query
FORKS_PAGE = 100  # forks listed in one page by default
MAX_FORKS_PAGE = 1000  # a larger page asked for is cut to this
DEVICES_PAGE = 100  # devices in one page of the device list when paged without a limit
SIGN_ON_LOOP = 32  # receipts signed on the event loop; more are signed on a worker thread


class UpstreamLink(Protocol):
    """What the service shows about the way upstream (``hub.forwarder.Forwarder`` is one)."""

    @property
    def upstream_public(self) -> bytes | None:
        """The upstream's key, pinned at first contact (None before)."""
        ...

    def status(self) -> dict[str, Any]:
        """The ``upstream`` block of the status (docs/json-output.md)."""
        ...

    def scan_rate(self) -> float:
        """Recent scan bytes sent upstream per second."""
        ...


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OriginState:
    """An origin touched by a push, as the pusher is told about it."""

    public: bytes
    id: str
    state: str
    forked: bool
    seq: int

    def to_wire(self) -> dict[str, Any]:
        return {"public": self.public, "id": self.id, "state": self.state,
                "forked": 1 if self.forked else 0, "seq": self.seq}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Pushed:
    """The answer to a push: what was decided, one signed receipt per origin, its state."""

    result: PushResult
    receipts: list[bytes]
    origins: list[OriginState]

    def to_wire(self) -> dict[str, Any]:
        plan = self.result.plan
        counts = plan.counts()
        return {
            "accepted": counts["accept"],
            "duplicate": counts["duplicate"],
            "rejected": [o.to_dict() for o in plan.outcomes if o.decision == "reject"],
            "forks": [o.to_dict() for o in plan.outcomes if o.decision == "fork"],
            "receipts": self.receipts,
            "origins": [o.to_wire() for o in self.origins],
        }


@dataclass(frozen=True, slots=True)
class Enrolled:
    device: DeviceRow
    code: str  # the comparison code both screens show
    hub_id: str

    def to_wire(self) -> dict[str, Any]:
        d = self.device
        return {"state": d.state, "code": self.code, "node_id": d.node_id, "hub": self.hub_id}


@dataclass(frozen=True, slots=True)
class Heads:
    """A version vector: [origin, seq, hash] per origin asked about, and a signed receipt for
    every origin with something held."""

    heads: list[tuple[bytes, int, bytes]]
    receipts: list[bytes]

    def to_wire(self) -> dict[str, Any]:
        return {"heads": [list(h) for h in self.heads], "receipts": self.receipts}


@dataclass(frozen=True, slots=True)
class OriginHead:
    """One origin's head here, with upstream's receipt for it when upstream holds it."""

    head: Head
    state: str  # pending | approved | revoked | unknown
    forked: bool
    confirmed: bytes | None  # upstream's receipt, relayed to the laptop

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.head.seq, "hash": self.head.hash,
                               "state": self.state, "forked": 1 if self.forked else 0}  # fmt: skip
        if self.confirmed is not None:
            out["confirmed"] = self.confirmed
        return out


@dataclass(frozen=True, slots=True)
class Metrics:
    """Cheap counters (no derived state), for ``/metrics``."""

    records_stored: int
    commits: int
    pushes: int
    forks: int  # of devices approved at some point: the room's alarm
    forks_unapproved: int  # of keys never approved: evidence, reported apart
    held_records: int  # held by devices never approved (the quotas count these)
    held_bytes: int
    devices: dict[str, int]  # by state
    upstream: dict[str, Any] | None = field(default=None)  # the upstream block, if forwarding
    scans: dict[str, int] | None = field(default=None)  # page images and bytes, if kept


# -- the service ------------------------------------------------------------------------------


class HubService:
    """A hub's operations over its open store (see the module docstring)."""

    def __init__(
        self,
        store: HubStorage,
        ident: Identity,
        *,
        name: str = "",
        root: bool = False,
        master: Master | None = None,
        pool: Executor | None = None,
        max_batch: int = 5000,
        max_endorsements: int = 10000,
        approve_all: bool = False,
        upstream: UpstreamLink | None = None,
        upstream_known: bool = False,
        scans: HubScans | None = None,
        blobs: Blobs | None = None,
    ):
        self.store = store
        self.ident = ident
        self.name = name
        self.root = root
        self.role = "root" if root else "hub"
        self.master = master
        self.pool = pool
        self.max_batch = max_batch
        self.max_endorsements = max_endorsements
        self.approve_all = approve_all
        self.upstream = upstream
        self.upstream_known = upstream_known  # stopped: this hub has forwarded somewhere
        self.scans = scans  # the scans this node keeps (None: none)
        self.blobs = blobs  # where scans are kept (hub.blobstore: the folder, or S3)
        self.pushes = 0
        self._status_cache: tuple[float, dict[str, Any]] | None = None
        self._status_task: asyncio.Future[dict[str, Any]] | None = None

    # -- the protocol ------------------------------------------------------------------------

    def hello(self, nonce: bytes | None = None) -> dict[str, Any]:
        """Who this node is; with a caller's ``nonce``, the proof that it holds its key; with
        an upstream, its key vouched for by this node."""
        out: dict[str, Any] = {
            "node_id": self.ident.node_id,
            "public": self.ident.public,
            "name": self.name,
            "role": self.role,
            "version": PROTOCOL_VERSION,
        }
        if nonce is not None:
            out["proof"] = enroll.prove(self.ident, nonce)
        up = self.upstream.upstream_public if self.upstream is not None else None
        if up is not None:
            out["upstream"] = up
            out["upstream_sig"] = receipt.vouch_upstream(self.ident, up)
        return out

    async def enroll(self, raw: bytes) -> Enrolled:
        """A device's enrollment request: pending on first contact (``trust.enroll``)."""
        req = enroll.open_request(raw, self.ident.public)
        d = await self.store.enroll(req.device, req.name, req.role, clock.now_s())
        if self.approve_all and d.state not in (APPROVED, REVOKED) and not d.forked:
            d = await self._approve(d)
        return Enrolled(
            d, identity.comparison_code(self.ident.public, d.public), self.ident.node_id
        )

    async def examine(self, raws: Sequence[bytes]) -> list[Checked]:
        """The CPU-heavy checks of a batch, on the worker pool."""
        return await examine_batch(self.pool, raws, self.master)

    async def push(self, raws: Sequence[bytes], endorsements: Sequence[bytes] = ()) -> Pushed:
        """Store a batch durably (returns after its COMMIT); one signed receipt per origin."""
        self.check_batch(len(raws))
        self.check_endorsements(len(endorsements))
        store = self.store
        opened = await self._open_endorsements(endorsements)
        examined = await self.examine(raws)
        now = clock.now_s()
        result = await store.push(examined, now, opened)
        self.pushes += 1
        receipts = [
            receipt.issue(self.ident, origin, head.seq, head.hash, now).raw
            for origin, head in sorted(result.heads.items())
            if head.seq > 0
        ]
        if self.approve_all:
            for origin in result.plan.new_origins:
                d = await store.device(origin)
                if d is not None and d.state != APPROVED and not d.forked:
                    await self._approve(d)
        origins = [self._origin_state(result, o, h) for o, h in sorted(result.heads.items())]
        return Pushed(result, receipts, origins)

    def _origin_state(self, result: PushResult, origin: bytes, head: Head) -> OriginState:
        d = result.devices.get(origin)
        if d is None:
            return OriginState(origin, "", "unknown", False, head.seq)
        return OriginState(origin, d.node_id, d.state, d.forked, head.seq)

    async def _open_endorsements(self, raws: Sequence[bytes]) -> list[Endorsement]:
        """The endorsements of a push this hub does not hold yet, their signatures checked on
        a worker thread (never on the event loop); what is held is found by device key, on the
        same thread (endorsement maps are replaced, never changed in place, and the store
        checks again under its lock)."""
        if not raws:
            return []
        opened = await asyncio.to_thread(lambda: [enroll.open_endorsement(e) for e in raws])
        return [e for e in opened if not await self.store.holds_endorsement(e)]

    def check_endorsements(self, n: int) -> None:
        """LimitError if a push carries more than ``max_endorsements`` endorsements."""
        if n > self.max_endorsements:
            raise LimitError(
                f"{n} endorsements in one push is over the limit of {self.max_endorsements}"
            )

    def check_batch(self, n: int) -> None:
        """LimitError if a push of ``n`` records is over this hub's batch limit."""
        if n > self.max_batch:
            raise LimitError(
                f"batch of {n} records is over the limit of {self.max_batch}; send smaller batches"
            )

    async def heads(self, origins: Sequence[bytes]) -> Heads:
        """The version vector for ``origins`` (duplicates removed, first appearance kept),
        each held head with a signed receipt. Many receipts are signed off the event loop."""
        if len(origins) > MAX_HEADS_QUERY:
            raise LimitError(f"ask about at most {MAX_HEADS_QUERY} origins at a time")
        distinct = list(dict.fromkeys(origins))
        held_heads = await self.store.heads_of(distinct)
        out = [(o, h.seq, h.hash) for o in distinct for h in (held_heads.get(o, Head()),)]
        held = [h for h in out if h[1]]
        if len(held) <= SIGN_ON_LOOP:
            return Heads(out, self._receipts(held))
        return Heads(out, await asyncio.to_thread(self._receipts, held))

    def _receipts(self, heads: Sequence[tuple[bytes, int, bytes]]) -> list[bytes]:
        now = clock.now_s()
        return [receipt.issue(self.ident, o, seq, h, now).raw for o, seq, h in heads]

    async def head(self, origin: bytes) -> OriginHead:
        """One origin's head here, plus upstream's receipt for it (relayed to the laptop)."""
        v = await self.store.origin_head(origin)  # one moment: row, head, receipt agree
        d, c, confirmed = v.device, v.confirmed, None
        if c is not None and receipt.decode(c.receipt).seq == c.seq:  # not a broken promise
            confirmed = c.receipt
        return OriginHead(v.head, d.state if d else "unknown", bool(d and d.forked),
                          confirmed)  # fmt: skip

    # -- the coordinator ---------------------------------------------------------------------

    async def device(self, device_id: str) -> DeviceRow:
        """A device by node id or public key (hex); NotFound if this hub has none."""
        d = await self.store.lookup(device_id)
        if d is None:
            raise NotFound(f"no device {device_id!r} at this hub; see c1hub devices")
        return d

    async def devices(self, limit: int | None = None, after: str = "") -> list[DeviceInfo]:
        """Every device, oldest first; or one page of them: at most ``limit`` (cut to
        ``PAGE_MAX``), those listed after the device ``after`` (node id or public key; ""
        from the first; an unknown one is NotFound)."""
        if limit is None and not after:
            return await self.store.device_list(self.ident.public)
        start = None
        if after:
            d = await self.device(after)
            start = (d.first_seen, d.node_id)
        n = max(0, min(DEVICES_PAGE if limit is None else limit, PAGE_MAX))
        return await self.store.device_page(self.ident.public, start, n)

    async def device_info(self, d: DeviceRow) -> DeviceInfo:
        return await self.store.device_info(d, self.ident.public)

    async def approve(self, device_id: str, role: str | None = None) -> DeviceInfo:
        """Approve a device (after the coordinator compared the codes) as ``role`` (a hub
        only with ``role="hub"``): this node signs its endorsement; hubs it vouched for bring
        their devices along (``trust.approve``)."""
        d = await self.device(device_id)
        trust.check_approvable(d, role)
        return await self.device_info(await self._approve(d))

    async def _approve(self, d: DeviceRow) -> DeviceRow:
        trust.check_approvable(d, d.role)
        now = clock.now_s()
        endorsement = enroll.endorse(self.ident, d.public, d.name, d.role, now)
        log.info("approved %s %s (%s)", d.role, d.node_id, d.name)
        d = await self.store.approve(d.public, now, endorsement)
        self._forget_status()
        return d

    async def revoke(self, device_id: str) -> DeviceInfo:
        """Revoke a device: its entries from now on are refused; earlier ones stay."""
        d = await self.device(device_id)
        log.warning("revoked device %s (%s)", d.node_id, d.name)
        d = await self.store.revoke(d.public, clock.now_s())
        self._forget_status()
        return await self.device_info(d)

    async def forks(self, limit: int = FORKS_PAGE, after: int = 0) -> list[dict[str, Any]]:
        """One page of the fork list in ``id`` order: at most ``limit`` (cut to
        ``MAX_FORKS_PAGE``) forks with an ``id`` over ``after``."""
        return await self.store.forks(max(0, min(limit, MAX_FORKS_PAGE)), max(after, 0))

    async def work(self, query: worklist.Query) -> worklist.WorkList:
        """The double-entry work list over the counted entries, without numbers; derived on a
        worker thread from a snapshot (``hub.protocol.worklist``)."""
        facts = await self.store.counted_facts(query)
        return await asyncio.to_thread(worklist.build, facts, query)

    # -- status ------------------------------------------------------------------------------

    def status_now(self) -> dict[str, Any]:
        """The status dict, computed here and now on the SQLite store (blocks the loop: for
        small stores and tests; everything else uses ``status``)."""
        store = self.sqlite()
        assert store is not None, "status_now needs the SQLite store"
        view = store.snapshot()
        n = self.node_info()
        return self._finish_status(status_mod.build(
            view, node_id=n.node_id, name=n.name, role=n.role, hub_public=n.public,
            master=n.master, now=clock.now(),
        ))  # fmt: skip

    def sqlite(self) -> HubStore | None:
        """The SQLite store, when that is the store (its upstream bookkeeping is in memory)."""
        return self.store if isinstance(self.store, HubStore) else None

    def sqlite_store(self) -> HubStore:
        """The SQLite store, for the parts built on it alone (the console);
        TypeError on any other store."""
        if not isinstance(self.store, HubStore):
            raise TypeError("this part of the hub works on the SQLite store only")
        return self.store

    def node_info(self) -> NodeInfo:
        return NodeInfo(self.ident.node_id, self.name, self.role, self.ident.public, self.master)

    async def status(self, max_age: float = 1.0) -> dict[str, Any]:
        """The status dict, derived by the store (on a worker thread from a snapshot for
        SQLite, from aggregates for PostgreSQL) and shared by callers within ``max_age``
        seconds, so big stores do not stall pushes."""
        now = clock.monotonic()
        if self._status_cache is not None and now - self._status_cache[0] < max_age:
            return self._finish_status(dict(self._status_cache[1]))
        if self._status_task is None or self._status_task.done():
            self._status_task = asyncio.ensure_future(
                self.store.status(self.node_info(), clock.now())
            )
        task = self._status_task
        if self.scans is not None:
            await self.scans.summarize()
        built = await asyncio.shield(task)
        if task is self._status_task:  # not forgotten meanwhile
            self._status_cache = (clock.monotonic(), built)
        return self._finish_status(dict(built))

    async def results(
        self, election: str, level: str = "national", code: str = ""
    ) -> dict[str, Any]:
        """National results under one region (``hub.results``); ValueError for a bad one."""
        return await self.store.results(election, level, code)

    async def fresh_status(self) -> dict[str, Any]:
        """The status dict derived now on a worker thread from a snapshot, for a caller that
        shares it itself (the console's ``Live``); the ``status`` cache is left alone."""
        if self.scans is not None:
            await self.scans.summarize()
        return self._finish_status(await self.store.status(self.node_info(), clock.now()))

    def finish_status(self, s: dict[str, Any]) -> dict[str, Any]:
        """A status dict derived elsewhere (the console's ``Tally``) with the parts that
        change fastest added: the upstream block and the scans."""
        return self._finish_status(s)

    def upstream_block(self) -> dict[str, Any] | None:
        """The ``upstream`` block of the status (None on the root)."""
        return self._finish_status({}).get("upstream")

    def _forget_status(self) -> None:
        """After a coordinator's action, the next status shows it (not the shared copy)."""
        self._status_cache = None
        self._status_task = None

    def _finish_status(self, s: dict[str, Any]) -> dict[str, Any]:
        """Add the parts that change fastest: the upstream block, and the scans (page images
        expected, held, pending upstream, with an ETA at the current drain rate; the entries
        whose scans are pending)."""
        if self.upstream is not None:
            s["upstream"] = self.upstream.status()
        elif not self.root:
            s["upstream"] = status_mod.no_upstream(self.sqlite(), self.upstream_known)
        if self.scans is not None:
            rate = self.upstream.scan_rate() if self.upstream is not None else 0.0
            s["scans"], s["scan_pending"] = self.scans.status(rate)
        return s

    async def metrics(self) -> Metrics:
        c = await self.store.counters()
        return Metrics(
            records_stored=c.records_stored,
            commits=c.commits,
            pushes=self.pushes,
            forks=c.forks,
            forks_unapproved=c.forks_unapproved,
            held_records=c.held_records,
            held_bytes=c.held_bytes,
            devices=c.devices,
            upstream=self.upstream.status() if self.upstream is not None else None,
            scans=await self.scans.metrics() if self.scans is not None else None,
        )
