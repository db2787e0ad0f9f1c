"""An upstream that answers like a root, in memory, for forwarder and outbox tests.

``FakeRoot`` is the root's side of the upstream protocol without HTTP or SQLite: a real
Ed25519 key (hello proofs and signed receipts), per-origin logs decided by the real
``ingest.plan``, heads with receipts, refusals, and misbehaviour on demand: an outage, a busy
answer with Retry-After, a 413 over a batch size, an answer lost after the commit, entries lost
(restored from a backup), receipts signed by a stranger. Every call is logged with the time of
the clock it was given, so a test can check what was sent and when.

``FakeUpstream`` answers the forwarder's ``hub.upstream.Upstream`` calls from it in memory;
``serve`` puts it behind a real aiohttp server on 127.0.0.1 (for the few tests that need real
sockets and ``HttpUpstream``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hub.errors import UpstreamError
from hub.protocol import codec, enroll, identity, ingest, receipt, record
from hub.protocol.errors import ProtocolError
from hub.protocol.identity import Identity
from hub.shared.rpc import Hello

DOWN = "down"  # nothing reaches the root (connection refused or reset)
BUSY = "busy"  # 503 with Retry-After; nothing processed
DROP = "drop"  # processed and committed, but the answer never arrives


class Fault(Exception):
    """What the root does instead of answering (see the kinds above)."""

    def __init__(self, kind: str, retry_after: float | None = None, reply: Any = None):
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after
        self.reply = reply


class TooBig(Exception):
    """413: the batch is over the root's limit."""


@dataclass
class Call:
    at: float
    path: str  # hello | enroll | heads | push
    origins: dict[bytes, list[int]] = field(default_factory=dict)  # push: seqs; heads: []
    endorsements: list[bytes] = field(default_factory=list)
    nbytes: int = 0  # push: the records' bytes
    outcome: str = "ok"  # ok | down | busy | drop | too_big

    def seqs(self, origin: bytes) -> list[int]:
        return self.origins.get(origin, [])


class FakeRoot:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, approve_hubs: bool = True):
        self.ident = Identity.generate()
        self.clock = clock
        self.approve_hubs = approve_hubs
        self.hubs: dict[bytes, str] = {}  # enrolled hubs -> state
        self.logs: dict[bytes, list[bytes]] = {}  # origin -> raw records, seq 1 first
        self.forked: set[bytes] = set()
        self.forks: list[tuple[bytes, int]] = []  # (origin, seq) of each fork recorded
        self.refusals: dict[bytes, tuple[int, str, str]] = {}  # origin -> (from seq, code, reason)
        self.faults: collections.deque[tuple[str | None, Fault]] = collections.deque()
        self.is_down = False
        self.max_records: int | None = None  # over this, a push gets 413
        self.stranger_receipts = 0  # sign this many receipts with another key
        self.receiptless_pushes = 0  # answer this many pushes without receipts
        self.impostor = False  # name this key in hello without holding it
        self.calls: list[Call] = []

    # -- what the test asks for ---------------------------------------------------------------

    def fail_next(self, kind: str, *, path: str | None = None, retry_after: float | None = None,
                  times: int = 1) -> None:  # fmt: skip
        """Misbehave on the next ``times`` calls (to ``path`` only, when given)."""
        for _ in range(times):
            self.faults.append((path, Fault(kind, retry_after)))

    def refuse(self, origin: bytes, from_seq: int, code: str = "device_revoked") -> None:
        self.refusals[origin] = (from_seq, code, f"refused from seq {from_seq} (test)")

    def lose(self, origin: bytes, keep: int) -> None:
        """Restored from a backup: only the first ``keep`` entries of ``origin`` remain."""
        del self.logs[origin][keep:]

    def approve(self, hub_public: bytes) -> None:
        self.hubs[hub_public] = ingest.APPROVED

    def head(self, origin: bytes) -> int:
        return len(self.logs.get(origin, []))

    def pushes(self) -> list[Call]:
        return [c for c in self.calls if c.path == "push" and c.outcome in ("ok", DROP)]

    def count(self, path: str) -> int:
        return sum(1 for c in self.calls if c.path == path)

    # -- the protocol ------------------------------------------------------------------------

    def _begin(self, call: Call) -> None:
        self.calls.append(call)
        if self.is_down:
            call.outcome = DOWN
            raise Fault(DOWN)
        for i, (path, fault) in enumerate(self.faults):
            if path is None or path == call.path:
                del self.faults[i]
                call.outcome = fault.kind
                if fault.kind != DROP:
                    raise fault
                return

    def _answer(self, call: Call, reply: Any) -> Any:
        if call.outcome == DROP:
            raise Fault(DROP, reply=reply)
        return reply

    def hello(self, nonce: bytes) -> dict[str, Any]:
        call = Call(self.clock(), "hello")
        self._begin(call)
        return self._answer(
            call,
            {
                "node_id": self.ident.node_id,
                "public": self.ident.public,
                "name": "fake root",
                "role": "root",
                "version": 1,
                "proof": enroll.prove(Identity.generate() if self.impostor else self.ident, nonce),
            },
        )

    def enroll(self, raw: bytes) -> dict[str, Any]:
        call = Call(self.clock(), "enroll")
        self._begin(call)
        req = enroll.open_request(raw, self.ident.public)
        default = ingest.APPROVED if self.approve_hubs else ingest.PENDING
        state = self.hubs.setdefault(req.device, default)
        code = identity.comparison_code(self.ident.public, req.device)
        return self._answer(call, {"state": state, "code": code, "node_id": "", "hub": ""})

    def heads(self, origins: Sequence[bytes]) -> dict[str, Any]:
        call = Call(self.clock(), "heads", {o: [] for o in origins})
        self._begin(call)
        out, receipts = [], []
        for o in origins:
            h = self._head(o)
            out.append([o, h.seq, h.hash])
            if h.seq:
                receipts.append(self._receipt(o, h))
        return self._answer(call, {"heads": out, "receipts": receipts})

    def push(self, records: Sequence[bytes], endorsements: Sequence[bytes]) -> dict[str, Any]:
        seqs: dict[bytes, list[int]] = {}
        for raw in records:
            with contextlib.suppress(ProtocolError):
                r = record.decode(raw)
                seqs.setdefault(r.origin, []).append(r.seq)
        call = Call(self.clock(), "push", seqs, list(endorsements), sum(map(len, records)))
        self._begin(call)
        if self.max_records is not None and len(records) > self.max_records:
            call.outcome = "too_big"
            raise TooBig(f"over {self.max_records} records")
        examined = [ingest.examine(i, raw) for i, raw in enumerate(records)]
        refused: list[ingest.Outcome] = []
        ok = []
        for ex in examined:
            r = ex.record
            if r is not None and r.origin in self.refusals and ex.error is None:
                start, code, reason = self.refusals[r.origin]
                if r.seq >= start:
                    refused.append(
                        ingest.Outcome(ex.index, ingest.REJECT, r.origin, r.seq, code, reason)
                    )
                    continue
            ok.append(ex)
        heads = {o: self._head(o) for o in seqs}
        existing = {
            (o, s): self.logs[o][s - 1]
            for o, s in ingest.needed_existing(ok, heads)
            if s <= len(self.logs.get(o, []))
        }
        devices = {o: ingest.Device(ingest.APPROVED, o in self.forked) for o in seqs}
        p = ingest.plan(ok, heads, existing, devices)
        for ex in p.accepted:
            assert ex.record is not None
            self.logs.setdefault(ex.record.origin, []).append(ex.record.raw)
        for ex, _held in p.forks:
            assert ex.record is not None
            self.forked.add(ex.record.origin)
            self.forks.append((ex.record.origin, ex.record.seq))
        outcomes = sorted(p.outcomes + refused, key=lambda o: o.index)
        receipts = [self._receipt(o, self._head(o)) for o in seqs if self.head(o)]
        if self.receiptless_pushes > 0:
            self.receiptless_pushes -= 1
            receipts = []
        return self._answer(
            call,
            {
                "accepted": len(p.accepted),
                "duplicate": sum(1 for o in outcomes if o.decision == ingest.DUPLICATE),
                "rejected": [o.to_dict() for o in outcomes if o.decision == ingest.REJECT],
                "forks": [o.to_dict() for o in outcomes if o.decision == ingest.FORK],
                "receipts": receipts,
            },
        )

    def _head(self, origin: bytes) -> ingest.Head:
        log = self.logs.get(origin, [])
        if not log:
            return ingest.Head()
        rec = record.decode(log[-1])
        return ingest.Head(rec.seq, rec.hash)

    def _receipt(self, origin: bytes, h: ingest.Head) -> bytes:
        signer = self.ident
        if self.stranger_receipts > 0:
            self.stranger_receipts -= 1
            signer = Identity.generate()
        return receipt.issue(signer, origin, h.seq, h.hash, int(time.time())).raw


# -- the same root behind real sockets --------------------------------------------------------

MSGPACK = "application/msgpack"


def _abort(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=599)  # never sent: the connection is gone


def make_app(root: FakeRoot) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        # The root's work (decoding, verifying, signing) runs in a task of its own, as it
        # would in another process and as ``FakeUpstream`` does: the loop guard
        # (tests/loopguard.py) counts its CPU as the test's, not as aiohttp's request handler.
        return await asyncio.create_task(answer(request))

    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            if request.path == "/v1/hello":
                reply = root.hello(bytes.fromhex(request.query["nonce"]))
            elif request.path == "/v1/enroll":
                reply = root.enroll(body)
            elif request.path == "/v1/heads":
                reply = root.heads(codec.unpack(body, canonical=False)["origins"])
            elif request.path == "/v1/push":
                msg = codec.unpack(body, canonical=False)
                reply = root.push(msg["records"], msg.get("endorsements", []))
            else:
                raise web.HTTPNotFound()
        except Fault as f:
            if f.kind == BUSY:
                headers = {"Retry-After": f"{f.retry_after:g}"} if f.retry_after else {}
                return web.Response(status=503, text="busy\n", headers=headers)
            return _abort(request)
        except TooBig as exc:
            err = {"error": {"code": "too_large", "reason": str(exc)}}
            return web.Response(status=413, body=codec.pack(err), content_type=MSGPACK)
        return web.Response(body=codec.pack(reply), content_type=MSGPACK)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@contextlib.asynccontextmanager
async def serve(root: FakeRoot) -> AsyncIterator[str]:
    """``root`` on 127.0.0.1 (a free port); yields its URL."""
    runner = web.AppRunner(make_app(root), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# -- the same root as an ``hub.upstream.Upstream``, in memory ---------------------------------


class FakeUpstream:
    """``hub.upstream.Upstream`` answered by ``root`` in memory (no sockets). Failures read as
    ``HttpUpstream``'s would."""

    url = "http://fake-root"

    def __init__(self, root: FakeRoot):
        self.root = root
        self.closed = False

    async def _call(self, fn: Callable[[], Any]) -> Any:
        # The root's work runs in a task of its own, as it would in another process: the loop
        # guard (tests/loopguard.py) counts the root's CPU as the test's, not the forwarder's.
        return await asyncio.create_task(self._serve(fn))

    async def _serve(self, fn: Callable[[], Any]) -> Any:
        await asyncio.sleep(0)  # like any I/O, let others run
        try:
            return fn()
        except Fault as f:
            if f.kind == BUSY:
                msg = f"upstream {self.url} is busy (HTTP 503)"
                raise UpstreamError(msg, retry_after=f.retry_after) from None
            what = "the answer was lost" if f.kind == DROP else "it is down"
            raise UpstreamError(f"cannot reach upstream {self.url} ({what})") from None
        except TooBig as exc:
            msg = f"upstream {self.url} refused /v1/push: too big ({exc})"
            raise UpstreamError(msg, too_big=True) from None

    async def hello(self) -> Hello:
        nonce = os.urandom(enroll.NONCE_LEN)
        h = await self._call(lambda: self.root.hello(nonce))
        enroll.check_proof(h["public"], nonce, h["proof"])
        return Hello(h["public"], h["node_id"], h["name"], h["role"], h["version"], None, None)

    async def enroll(self, request: bytes) -> Any:
        return await self._call(lambda: self.root.enroll(request))

    async def heads(self, origins: Sequence[bytes]) -> Any:
        return await self._call(lambda: self.root.heads(origins))

    async def push(self, records: Sequence[bytes], endorsements: Sequence[bytes] | None) -> Any:
        return await self._call(lambda: self.root.push(records, endorsements or []))

    async def close(self) -> None:
        self.closed = True
