"""One consolidated stream upstream (DESIGN §2.8, §4 "Upstream forwarder").

The outbox is not a queue: it is "what upstream does not hold yet", computed from upstream's
per-origin version vector. On (re)connection the forwarder asks upstream which seq it holds for
every origin with a backlog, then pushes the rest in seq order per origin, in batches, with the
endorsements upstream needs to trust those origins. Upstream's signed receipts move each
origin's cursor; nothing else does, so a response lost after upstream committed costs one
duplicate-free retry (upstream treats the same bytes as a no-op), never a loss.

Failures back off exponentially with full jitter, honour Retry-After, and are retried here only
(one layer). Batch size adapts to how upstream is doing. A record upstream refuses stops its
origin at that seq, listed with upstream's reason, until it is retried later.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
from hashlib import sha256
from typing import Any

import aiohttp

from hub.errors import UpstreamError
from hub.protocol import clock, codec, enroll, identity, outbox, receipt, record
from hub.protocol.errors import ProtocolError
from hub.protocol.identity import Identity
from hub.protocol.pacing import Backoff, BatchSizer, parse_retry_after
from hub.store import HubStore, Rejection

log = logging.getLogger(__name__)

MSGPACK = "application/msgpack"
CALL_TIMEOUT = 30.0
IDLE_POLL = 2.0
HEARTBEAT_S = 15.0  # an idle hub checks on its upstream this often
STUCK_RETRY_S = 120.0
PENDING_RECHECK_S = 10.0  # while pending upstream, ask again this often whether approved
MAX_BATCH_BYTES = 4 * 1024 * 1024
META_UPSTREAM_KEY = "upstream_public"


def _dev_id(store: Any, node_id: str) -> int | None:
    d = store.find_device(node_id)
    return None if d is None else int(d.id)


class Forwarder:
    def __init__(
        self,
        store: HubStore,
        url: str,
        ident: Identity,
        name: str,
        kbps: int = 0,
        *,
        rng: random.Random | None = None,
    ):
        self.store = store
        self.ident = ident
        self.name = name
        self.url = url.rstrip("/")
        self.kbps = kbps
        self.rng = rng or random.Random()
        self.backoff = Backoff(base=0.5, cap=30.0)
        self.sizer = BatchSizer()
        self.state = "down"
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.upstream_public: bytes | None = None
        self.enrollment: dict[str, Any] = {}
        self.cursor: dict[int, int] = {}  # dev -> seq upstream is known to hold
        self.stuck_until: dict[int, float] = {}  # dev -> monotonic time to retry a refusal
        self.pushed = 0
        self.oldest_received: int | None = None
        self._drained: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._connected = False
        self._warned = False
        self._last_contact = 0.0
        self._endorsed: set[bytes] = set()  # endorsements upstream already received
        self._forks_sent: set[tuple[int, int]] = set()  # (dev, seq) evidence sent upstream
        self.heartbeat_s = HEARTBEAT_S
        self._enrolled_at = 0.0  # monotonic time of the last enrollment answer

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        store = self.store
        self.upstream_public = await store.get_meta(META_UPSTREAM_KEY)
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="forwarder")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- status ------------------------------------------------------------------------------

    def backlog(self) -> int:
        return self.store.backlog()

    def drain_rate(self) -> float:
        if len(self._drained) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._drained[0], self._drained[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def status(self) -> dict[str, Any]:
        store = self.store
        backlog = self.backlog()
        now_m = clock.monotonic()
        st = self.state
        if self.backoff.waiting(now_m):
            st = "backoff"
        age = None
        if backlog and self.oldest_received is not None:
            age = max(clock.now() - self.oldest_received, 0.0)
        rejected = [
            {
                "device": store.devices_by_id[r.dev].node_id,
                "seq": r.seq,
                "code": r.code,
                "reason": r.reason,
                "at": r.at,
            }
            for r in store.rejections.values()
        ]
        return {
            "state": st,
            "url": self.url,
            "upstream_id": identity.fingerprint(self.upstream_public)
            if self.upstream_public
            else None,
            "enrollment": self.enrollment.get("state"),
            "code": self.enrollment.get("code"),
            "backlog": backlog,
            "oldest_age_s": age,
            "confirmed": sum(c.seq for c in store.confirmed.values()),
            "rejected": len(rejected),
            "rejections": rejected[:100],
            "retry_in_s": max(self.backoff.until - now_m, 0.0) if st == "backoff" else None,
            "retry_at": clock.now() + max(self.backoff.until - now_m, 0.0)
            if st == "backoff"
            else None,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "drain_per_s": round(self.drain_rate(), 1),
            "batch_size": self.sizer.size,
        }

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        store = self.store
        while not self._stop.is_set():
            now_m = clock.monotonic()
            if self.backoff.waiting(now_m):
                await self._sleep(self.backoff.until - now_m)
                continue
            try:
                moved = await self._round()
            except (UpstreamError, ProtocolError) as exc:
                # A transport failure keeps the connection state and the cursors: a push whose
                # answer was lost is simply sent again (upstream treats the same bytes as a
                # no-op and answers with receipts), so recovery costs one call, not four.
                # Something upstream said that does not check out (a bad receipt) starts over
                # from hello, which names the identity problem if there is one.
                if isinstance(exc, ProtocolError):
                    self._connected = False
                    self.cursor.clear()
                    self._endorsed.clear()
                if isinstance(exc, UpstreamError) and exc.too_big:
                    self.sizer.failed()
                delay = self.backoff.failed(
                    clock.monotonic(),
                    self.rng,
                    exc.retry_after if isinstance(exc, UpstreamError) else None,
                )
                self.state = "down"
                self.last_error = str(exc)
                level = logging.DEBUG if self._warned else logging.WARNING
                log.log(level, "upstream %s: %s; retrying in %.1fs", self.url, exc, delay)
                self._warned = True
                await self._note_backlog_age()
                continue
            except Exception:
                log.exception("forwarder round failed unexpectedly; retrying")
                self.backoff.failed(clock.monotonic(), self.rng)
                continue
            if self._warned:
                log.warning("upstream %s is reachable again", self.url)
                self._warned = False
            self.state = "up"
            self.backoff.succeeded()
            if not moved:
                store.changed.clear()
                await self._sleep(IDLE_POLL, wake=store.changed)

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=max(seconds, 0.0), return_when="FIRST_COMPLETED")
        finally:
            for w in waiters:
                w.cancel()

    async def _call(self, method: str, path: str, body: bytes | None = None) -> Any:
        assert self._session is not None
        headers = {"Accept": MSGPACK}
        if body is not None:
            headers["Content-Type"] = MSGPACK
        try:
            async with self._session.request(
                method,
                self.url + path,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT),
            ) as r:
                data = await r.read()
                if r.status in (429, 502, 503, 504):
                    raise UpstreamError(
                        f"HTTP {r.status} (busy)",
                        retry_after=parse_retry_after(r.headers.get("Retry-After")),
                    )
                try:
                    obj = codec.unpack(data, canonical=False) if data else {}
                except ProtocolError:
                    raise UpstreamError(f"HTTP {r.status} with a body that is not c1hub") from None
                if r.status >= 400:
                    err = obj.get("error", {}) if isinstance(obj, dict) else {}
                    raise UpstreamError(
                        f"HTTP {r.status} {err.get('code', '')}: {err.get('reason', '')}",
                        too_big=r.status == 413,
                    )
                self._last_contact = clock.monotonic()
                self.last_success = clock.now()
                return obj
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamError(f"cannot reach upstream ({type(exc).__name__}: {exc})") from None

    async def _connect(self) -> None:
        """Check upstream's identity (pinned at first contact) and enroll there."""
        nonce = os.urandom(enroll.NONCE_LEN)
        hello = await self._call("GET", f"/v1/hello?nonce={nonce.hex()}")
        public = hello.get("public") if isinstance(hello, dict) else None
        if type(public) is not bytes or len(public) != 32:
            raise UpstreamError(f"{self.url} is not a c1hub node")
        try:
            enroll.check_proof(public, nonce, hello.get("proof", b""))
        except ProtocolError:
            raise UpstreamError(
                f"REFUSED: {self.url} names key {identity.fingerprint(public)} but cannot prove "
                "it holds it"
            ) from None
        store = self.store
        if self.upstream_public is None:
            await store.set_meta(META_UPSTREAM_KEY, public)
            self.upstream_public = public
            log.info("pinned upstream %s at %s", identity.fingerprint(public), self.url)
        elif public != self.upstream_public:
            raise UpstreamError(
                f"REFUSED: {self.url} has identity {identity.fingerprint(public)}, but this hub "
                f"is enrolled at {identity.fingerprint(self.upstream_public)}; check --upstream"
            )
        await self._enroll(public)
        self._endorsed.clear()
        await self._audit()
        self._connected = True

    async def _enroll(self, public: bytes) -> None:
        """Enroll upstream (idempotent) and keep the state it answers, for status."""
        req = enroll.make_request(self.ident, public, self.name, "hub", clock.now_s())
        reply = await self._call("POST", "/v1/enroll", req)
        self._enrolled_at = clock.monotonic()
        was = self.enrollment.get("state")
        self.enrollment = {"state": reply.get("state"), "code": reply.get("code")}
        if reply.get("state") == "pending" and was != "pending":
            log.warning(
                "this hub is pending at upstream %s: ask the national side to approve %s "
                "(comparison code %s); entries are forwarded and held there until then",
                self.url, self.ident.node_id, reply.get("code"),
            )  # fmt: skip
        elif was == "pending" and reply.get("state") != "pending":
            log.warning("this hub is now %s at upstream %s", reply.get("state"), self.url)

    def _candidates(self, now_m: float) -> list[int]:
        """Devices with something to forward, not parked after a refusal."""
        store = self.store
        limits = {
            dev: d.forward_limit(store.heads[dev].seq)
            for dev, d in store.devices_by_id.items()
            if dev in store.heads
        }
        confirmed = {dev: c.seq for dev, c in store.confirmed.items()}
        return outbox.candidates(limits, confirmed, self.cursor, self.stuck_until, now_m)

    async def _sync_heads(self, devs: list[int]) -> None:
        """Ask upstream what it holds for ``devs``; take its receipts as confirmations."""
        store = self.store
        publics = [store.devices_by_id[d].public for d in devs]
        for i in range(0, len(publics), 1000):
            reply = await self._call(
                "POST", "/v1/heads", codec.pack({"origins": publics[i : i + 1000]})
            )
            await self._take_receipts(reply.get("receipts", []))
        for d in devs:
            if d not in self.cursor:
                self.cursor[d] = store.confirmed[d].seq if d in store.confirmed else 0

    async def _take_receipts(self, raws: list[bytes]) -> dict[int, tuple[int, bytes]]:
        """Check upstream's receipts and confirm what they cover. Returns, per device, the
        receipts that name a seq beyond what this hub holds (upstream got it elsewhere)."""
        store = self.store
        assert self.upstream_public is not None
        now = clock.now_s()
        ahead: dict[int, tuple[int, bytes]] = {}
        for raw in raws:
            rc = receipt.decode(raw)
            rc.check(self.upstream_public)
            d = store.devices.get(rc.origin)
            if d is None or rc.seq == 0:
                continue
            held = await store.record_raw(rc.origin, rc.seq)
            if held is None:
                ahead[d.id] = (rc.seq, raw)  # another hub forwarded more of this log
                continue
            if sha256(held).digest() != rc.hash:
                log.error(
                    "upstream holds a different entry %d for device %s than this hub: a fork "
                    "upstream; not confirming", rc.seq, d.node_id,
                )  # fmt: skip
                continue
            await self._confirmed(d.id, rc.seq, rc.hash, raw, now)
        return ahead

    async def _confirmed(self, dev: int, seq: int, hash_: bytes, raw: bytes, now: int) -> None:
        store = self.store
        await store.confirm(dev, seq, hash_, raw, now)
        self.cursor[dev] = max(self.cursor.get(dev, 0), seq)
        if dev not in store.rejections:
            self.stuck_until.pop(dev, None)

    async def _audit(self) -> None:
        """Ask upstream what it holds for every device it has confirmed. If it holds less than
        it signed for (restored from a backup, say), say so loudly and send the rest again:
        a receipt is a promise, and a broken promise must not leave a silent hole."""
        store = self.store
        devs = [dev for dev, c in store.confirmed.items() if c.seq > 0]
        now = clock.now_s()
        for i in range(0, len(devs), 1000):
            chunk = devs[i : i + 1000]
            publics = [store.devices_by_id[d].public for d in chunk]
            reply = await self._call("POST", "/v1/heads", codec.pack({"origins": publics}))
            heads = {
                store.devices[item[0]].id: item[1]
                for item in reply.get("heads", [])
                if isinstance(item, list) and len(item) == 3 and type(item[0]) is bytes
                and type(item[1]) is int
                and item[0] in store.devices
            }  # fmt: skip
            confirmed = {dev: c.seq for dev, c in store.confirmed.items()}
            for dev, held_seq in outbox.lost_upstream(heads, confirmed).items():
                d = store.devices_by_id[dev]
                promised = confirmed[dev]
                log.error(
                    "upstream %s now holds only %d entries of device %s but had signed a "
                    "receipt for %d: it lost entries (restored from a backup?). Sending them "
                    "again; its old receipt is kept as evidence.",
                    self.url, held_seq, d.node_id, promised,
                )  # fmt: skip
                await store.reject_upstream(Rejection(
                    dev, held_seq + 1, "upstream_lost",
                    f"upstream signed a receipt for seq {promised} but now holds only "
                    f"seq {held_seq}; resending", now,
                ))  # fmt: skip
                held = await store.record_raw(d.public, held_seq) if held_seq else None
                await store.unconfirm(
                    dev, held_seq, sha256(held).digest() if held else record.GENESIS
                )
                self.cursor[dev] = held_seq
            await self._take_receipts(reply.get("receipts", []))

    async def _send_forks(self) -> None:
        """Hand upstream the evidence of every fork seen here (both records signed for one
        seq), so the national side stops counting that device too and shows the fork: a
        forked device's entries are held here, and its earlier ones may be counted there."""
        store = self.store
        for dev, seq, raw, held in await store.fork_evidence():
            if (dev, seq) in self._forks_sent:
                continue
            records = [r for r in (held, raw) if r is not None]
            reply = await self._call("POST", "/v1/push", codec.pack({"records": records}))
            self._forks_sent.add((dev, seq))
            got = len(reply.get("forks", []))
            log.warning(
                "sent fork evidence of device %s (seq %d) upstream: %s", store.devices_by_id[dev]
                .node_id, seq, "fork recorded there" if got else "upstream holds too little of "
                "that log to see it yet",
            )  # fmt: skip

    async def _note_backlog_age(self) -> None:
        """Keep the backlog's age true while upstream cannot be reached: that is when it
        matters (DESIGN §2.7)."""
        try:
            await self._refresh_oldest(self._candidates(clock.monotonic()))
        except Exception:
            log.exception("could not read the age of the upstream backlog")

    async def _refresh_oldest(self, devs: list[int]) -> None:
        store = self.store
        oldest = None
        for dev in devs[:200]:
            done = store.confirmed[dev].seq if dev in store.confirmed else 0
            at = await store.received_at(dev, max(self.cursor.get(dev, 0), done) + 1)
            if at is not None and (oldest is None or at < oldest):
                oldest = at
        self.oldest_received = oldest

    async def _round(self) -> int:
        """Push one batch; return how many records upstream newly confirmed."""
        if not self._connected:
            await self._connect()
            self.cursor.clear()
        elif (
            self.enrollment.get("state") == "pending"
            and clock.monotonic() - self._enrolled_at >= PENDING_RECHECK_S
        ):
            assert self.upstream_public is not None
            await self._enroll(self.upstream_public)  # approved since? status must say so
        if self.store.fork_count > len(self._forks_sent):
            await self._send_forks()
        now_m = clock.monotonic()
        devs = self._candidates(now_m)
        unknown = [d for d in devs if d not in self.cursor]
        if unknown:
            await self._sync_heads(unknown)
            devs = self._candidates(now_m)
        await self._refresh_oldest(devs)
        if not devs:
            if clock.monotonic() - self._last_contact >= self.heartbeat_s:
                await self._connect()  # idle: still notice (and show) an upstream that went away
            return 0
        store = self.store
        records: list[bytes] = []
        size = 0
        origins: list[bytes] = []
        sent_to: dict[int, int] = {}
        for dev in devs:
            room = self.sizer.size - len(records)
            if room <= 0 or size >= MAX_BATCH_BYTES:
                break
            d = store.devices_by_id[dev]
            limit = d.forward_limit(store.heads[dev].seq)
            start = self.cursor.get(dev, 0)
            raws = await store.records_after(dev, start, min(room, limit - start))
            for raw in raws:
                records.append(raw)
                size += len(raw)
            if raws:
                origins.append(d.public)
                sent_to[dev] = start + len(raws)
        if not records:
            return 0
        chain = [e for e in store.chain_for(origins) if e not in self._endorsed]
        body = codec.pack({"records": records, "endorsements": chain})
        before = sum(c.seq for c in store.confirmed.values())
        t0 = clock.monotonic()
        reply = await self._call("POST", "/v1/push", body)
        elapsed = clock.monotonic() - t0
        self.sizer.succeeded(elapsed)
        self.pushed += len(records)
        self._endorsed.update(chain)  # upstream has them now: send each once per connection
        ahead = await self._take_receipts(reply.get("receipts", []))
        now = clock.now_s()
        items = list(reply.get("rejected", [])) + list(reply.get("forks", []))
        first = outbox.causes(items, sent_to, lambda node_id: _dev_id(store, node_id))
        for dev_id, item in first.items():
            await store.reject_upstream(
                Rejection(dev_id, item["seq"], str(item.get("code")), str(item.get("reason")), now)
            )
            self.stuck_until[dev_id] = clock.monotonic() + STUCK_RETRY_S
            log.error(
                "upstream refused entry %s of device %s: %s (%s). That device's later entries "
                "wait behind it; retrying in %.0fs",
                item["seq"], store.devices_by_id[dev_id].node_id, item.get("reason"),
                item.get("code"), STUCK_RETRY_S,
            )  # fmt: skip
        # Upstream holds more of a log than this hub (a laptop enrolled at two hubs): confirm
        # what was sent when upstream refused none of it.
        for dev, last in outbox.confirmed_by_duplicates(
            {d: up for d, (up, _raw) in ahead.items()}, sent_to, first
        ).items():
            held = await store.record_raw(store.devices_by_id[dev].public, last)
            if held is not None:
                await self._confirmed(dev, last, sha256(held).digest(), ahead[dev][1], now)
        for dev, seq in sent_to.items():
            if (
                self.cursor.get(dev, 0) < seq
                and self.stuck_until.get(dev, 0.0) <= clock.monotonic()
            ):
                # No receipt that far and no refusal: ask again next round.
                self.cursor.pop(dev, None)
        after = sum(c.seq for c in store.confirmed.values())
        self.last_success = clock.now()
        self._drained.append((clock.monotonic(), after))
        await self._pace(len(body), elapsed)
        return after - before

    async def _pace(self, nbytes: int, elapsed: float) -> None:
        """Honour the bandwidth cap: a push of N bytes takes at least N / cap seconds."""
        if self.kbps > 0:
            need = nbytes / (self.kbps * 1024.0) - elapsed
            if need > 0:
                await self._sleep(need)
