"""The hub's HTTP API (``/v1/...``): thin handlers that decode, call the hub service, encode.

Protocol endpoints speak msgpack (``application/msgpack``); status and admin endpoints speak
JSON. Every error — ours or aiohttp's — leaves through ``error_middleware`` as
``{"error": {"code", "reason"}}`` with the status from ``hub.errors.HTTP_STATUS``. See
docs/protocol.md for the contract.

``make_app(service, admin_token=..., max_body=...)`` builds the application from a
``HubService`` alone (no key file, lock or worker pool needed), so tests can serve it with
pytest-aiohttp's ``aiohttp_client``; ``hub/node.py`` puts it on its sockets: the TCP one and
the admin socket (``DATA/admin.sock``), one application for both. Admin routes are taken only
from the hub machine itself, with the token (``hub.access``).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.web_protocol import RequestPayloadError

from hub import blobapi, console
from hub.access import check_admin
from hub.connections import REFUSALS, printable, restart_body_clock
from hub.dashboard import render
from hub.errors import HTTP_STATUS, Busy
from hub.metrics import metrics_text
from hub.protocol import codec, worklist
from hub.protocol.errors import CodecError, LimitError, ProtocolError
from hub.service import FORKS_PAGE, MAX_HEADS_QUERY, HubService

log = logging.getLogger(__name__)

MSGPACK = "application/msgpack"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


TRIM_AFTER = 32 * 1024 * 1024  # bytes of bodies released before the C heap is trimmed
TRIM_DELAY = 0.5  # seconds after the last big body is released: its request is gone by then


def _malloc_trim() -> None:
    """Give the C heap's free pages back to the system (glibc keeps them otherwise: big
    bodies freed by Python stay in the process's resident memory)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim(0)


class ByteBudget:
    """Request-body bytes in flight (received, decoded, handled), over all connections: a
    request waits for room for at most ``timeout`` seconds, then gets 503 ``busy``. This
    bounds the memory that concurrent big requests can take.

    When nothing is in flight any more after big bodies, the C heap is trimmed on a worker
    thread so the memory goes back. The trim waits a moment, because the
    request (and its body) is still referenced while its answer is written (``TRIM_DELAY``);
    bodies released while a trim runs get a trim of their own after it."""

    def __init__(self, limit: int, timeout: float):
        self.limit = limit
        self.timeout = timeout
        self.used = 0
        self._released = 0
        self._room = asyncio.Condition()
        self._trim_timer: asyncio.TimerHandle | None = None
        self._trimming: asyncio.Future[None] | None = None
        self._closed = False

    @asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        n = min(n, self.limit)
        async with self._room:
            if self.used + n > self.limit:  # room now: no timed wait (a task per request)
                try:
                    await asyncio.wait_for(
                        self._room.wait_for(lambda: self.used + n <= self.limit), self.timeout
                    )
                except TimeoutError:
                    raise Busy(
                        f"the hub is receiving {self.used} bytes of other requests; send this "
                        "again later"
                    ) from None
            self.used += n
        try:
            yield
        finally:
            async with self._room:
                self.used -= n
                self._released += n
                self._room.notify_all()
            self._maybe_trim()

    def close(self) -> None:
        """Drop an armed trim, and arm none after a running one ends (the app is stopping)."""
        self._closed = True
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None

    def _maybe_trim(self) -> None:
        """Arm the trim timer when nothing is in flight after big bodies (once: a trim that
        is armed or running is not doubled; a running one re-checks when it ends)."""
        if self._closed or self.used or self._released < TRIM_AFTER:
            return
        if self._trim_timer is not None or self._trimming is not None:
            return
        loop = asyncio.get_running_loop()
        self._trim_timer = loop.call_later(TRIM_DELAY, self._start_trim)

    def _start_trim(self) -> None:
        self._trim_timer = None
        if self.used:  # a body arrived meanwhile: its release arms the timer again
            return
        self._released = 0
        self._trimming = asyncio.ensure_future(asyncio.to_thread(_malloc_trim))
        self._trimming.add_done_callback(self._trim_done)

    def _trim_done(self, done: asyncio.Future[None]) -> None:
        self._trimming = None
        if not done.cancelled() and done.exception() is not None:
            log.warning("giving memory back failed: %s", done.exception())
        self._maybe_trim()  # bodies released while it ran


@dataclass(frozen=True, slots=True)
class Api:
    """What the handlers need: the service, the admin token (read at each admin call), the
    body limits."""

    service: HubService
    admin_token: Callable[[], str]
    max_body: int
    inflight: ByteBudget


API_KEY: web.AppKey[Api] = web.AppKey("api", Api)

_MSGPACK_PATHS = ("/v1/hello", "/v1/enroll", "/v1/heads", "/v1/push", "/v1/work", "/v1/blobs")


def _error_body(request: web.Request, err: dict[str, str], status: int) -> web.Response:
    wants_json = "json" in request.headers.get("Accept", "")
    if request.path.startswith(_MSGPACK_PATHS) and not wants_json:
        return web.Response(body=codec.pack({"error": err}), status=status, content_type=MSGPACK)
    return web.json_response({"error": err}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProtocolError as exc:
        status = HTTP_STATUS.get(exc.code, 400)
        if status >= 500:
            log.error("%s %s: %s", request.method, printable(request.path), exc.message)
        else:
            REFUSALS.refused(
                exc.code, "%s %s refused: %s (%s)", request.method, printable(request.path),
                printable(exc.message), exc.code,
            )  # fmt: skip
        resp = _error_body(request, exc.to_dict(), status)
        if isinstance(exc, Busy):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except web.HTTPRequestEntityTooLarge:
        return _error_body(request, _too_large(request).to_dict(), 413)
    except RequestPayloadError as exc:  # e.g. a gzip or deflate body that does not decode
        REFUSALS.refused("bad_content_encoding", "%s %s refused: %s", request.method,
                         printable(request.path), printable(str(exc)))  # fmt: skip
        err = CodecError(f"the body cannot be read as its headers say (Content-Encoding?): {exc}")
        return _error_body(request, err.to_dict(), 400)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return _error_body(request, {"code": code, "reason": exc.reason}, exc.status)


@web.middleware
async def inflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request with a body holds its size (``max_body`` when unknown) under
    ``max_inflight_bytes`` while it is read and handled."""
    if request.method in ("GET", "HEAD") or request.content_length == 0:
        return await handler(request)
    api = _api(request)
    size = request.content_length if request.content_length is not None else api.max_body
    async with api.inflight.hold(min(size, api.max_body)):
        restart_body_clock(request)
        return await handler(request)


def _too_large(request: web.Request) -> LimitError:
    limit = _api(request).max_body
    return LimitError(f"request body is over the limit of {limit} bytes; send smaller batches")


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue``: a body that can never fit is refused before it is asked for
    (413 ``too_large``, connection closed); otherwise "100 Continue" as aiohttp does."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.content_length is not None and request.content_length > _api(request).max_body:
        REFUSALS.refused(
            "too_large", "%s %s refused: Content-Length %d over max_body", request.method,
            printable(request.path), request.content_length,
        )  # fmt: skip
        resp = _error_body(request, _too_large(request).to_dict(), 413)
        resp.force_close()
        return resp
    if request.version == HttpVersion11:
        if expect.lower() != "100-continue":
            err = {"code": "http_error", "reason": f"unknown Expect: {expect}"}
            return _error_body(request, err, 417)
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the reply itself has not started
    return None


def _api(request: web.Request) -> Api:
    return request.app[API_KEY]


def _service(request: web.Request) -> HubService:
    return request.app[API_KEY].service


async def _read_msgpack(request: web.Request) -> Any:
    ctype = request.content_type
    if ctype != MSGPACK:
        raise CodecError(f"send the body as {MSGPACK}, not {ctype or 'nothing'}")
    body = await request.read()
    api = _api(request)
    # Bounded by items (array elements and map pairs, all together), decoding any body up to
    # max_body takes a few milliseconds: millions of small values are refused (413) unbuilt.
    s = api.service
    items = max(s.max_batch + s.max_endorsements, MAX_HEADS_QUERY) + 64
    return codec.unpack(body, max_size=api.max_body, canonical=False, max_items=items)


def _pack(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=codec.pack(obj), status=status, content_type=MSGPACK)


def _origin(text: str) -> bytes:
    try:
        public = bytes.fromhex(text)
    except ValueError:
        public = b""
    if len(public) != 32:
        raise CodecError("origin must be a 64-character hex public key")
    return public


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


# -- protocol endpoints -----------------------------------------------------------------------


async def hello(request: web.Request) -> web.Response:
    nonce = request.query.get("nonce")
    raw_nonce = None
    if nonce is not None:
        try:
            raw_nonce = bytes.fromhex(nonce)
        except ValueError:
            raise CodecError("nonce must be hex") from None
    return _pack(_service(request).hello(raw_nonce))


async def enroll(request: web.Request) -> web.Response:
    raw = await request.read()
    if request.content_type != MSGPACK:
        raise CodecError(f"send the enrollment request as {MSGPACK}")
    return _pack((await _service(request).enroll(raw)).to_wire())


async def head(request: web.Request) -> web.Response:
    """One origin's head here, plus upstream's receipt for it (relayed to the laptop)."""
    return _pack((await _service(request).head(_origin(request.match_info["origin"]))).to_wire())


async def heads(request: web.Request) -> web.Response:
    """The version vector for the origins asked about, each with a signed receipt."""
    msg = await _read_msgpack(request)
    origins = msg.get("origins") if isinstance(msg, dict) else None
    if type(origins) is not list or not all(type(o) is bytes and len(o) == 32 for o in origins):
        raise CodecError('a heads query is {"origins": [32-byte public key, ...]}')
    return _pack((await _service(request).heads(origins)).to_wire())


async def push(request: web.Request) -> web.Response:
    msg = await _read_msgpack(request)
    if type(msg) is not dict or type(msg.get("records")) is not list:
        raise CodecError('a push body is {"records": [record bytes, ...]}')
    records = msg["records"]
    service = _service(request)
    service.check_batch(len(records))  # before looking inside: say the size first
    if not all(type(r) is bytes for r in records):
        raise CodecError("every record must be bytes")
    endorsements = msg.get("endorsements", [])
    if type(endorsements) is list:
        service.check_endorsements(len(endorsements))
    if type(endorsements) is not list or not all(type(e) is bytes for e in endorsements):
        raise CodecError("endorsements must be a list of endorsement bytes")
    return _pack((await service.push(records, endorsements)).to_wire())


async def work(request: web.Request) -> web.Response:
    """The double-entry work list, without numbers (hub/protocol/worklist.py)."""
    q = request.query
    try:
        limit = min(int(q.get("limit", "100")), worklist.MAX_LIMIT)
        keys = q.getall("key", [])
        if len(keys) > worklist.MAX_KEYS:
            raise LimitError(f"ask about at most {worklist.MAX_KEYS} keys at a time")
        if keys and "election" not in q:
            raise CodecError("key=FORM:TPS needs election=ID")
        query = worklist.Query(
            asker=_origin(q["origin"]) if "origin" in q else None,
            election=q.get("election"),
            form=q.get("form"),
            tps_prefix=q.get("tps", ""),
            limit=max(limit, 0),
            keys=worklist.keys_of(q.get("election", ""), keys),
        )
    except ValueError as exc:
        raise CodecError(f"bad work-list query: {exc}") from None
    wl = await _service(request).work(query)
    return _pack(wl.to_wire(query.asker))


# -- status and admin (JSON) ------------------------------------------------------------------


async def status(request: web.Request) -> web.Response:
    return web.json_response(await _service(request).status(), dumps=_dumps)


async def devices(request: web.Request) -> web.Response:
    """``GET /v1/devices``: every device; ``?limit=N&after=ID``: one page, oldest first."""
    q = request.query
    try:
        limit = int(q["limit"]) if "limit" in q else None
    except ValueError:
        raise CodecError("limit must be a whole number") from None
    rows = [d.to_dict() for d in await _service(request).devices(limit, q.get("after", ""))]
    return web.json_response(rows, dumps=_dumps)


async def device_action(request: web.Request) -> web.Response:
    """POST /v1/devices/{id}/approve|revoke (from the hub machine, with the admin token)."""
    check_admin(request, _api(request).admin_token)
    service = _service(request)
    device_id = request.match_info["id"]
    if request.match_info["action"] == "approve":
        info = await service.approve(device_id, request.query.get("role"))
    else:
        info = await service.revoke(device_id)
    return web.json_response(info.to_dict(), dumps=_dumps)


async def forks(request: web.Request) -> web.Response:
    """``GET /v1/forks?limit=N&after=ID``: one page, in ``id`` order."""
    q = request.query
    try:
        limit = int(q.get("limit", str(FORKS_PAGE)))
        after = int(q.get("after", "0"))
    except ValueError:
        raise CodecError("limit and after must be whole numbers") from None
    return web.json_response(await _service(request).forks(limit, after), dumps=_dumps)


def _region(request: web.Request) -> tuple[str, str]:
    """(level, code) of ``?region=CODE``: none for the country, 2 digits a province, 4 a
    kabupaten/kota, 6 a kecamatan."""
    code = request.query.get("region", "")
    level = {0: "national", 2: "province", 4: "kabkota", 6: "kecamatan"}.get(len(code))
    if level is None or (code and not code.isdigit()):
        raise CodecError("region must be 2, 4 or 6 digits (province, kabupaten/kota, kecamatan)")
    return level, code


async def results(request: web.Request) -> web.Response:
    """National results under one region (``?election=E&region=CODE``; docs/json-output.md)."""
    election = request.query.get("election", "")
    if not election:
        raise CodecError("give ?election=..., e.g. ?election=pemilu-2024")
    level, code = _region(request)
    return web.json_response(await _service(request).results(election, level, code))


async def dashboard(request: web.Request) -> web.Response:
    """The read-only page of the root or a hub on PostgreSQL (``hub.dashboard``); ``?lang=en`` for
    English. At the root, the results per region under ``?region=CODE`` (the country by
    default)."""
    lang = "en" if request.query.get("lang") == "en" else "id"
    service = _service(request)
    s = await service.status()
    regions = []
    if service.root:
        level, code = _region(request)
        regions = [await service.results(el, level, code) for el in sorted(s.get("totals", {}))]
    return web.Response(text=render(s, lang, regions), content_type="text/html")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; cheap counters only (no derived-state computation)."""
    m = await _service(request).metrics()
    return web.Response(text=metrics_text(m), content_type="text/plain")


def make_app(
    service: HubService,
    *,
    admin_token: str | Callable[[], str],
    max_body: int,
    max_inflight_bytes: int = 64 * 1024 * 1024,
    body_timeout: float = 60.0,
    listen_host: str | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, inflight_middleware], client_max_size=max_body
    )
    budget = ByteBudget(max_inflight_bytes, body_timeout)
    token = admin_token if callable(admin_token) else (lambda: admin_token)
    app[API_KEY] = Api(service, token, max_body, budget)

    async def _close_budget(_app: web.Application) -> None:
        budget.close()

    app.on_cleanup.append(_close_budget)
    app.router.add_get("/v1/hello", hello)
    app.router.add_post("/v1/enroll", enroll, expect_handler=expect_handler)
    app.router.add_post("/v1/heads", heads, expect_handler=expect_handler)
    app.router.add_get("/v1/heads/{origin}", head)
    app.router.add_post("/v1/push", push, expect_handler=expect_handler)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/devices", devices)
    app.router.add_post(
        "/v1/devices/{id}/{action:approve|revoke}", device_action, expect_handler=expect_handler
    )
    app.router.add_get("/v1/forks", forks)
    app.router.add_get("/v1/work", work)
    blobapi.add_routes(app, service.scans, expect_handler)
    app.router.add_get("/v1/results", results)
    app.router.add_get("/metrics", metrics)
    if service.root or service.sqlite() is None:
        # the national side (and any hub on PostgreSQL): the read-only page with the results
        app.router.add_get("/", dashboard)
        return app
    data_dir = service.sqlite_store().path.parent
    console.setup(app, service, data_dir=data_dir, listen_host=listen_host)
    return app
