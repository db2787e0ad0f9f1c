"""The hub's client connections: aiohttp's server and connection handler with time and count
limits, and aiohttp's own refusals in the documented error body (docs/configuration.md,
docs/security.md, findings 2 and 10 of issue 8).

``HubServer`` keeps every open connection in exactly one of three insertion-ordered sets, so
that each decision costs O(1) however many connections a flood holds open:

- ``waiting``: accepted, and no whole request head came yet (never served);
- ``idle``: served at least once, waiting for its next request (keep-alive);
- ``busy``: a request of it is being received or handled.

A connection enters ``waiting`` when it is accepted, moves to ``busy`` when a request head is
complete and to ``idle`` when the reply is sent; the order in each set is the order in which
its connections went quiet. Over ``max_connections``, the connection that has waited longest
for a request is closed to make room (first among ``waiting``, then among ``idle``); a busy one
never is, and when every other connection is busy the new one is closed at once. A closed
connection leaves the sets and the count at once, not when its socket is finally released in
a later loop iteration, so one burst of accepts evicts as many connections as it adds.

Once a second, ``sweep`` closes a connection that has not sent a whole request head within
``header_timeout`` of going quiet, an idle keep-alive one after ``keepalive_timeout``, and a
busy one whose body has not arrived within ``body_timeout`` of the hub starting to read it
(``restart_body_clock``: after the request found room under ``max_inflight_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("hub.server")

ACCEPT_BATCH = 32  # connections asyncio accepts at most per wake-up (the site's backlog): few,
# so that a flood of connections interleaves with the requests of those already in
LISTEN_QUEUE = 1024  # connections the kernel queues for the hub (SYN and accept queues)
RESERVED_FILES = 64  # descriptors kept for the database, the worker pool, logs, upstream
REFUSAL_LOG_INTERVAL = 60.0


def printable(text: str) -> str:
    """Text from the network as one log line: control characters escaped."""
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


@dataclass(slots=True)
class RefusalLog:
    """Refused requests are logged at INFO at most once per cause per ``interval`` seconds,
    repeats at DEBUG, never with a traceback: a flood of bad requests cannot flood the log."""

    interval: float = REFUSAL_LOG_INTERVAL
    _last: dict[str, float] = field(default_factory=dict)

    def refused(self, cause: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(cause)
        if last is not None and now - last < self.interval:
            log.debug(msg, *args)
            return
        if len(self._last) > 1000:  # causes are codes, but stay bounded whatever they are
            self._last.clear()
        self._last[cause] = now
        log.info(msg + " (repeats of this refusal are not logged for %d s)", *args, self.interval)


REFUSALS = RefusalLog()


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Time and count limits on client connections (docs/configuration.md)."""

    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_connections: int = 512
    body_timeout: float = 60.0


def connection_cap(wanted: int, open_files: int) -> int:
    """``max_connections`` as the open-file limit allows: every held connection, one burst of
    accepts and the reserved descriptors must fit, or accepting fails (and asyncio then stops
    accepting for a whole second)."""
    return max(min(wanted, open_files - RESERVED_FILES - ACCEPT_BATCH), 1)


class HubRequestHandler(RequestHandler):
    """aiohttp's connection handler with its own error replies (a request its parser refused,
    a handler that failed) in the documented error body instead of text/plain, and parser
    refusals logged as refusals (INFO, once per cause per interval) instead of tracebacks.

    It tells its ``HubServer`` when a request starts and ends, and keeps what the sweep needs:
    when the connection last went quiet, whether bytes came since, when the hub started to
    read the current request's body, and that body's stream."""

    hub: HubServer
    quiet_since: float
    heard: bool
    served: int
    closing: bool
    body_since: float
    body: StreamReader | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.quiet_since = time.monotonic()
        self.heard = False
        self.served = 0
        self.closing = False
        self.body_since = 0.0
        self.body = None
        super().connection_made(transport)  # registers it with the server

    def data_received(self, data: bytes) -> None:
        self.heard = True
        super().data_received(data)

    async def _handle_request(self, request: web.BaseRequest, *args: Any, **kwargs: Any) -> Any:
        self.body_since = time.monotonic()
        self.body = request.content
        self.hub.request_started(self)
        try:
            return await super()._handle_request(request, *args, **kwargs)
        finally:
            self.body = None
            self.quiet_since = time.monotonic()
            self.heard = False
            self.served += 1
            self.hub.request_ended(self)

    def body_late(self, now: float, timeout: float) -> bool:
        """The current request's body has not all come within ``timeout`` of the hub
        starting to read it."""
        body = self.body
        return body is not None and not body.is_eof() and now - self.body_since > timeout

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status == 400:
            reason = message or (str(exc) if exc else "") or "malformed HTTP request"
            REFUSALS.refused("bad_http", "request from %s refused: %s (bad_http)",
                             request.remote, printable(reason))  # fmt: skip
            err = {"code": "bad_http", "reason": f"malformed HTTP request: {reason}"}
        elif status == 500:
            log.error("request from %s failed", request.remote, exc_info=exc)
            err = {"code": "internal_error", "reason": "the hub failed on this request"}
        else:
            err = {"code": "http_error", "reason": message or f"HTTP {status}"}
        if request.writer.output_size > 0:
            raise ConnectionError("the reply has started; cannot send an error reply")
        resp = web.json_response({"error": err}, status=status)
        resp.force_close()
        return resp


def restart_body_clock(request: web.BaseRequest) -> None:
    """The hub starts reading this request's body now (it found room under
    ``max_inflight_bytes``): ``body_timeout`` counts from here."""
    handler = request.protocol
    if isinstance(handler, HubRequestHandler):
        handler.body_since = time.monotonic()


class HubServer(web.Server):
    """aiohttp's server with ``HubRequestHandler`` connections in three ordered sets (see the
    module docstring)."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.waiting: dict[HubRequestHandler, None] = {}
        self.idle: dict[HubRequestHandler, None] = {}
        self.busy: dict[HubRequestHandler, None] = {}
        self.evicted = 0  # closed to make room
        self.timed_out = 0  # closed by the sweep

    def __call__(self) -> RequestHandler:
        handler = HubRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.hub = self
        return handler

    @property
    def open_count(self) -> int:
        """Connections held open (those being closed are not counted)."""
        return len(self.waiting) + len(self.idle) + len(self.busy)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        assert isinstance(handler, HubRequestHandler)
        self.waiting[handler] = None
        if self.open_count > self.limits.max_connections:
            for quiet in (self.waiting, self.idle):
                oldest = next(iter(quiet), None)
                if oldest is not None and oldest is not handler:
                    self.evicted += 1
                    self.close(oldest)
                    return
            self.close(handler)  # every other connection is busy: refuse this one

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        if isinstance(handler, HubRequestHandler):
            self._forget(handler)

    def request_started(self, h: HubRequestHandler) -> None:
        if not h.closing:
            self.waiting.pop(h, None)
            self.idle.pop(h, None)
            self.busy[h] = None

    def request_ended(self, h: HubRequestHandler) -> None:
        if not h.closing:
            self.busy.pop(h, None)
            self.idle[h] = None

    def close(self, h: HubRequestHandler) -> None:
        self._forget(h)
        h.force_close()

    def _forget(self, h: HubRequestHandler) -> None:
        if not h.closing:
            h.closing = True
            self.waiting.pop(h, None)
            self.idle.pop(h, None)
            self.busy.pop(h, None)

    def sweep(self, now: float | None = None) -> None:
        """Close the connections over their time limits (see the module docstring)."""
        now = time.monotonic() if now is None else now
        lim = self.limits
        late: list[HubRequestHandler] = []
        for h in self.waiting:  # oldest first: stop at the first one still in time
            if now - h.quiet_since <= lim.header_timeout:
                break
            late.append(h)
        for h in self.idle:
            waited = now - h.quiet_since
            if waited <= lim.header_timeout:
                break
            if h.heard or waited > lim.keepalive_timeout:
                late.append(h)
        late += [h for h in self.busy if h.body_late(now, lim.body_timeout)]
        self.timed_out += len(late)
        for h in late:
            self.close(h)


class HubRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a ``HubServer`` with these ``limits``, swept once a
    second."""

    def __init__(self, app: web.Application, *, limits: ConnectionLimits, **kwargs: Any):
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self.limits = limits
        self.hub_server: HubServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        server = HubServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
        server.limits = self.limits
        self.hub_server = server
        self._sweeper = asyncio.create_task(self._sweep(server), name="connection-sweep")
        return server

    def tune_listeners(self, defer: float) -> None:
        """Once the sites listen: the kernel queues up to ``LISTEN_QUEUE`` connections (asyncio
        set its accept batch as the queue), and on Linux it hands the hub a connection only
        when its first bytes come, or after about ``defer`` seconds (TCP_DEFER_ACCEPT): a
        connection that sends nothing costs the hub nothing meanwhile, and cannot crowd out
        one that sends its request."""
        for site in self.sites:
            server = getattr(site, "_server", None)  # aiohttp keeps it private
            for sock in getattr(server, "sockets", ()):
                if sock.family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                if hasattr(socket, "TCP_DEFER_ACCEPT"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, math.ceil(defer))
                with sock.dup() as same:  # the same socket; asyncio's wrapper has no listen()
                    same.listen(LISTEN_QUEUE)

    async def _sweep(self, server: HubServer) -> None:
        while True:
            await asyncio.sleep(1.0)
            server.sweep()

    async def cleanup(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await super().cleanup()
