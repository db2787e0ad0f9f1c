"""One consolidated stream upstream (DESIGN §2.8, §4 "Upstream forwarder"): the I/O around
``hub.protocol.outbox.Outbox``, which decides everything (see its docstring for the protocol).

``Forwarder`` runs one task: it asks the outbox for the next step, does it (a call upstream
through an ``hub.upstream.Upstream``, a read of the store, a sleep), hands the answer back with
the time, and applies what the outbox concluded (confirmations, refusals, the pinned key) to the
store, logging what a person should see. It is the only retry layer. It depends on the store
and on the upstream only through the two interfaces of ``hub.upstream``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, cast

from hub.errors import UpstreamError
from hub.protocol import blobsync as bs
from hub.protocol import clock, enroll, identity
from hub.protocol import outbox as ob
from hub.protocol.identity import Identity
from hub.scans import HubScans
from hub.store import Rejection
from hub.upstream import BlobUpstream, Device, Upstream, UpstreamStore

log = logging.getLogger(__name__)

META_UPSTREAM_KEY = "upstream_public"
REFRESH_RETRY_S = 2.0  # after the store could not be read (a database restarting)
UNHELD_RECHECK_S = 2.0  # PostgreSQL: scans upstream-bound, not held here, looked up again


K = TypeVar("K")
S = TypeVar("S")
V = TypeVar("V")


class _View(Mapping[K, V], Generic[K, S, V]):
    """``source`` with each value seen through ``fn``: a live read-only view, no copy."""

    def __init__(self, source: Mapping[K, S], fn: Callable[[S], V]):
        self._source, self._fn = source, fn

    def __getitem__(self, key: K) -> V:
        return self._fn(self._source[key])

    def __iter__(self) -> Iterator[K]:
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)


class Forwarder:
    def __init__(
        self,
        store: UpstreamStore,
        upstream: Upstream,
        ident: Identity,
        name: str,
        *,
        kbps: int = 0,
        lanes: int = 2,
        rng: random.Random | None = None,
        scans: HubScans | None = None,
    ):
        self.store = store
        self.upstream = upstream
        self.ident = ident
        self.name = name
        self.outbox = ob.Outbox(upstream.url, None, rng or random.Random(), kbps=kbps)
        self.scans = scans
        # Uncapped, ``lanes`` scan senders at once (2 by default: few connections to the
        # national side, DESIGN principle 8; more keep a fast local upstream busy while it
        # hashes and fsyncs); under a cap, one: the cap is the limit, and pacing is simplest
        # with one chunk at a time.
        self.lanes = [bs.BlobSender(chunk=bs.chunk_size(kbps), rng=rng or random.Random())
                      for _ in range(1 if kbps > 0 else max(1, lanes))]  # fmt: skip
        self._dealt = 0
        self._sending: dict[int, asyncio.Task[None]] = {}  # lane index -> its step in flight
        self._unheld: set[str] = set()  # named by entries upstream holds, not held here yet
        self._book_at = 0.0  # when the whole of ``_unheld`` was last looked up (PostgreSQL)
        if scans is not None:
            scans.watch_arrivals(self._unheld)
        self.blob_drained: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self.blob_log: list[bs.Ask | bs.Send] = []  # steps done, for tests (last 10,000)
        self.last_success: float | None = None  # wall-clock time of the last answer upstream
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.outbox.pinned = await self.store.get_meta(META_UPSTREAM_KEY)
        self._task = asyncio.create_task(self._run(), name="forwarder")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.upstream.close()

    # -- status ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.upstream.url

    @property
    def upstream_public(self) -> bytes | None:
        return self.outbox.pinned

    @property
    def state(self) -> str:
        return self.outbox.state

    @property
    def pushed(self) -> int:
        return self.outbox.pushed

    @property
    def heartbeat_s(self) -> float:
        return self.outbox.heartbeat_s

    @heartbeat_s.setter
    def heartbeat_s(self, seconds: float) -> None:
        self.outbox.heartbeat_s = seconds

    def backlog(self) -> int:
        return self.store.backlog()

    def status(self) -> dict[str, Any]:
        """The ``upstream`` block of ``c1hub status`` (docs/json-output.md)."""
        store, box = self.store, self.outbox
        backlog = self.backlog()
        now_m = clock.monotonic()
        backoff = box.backoff.waiting(now_m)
        retry_in = max(box.backoff.until - now_m, 0.0) if backoff else None
        age = None
        if backlog and box.oldest_received is not None:
            age = max(clock.now() - box.oldest_received, 0.0)
        rejected = [
            {"device": store.devices_by_id[r.dev].node_id, "seq": r.seq, "code": r.code,
             "reason": r.reason, "at": r.at}
            for r in store.rejections.values()
        ]  # fmt: skip
        return {
            "state": "backoff" if backoff else box.state,
            "url": self.url,
            "upstream_id": identity.fingerprint(box.pinned) if box.pinned else None,
            "enrollment": box.enrollment,
            "code": box.code,
            "backlog": backlog,
            "oldest_age_s": age,
            "confirmed": sum(c.seq for c in store.confirmed.values()),
            "rejected": len(rejected),
            "rejections": rejected[:100],
            "retry_in_s": retry_in,
            "retry_at": clock.now() + retry_in if retry_in is not None else None,
            "last_success": self.last_success,
            "last_error": box.last_error,
            "drain_per_s": round(box.drain_rate(), 1),
            "batch_size": box.sizer.size,
        }

    # -- the loop ----------------------------------------------------------------------------

    def _holdings(self) -> ob.Holdings:
        s = self.store
        heads = s.heads

        def limit(d: Device) -> int:
            return d.forward_limit(heads[d.id].seq if d.id in heads else 0)

        return ob.Holdings(
            limits=_View(s.devices_by_id, limit),
            confirmed=_View(s.confirmed, lambda c: c.seq),
            rejected=s.rejections,
            publics=_View(s.devices_by_id, lambda d: d.public),
            devs=_View(s.devices, lambda d: d.id),
            forks=s.fork_count,
        )

    async def _run(self) -> None:
        try:
            await self._loop()
        finally:  # the chunks still in flight go with the loop
            for task in self._sending.values():
                task.cancel()
            await asyncio.gather(*self._sending.values(), return_exceptions=True)
            self._sending.clear()

    async def _loop(self) -> None:
        box = self.outbox
        while not self._stop.is_set():
            self.store.changed.clear()  # a commit from now on wakes any wait below
            try:
                await self.store.refresh()
            except Exception as exc:  # the hub's own database is away: wait and look again
                log.warning("forwarder: cannot read this hub's store (%s); retrying in %.0fs",
                            exc, REFRESH_RETRY_S)  # fmt: skip
                await self._sleep(REFRESH_RETRY_S)
                continue
            step = box.next_step(self._holdings(), clock.monotonic())
            if self.scans is not None and bs.numbers_first(step):
                try:
                    blobs = await self._blob_steps()
                except Exception as exc:  # the store's scan book is away: entries go on
                    log.debug("forwarder: cannot read the scans held (%s)", exc)
                    blobs = []
                for i, b in blobs:  # each sender on its own: none waits for the slowest
                    self._sending[i] = asyncio.create_task(self._do_blob(self.lanes[i], b))
                if self._sending:  # until a chunk is answered, or an entry to push comes
                    assert isinstance(step, ob.Wait)  # numbers_first: the outbox's rest
                    await self._sleep(step.until - clock.monotonic(), self.store.changed,
                                      self._sending.values())  # fmt: skip
                    for i in [i for i, t in self._sending.items() if t.done()]:
                        del self._sending[i]
                    continue
            try:
                try:
                    await self._do(step)
                except UpstreamError as exc:
                    retry_after, too_big = exc.retry_after, exc.too_big
                    box.call_failed(str(exc), clock.monotonic(), retry_after=retry_after,
                                    too_big=too_big)  # fmt: skip
                await self._apply(box.effects())
            except Exception:
                log.exception("forwarder: %s failed unexpectedly; retrying", type(step).__name__)
                box.crashed(clock.monotonic())

    async def _do(self, step: ob.Step) -> None:
        """One step: answers go back to the outbox with the time they came."""
        box, store, up = self.outbox, self.store, self.upstream
        match step:
            case ob.Wait(until, on_change):  # ``changed`` was cleared before the step
                await self._sleep(until - clock.monotonic(), store.changed if on_change else None)
            case ob.Hello():
                box.hello_answered((await self._called(up.hello())).public, clock.monotonic())
            case ob.Enroll(upstream):
                req = enroll.make_request(self.ident, upstream, self.name, "hub", clock.now_s())
                box.enroll_answered(await self._called(up.enroll(req)), clock.monotonic())
            case ob.AskHeads(origins):
                reply = await self._called(up.heads(origins))
                box.heads_answered(reply, self._holdings(), clock.monotonic())
            case ob.PushFork(records=records):
                box.fork_answered(await self._called(up.push(records, None)), clock.monotonic())
            case ob.Push(records, endorsements):
                t0 = clock.monotonic()
                reply = await self._called(up.push(records, endorsements))
                box.push_answered(reply, self._holdings(), t0, clock.monotonic())
            case ob.ReadForks():
                box.forks_read(await store.fork_evidence())
            case ob.ReadRecords(dev, _origin, after, limit):
                box.records_read(await store.records_after(dev, after, limit))
            case ob.ReadChain(origins):
                box.chain_read(store.chain_for(origins))
            case ob.ReadHeld(keys):
                box.held_read({k: await store.record_raw(*k) for k in keys}, clock.monotonic())
            case ob.ReadAges(keys):
                box.ages_read([await store.received_at(dev, seq) for dev, seq in keys])

    # -- scans, in what the entries leave ----------------------------------------------------

    async def _blob_steps(self) -> list[tuple[int, bs.Ask | bs.Send]]:
        """Offer the scans of entries upstream now holds (those held here), dealt to the
        senders in turn, then the next scan step of each sender with none in flight, by its
        index in ``lanes`` (``hub.protocol.blobsync.BlobSender``)."""
        scans = self.scans
        assert scans is not None
        confirmed = {dev: c.seq for dev, c in self.store.confirmed.items()}
        # Look up the scans newly bound upstream, and those of the waiting ones that arrived
        # here since (each arrival costs itself). On PostgreSQL, every few seconds, all the
        # waiting ones: another receiver on the same database may have taken them.
        fresh = [h for h in await scans.book.newly_confirmed(confirmed) if h not in self._unheld]
        ask = fresh + [h for h in scans.take_arrivals() if h in self._unheld]
        self._unheld.update(fresh)
        now = clock.monotonic()
        if not scans.sqlite and self._unheld and now - self._book_at >= UNHELD_RECHECK_S:
            self._book_at, ask = now, list(self._unheld)
        for i in range(0, len(ask), bs.MAX_ASK):
            known = await scans.book.lookup(ask[i : i + bs.MAX_ASK])
            for h, blob in known.items():
                if blob is None or h not in self._unheld:
                    continue
                self._unheld.discard(h)
                self.lanes[self._dealt % len(self.lanes)].offer([(h, blob.size)])
                self._dealt += 1
        now = clock.monotonic()
        idle = ((i, lane) for i, lane in enumerate(self.lanes) if i not in self._sending)
        return [(i, step) for i, lane in idle if (step := lane.next_step(now)) is not None]

    async def _do_blob(self, sender: bs.BlobSender, step: bs.Ask | bs.Send) -> None:
        try:
            await self._blob_call(sender, step)
        except Exception:
            log.exception("forwarder: scan %s failed unexpectedly", type(step).__name__)
            sender.failed("", "crashed", clock.monotonic())

    async def _blob_call(self, sender: bs.BlobSender, step: bs.Ask | bs.Send) -> None:
        scans, box = self.scans, self.outbox
        assert scans is not None
        up = cast(BlobUpstream, self.upstream)
        self.blob_log = [*self.blob_log[-9999:], step]
        t0 = clock.monotonic()
        try:
            if isinstance(step, bs.Ask):
                reply = await self._called(up.blobs_lacking(step.hashes))
                sender.lacking_answered(reply, clock.monotonic())
                nbytes = 80 * len(step.hashes)
                hashes: tuple[str, ...] = step.hashes
            else:
                data = await scans.read_bytes(step.hash, step.offset, step.length)
                reply = await self._called(up.blob_put(step.hash, step.offset, data, step.total))
                sender.chunk_answered(reply)
                nbytes, hashes = len(data), (step.hash,)
                scans.counters.sent_bytes += len(data)
                self.blob_drained.append((clock.monotonic(), scans.counters.sent_bytes))
        except UpstreamError as exc:
            code = exc.refusal
            sender.failed(code, str(exc), clock.monotonic(), retry_after=exc.retry_after)
            if code in bs.FATAL and isinstance(step, bs.Send):
                log.error("upstream refused scan %s: %s", step.hash, exc)
            elif not code:
                log.debug("scan transfer upstream failed: %s", exc)
            return
        now = clock.monotonic()
        box.spent(nbytes, now - t0, now)
        for h in hashes:
            if sender.state.get(h) in (bs.HELD, bs.UPSTREAM) and h not in scans.upstream:
                scans.upstream_holds(h, sender.sizes.get(h, 0))
                if isinstance(step, bs.Send):
                    scans.counters.sent_blobs += 1

    def scan_rate(self) -> float:
        """Recent scan bytes sent upstream per second."""
        d = self.blob_drained
        if len(d) < 2:
            return 0.0
        (t0, n0), (t1, n1) = d[0], d[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    async def _called(self, call: Any) -> Any:
        reply = await call
        self.last_success = clock.now()
        return reply

    async def _apply(self, effects: list[ob.Effect]) -> None:
        """Write what the outbox concluded, and say what a person should know."""
        store, url = self.store, self.url

        def node(dev: int) -> str:
            return store.devices_by_id[dev].node_id

        for e in effects:
            match e:
                case ob.Pin(public):
                    await store.set_meta(META_UPSTREAM_KEY, public)
                    log.info("pinned upstream %s at %s", identity.fingerprint(public), url)
                case ob.Confirm(dev, seq, hash_, receipt):
                    await store.confirm(dev, seq, hash_, receipt, clock.now_s())
                case ob.Unconfirm(dev, seq, hash_):
                    await store.unconfirm(dev, seq, hash_)
                case ob.Reject(dev, seq, code, reason):
                    await store.reject_upstream(Rejection(dev, seq, code, reason, clock.now_s()))
                case ob.Failed(message, delay, first):
                    level = logging.WARNING if first else logging.DEBUG
                    log.log(level, "upstream %s: %s; retrying in %.1fs", url, message, delay)
                case ob.Recovered():
                    log.warning("upstream %s is reachable again", url)
                case ob.Enrollment(_was, "pending", code):
                    log.warning(
                        "this hub is pending at upstream %s: ask the national side to approve %s "
                        "(comparison code %s); entries are forwarded and held there until then",
                        url, self.ident.node_id, code,
                    )  # fmt: skip
                case ob.Enrollment(_was, state, _code):
                    log.warning("this hub is now %s at upstream %s", state, url)
                case ob.Refused(dev, seq, code, reason, retry_s):
                    log.error(
                        "upstream refused entry %s of device %s: %s (%s). That device's later "
                        "entries wait behind it; retrying in %.0fs",
                        seq, node(dev), reason, code, retry_s,
                    )  # fmt: skip
                case ob.Lost(dev, held, promised):
                    log.error(
                        "upstream %s now holds only %d entries of device %s but had signed a "
                        "receipt for %d: it lost entries (restored from a backup?). Sending them "
                        "again; its old receipt is kept as evidence.",
                        url, held, node(dev), promised,
                    )  # fmt: skip
                case ob.Diverged(dev, seq):
                    log.error(
                        "upstream holds a different entry %d for device %s than this hub: a fork "
                        "upstream; not confirming", seq, node(dev),
                    )  # fmt: skip
                case ob.ForkSent(dev, seq, recorded):
                    log.warning(
                        "sent fork evidence of device %s (seq %d) upstream: %s", node(dev), seq,
                        "fork recorded there" if recorded
                        else "upstream holds too little of that log to see it yet",
                    )  # fmt: skip

    async def _sleep(
        self,
        seconds: float,
        wake: asyncio.Event | None = None,
        tasks: Iterable[asyncio.Task[None]] = (),
    ) -> None:
        """Up to ``seconds``, until stopped, ``wake`` is set or one of ``tasks`` is done."""
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait([*waiters, *tasks], timeout=max(seconds, 0.0),
                               return_when="FIRST_COMPLETED")  # fmt: skip
        finally:
            for w in waiters:
                w.cancel()
