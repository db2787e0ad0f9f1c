"""A fault-injecting HTTP reverse proxy for integration tests, bound to 127.0.0.1.

Put it between a hub and its upstream (``--upstream`` pointing at the proxy) to make the link
misbehave the way a hotel uplink and an overloaded national server do::

    python -m tests.integration.faultproxy --listen PORT --target http://127.0.0.1:ROOT \\
        --seed 7 --p-busy 0.1 --p-reset 0.1 --p-slow 0.2 --p-drop 0.1

Fault kinds, decided per request from one seeded stream (``FaultPlan``):

- ``busy``: answer 503 with ``Retry-After`` at once; the target never sees the request.
- ``reset``: abort the connection with a TCP RST without answering; the target never sees it.
- ``drop``: forward the request, read the target's full answer (the target has committed),
  then close the connection without answering. The dangerous case: the sender cannot tell
  "lost on the way" from "done upstream".
- ``cut``: forward the request head and only the first half of its body to the target (its
  ``Content-Length`` promising the whole), then reset both connections: the target sees a
  body cut short mid-way, the sender no answer (a scan upload interrupted mid-body).
- ``slow``: sleep before forwarding or before answering (which one is drawn too); combines
  with the others except ``busy`` and ``reset``.

A target that cannot be reached is answered with 502 (counted as ``upstream_error``).

Control, never faulted or counted: ``GET /__faults`` returns ``{"config", "counts", "paths",
"log", "body_bytes", "order"}`` as JSON (``paths``: kind -> request path -> n; ``log``: the
fault of each request in arrival order, ``"ok"`` for none; ``body_bytes``: request-body bytes
received, per method; ``order``: "METHOD path" of each request in arrival order);
``POST /__faults`` with a JSON object changes any of the probabilities and delays at run time.

The decisions are a pure function of the seed and the request's rank: the n-th request gets
the n-th decision whatever its timing, so a run is reproducible from its seed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
import struct
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

KINDS = ("busy", "reset", "drop", "cut", "slow")
CONTROL = "/__faults"
# Hop-by-hop headers and the ones aiohttp sets itself: never copied across the proxy.
SKIP_HEADERS = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailers", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Date", "Server",
    )
)  # fmt: skip
LOG_LIMIT = 100_000


@dataclass(slots=True)
class FaultConfig:
    p_busy: float = 0.0
    p_reset: float = 0.0
    p_drop: float = 0.0
    p_cut: float = 0.0
    p_slow: float = 0.0
    slow_s: float = 0.5  # a slow request waits uniform(slow_s / 2, slow_s)
    retry_after: float = 1.0  # seconds, sent with every busy 503

    def check(self) -> None:
        for name in ("p_busy", "p_reset", "p_drop", "p_cut", "p_slow"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within 0..1, not {v}")
        if self.p_busy + self.p_reset + self.p_drop + self.p_cut > 1.0:
            raise ValueError("p_busy + p_reset + p_drop + p_cut must not exceed 1")
        if self.slow_s < 0 or self.retry_after < 0:
            raise ValueError("slow_s and retry_after must not be negative")

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
        new = FaultConfig(**{**asdict(self), **{k: float(v) for k, v in changes.items()}})
        new.check()
        for k in names:
            setattr(self, k, getattr(new, k))


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str | None  # "busy" | "reset" | "drop" | "cut" | None
    slow_s: float  # 0 = not slow
    slow_before: bool  # sleep before forwarding (else before answering)


class FaultPlan:
    """The seeded stream of decisions: three draws per request, always, so the n-th decision
    depends only on the seed and n (and the probabilities in force)."""

    def __init__(self, seed: int, config: FaultConfig):
        self.rng = random.Random(seed)
        self.config = config

    def decide(self) -> Decision:
        c = self.config
        u, s, where = self.rng.random(), self.rng.random(), self.rng.random()
        kind = None
        if u < c.p_busy:
            kind = "busy"
        elif u < c.p_busy + c.p_reset:
            kind = "reset"
        elif u < c.p_busy + c.p_reset + c.p_drop:
            kind = "drop"
        elif u < c.p_busy + c.p_reset + c.p_drop + c.p_cut:
            kind = "cut"
        slow = 0.0
        if kind not in ("busy", "reset", "cut") and s < c.p_slow:
            slow = c.slow_s * (0.5 + where / 2)
        return Decision(kind, slow, where < 0.5)


class FaultProxy:
    def __init__(self, target: str, seed: int, config: FaultConfig):
        config.check()
        self.target = target.rstrip("/")
        self.config = config
        self.plan = FaultPlan(seed, config)
        self.counts: Counter[str] = Counter()
        self.paths: dict[str, Counter[str]] = {}
        self.log: list[str] = []
        self.body_bytes: Counter[str] = Counter()
        self.order: list[str] = []  # "METHOD path" of each request, in arrival order
        self.session: aiohttp.ClientSession | None = None

    def _count(self, kind: str, path: str) -> None:
        self.counts[kind] += 1
        self.paths.setdefault(kind, Counter())[path] += 1

    def snapshot(self) -> dict[str, Any]:
        counts = {k: self.counts.get(k, 0) for k in (*KINDS, "requests", "forwarded", "ok")}
        counts["upstream_error"] = self.counts.get("upstream_error", 0)
        return {
            "config": asdict(self.config),
            "counts": counts,
            "paths": {k: dict(v) for k, v in self.paths.items()},
            "log": self.log,
            "body_bytes": dict(self.body_bytes),
            "order": self.order,
        }

    async def control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                self.config.update(await request.json())
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.snapshot())

    @staticmethod
    def _abort(request: web.Request, *, rst: bool) -> None:
        transport = request.transport
        if transport is None:
            return
        if rst:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        d = self.plan.decide()
        path = request.path
        self.counts["requests"] += 1
        if len(self.order) < LOG_LIMIT:
            self.order.append(f"{request.method} {path}")
        body = await request.read()
        self.body_bytes[request.method] += len(body)
        if d.kind == "cut" and len(body) < 2:
            d = Decision(None, d.slow_s, d.slow_before)  # nothing to cut
        if d.kind == "busy":
            self._count("busy", path)
            self._log("busy")
            return web.Response(
                status=503,
                text="fault proxy: busy\n",
                headers={"Retry-After": f"{self.config.retry_after:g}"},
            )
        if d.kind == "reset":
            self._count("reset", path)
            self._log("reset")
            self._abort(request, rst=True)
            return _not_sent()
        if d.kind == "cut":
            self._count("cut", path)
            self._log("cut")
            await self._cut(request, body)
            self._abort(request, rst=True)
            return _not_sent()
        if d.slow_s:
            self._count("slow", path)
            if d.slow_before:
                await asyncio.sleep(d.slow_s)
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in SKIP_HEADERS}
        try:
            async with self.session.request(
                request.method,
                self.target + request.path_qs,
                data=body if body else None,
                headers=headers,
                allow_redirects=False,
            ) as r:
                answer = await r.read()
                status, rheaders = r.status, r.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._count("upstream_error", path)
            self._log("upstream_error")
            return web.Response(status=502, text=f"fault proxy: target unreachable ({exc})\n")
        self.counts["forwarded"] += 1
        if d.slow_s and not d.slow_before:
            await asyncio.sleep(d.slow_s)
        if d.kind == "drop":
            self._count("drop", path)
            self._log("drop")
            self._abort(request, rst=False)
            return _not_sent()
        self.counts["ok"] += 1
        self._log("slow" if d.slow_s else "ok")
        out = {k: v for k, v in rheaders.items() if k.lower() not in SKIP_HEADERS}
        return web.Response(status=status, body=answer, headers=out)

    async def _cut(self, request: web.Request, body: bytes) -> None:
        """Send the target the request with half its body, then reset the connection."""
        url = URL(self.target)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        head = [f"{request.method} {request.path_qs} HTTP/1.1", f"Host: {url.host}:{url.port}",
                f"Content-Length: {len(body)}", "Connection: close"]  # fmt: skip
        head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in SKIP_HEADERS]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body[: len(body) // 2])
        await writer.drain()
        await asyncio.sleep(0.05)  # let the target read what came
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        del reader

    def _log(self, what: str) -> None:
        if len(self.log) < LOG_LIMIT:
            self.log.append(what)


def _not_sent() -> web.Response:
    """What a handler returns after closing the connection on purpose: aiohttp's write fails
    as a premature disconnection, quietly; nothing reaches the client."""
    return web.Response(text="never sent")


async def serve(port: int, proxy: FaultProxy) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", CONTROL, proxy.control)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        proxy.session = session
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            print(f"fault proxy on 127.0.0.1:{port} -> {proxy.target}", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.integration.faultproxy")
    ap.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    ap.add_argument("--target", required=True, help="URL to forward to")
    ap.add_argument("--seed", type=int, default=0)
    for f in fields(FaultConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), type=float, default=f.default)
    a = ap.parse_args(argv)
    config = FaultConfig(**{f.name: getattr(a, f.name) for f in fields(FaultConfig)})
    try:
        proxy = FaultProxy(a.target, a.seed, config)
    except ValueError as exc:
        ap.error(str(exc))
    asyncio.run(serve(a.listen, proxy))


if __name__ == "__main__":
    main()
