"""The hub's HTTP API (``/v1/...``): thin handlers that decode, call the hub, encode.

Protocol endpoints speak msgpack (``application/msgpack``); status and admin endpoints speak
JSON. Every error — ours or aiohttp's — leaves through ``error_middleware`` as
``{"error": {"code", "reason"}}`` with the status from ``hub.errors.HTTP_STATUS``. See
docs/protocol.md for the contract.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.errors import HTTP_STATUS, NotFound, Unauthorized
from hub.protocol import PROTOCOL_VERSION, clock, codec, receipt
from hub.protocol.enroll import prove
from hub.protocol.errors import CodecError, LimitError, ProtocolError
from hub.store import DeviceRow

if TYPE_CHECKING:
    from hub.node import Hub

log = logging.getLogger(__name__)

MSGPACK = "application/msgpack"
HUB_KEY: web.AppKey[Hub] = web.AppKey("hub")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_MSGPACK_PATHS = ("/v1/hello", "/v1/enroll", "/v1/heads", "/v1/push", "/v1/work")


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
            log.error("%s %s: %s", request.method, request.path, exc.message)
        else:
            log.info("%s %s refused: %s (%s)", request.method, request.path, exc.message, exc.code)
        return _error_body(request, exc.to_dict(), status)
    except web.HTTPRequestEntityTooLarge:
        limit = _hub(request).config.max_body
        err = LimitError(f"request body is over the limit of {limit} bytes; send smaller batches")
        return _error_body(request, err.to_dict(), 413)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return _error_body(request, {"code": code, "reason": exc.reason}, exc.status)


def _hub(request: web.Request) -> Hub:
    return request.app[HUB_KEY]


async def _read_msgpack(request: web.Request) -> Any:
    ctype = request.content_type
    if ctype != MSGPACK:
        raise CodecError(f"send the body as {MSGPACK}, not {ctype or 'nothing'}")
    body = await request.read()
    return codec.unpack(body, max_size=_hub(request).config.max_body, canonical=False)


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


def _check_admin(request: web.Request) -> None:
    want = _hub(request).token
    got = request.headers.get("Authorization", "")
    if not hmac.compare_digest(got.encode(), f"Bearer {want}".encode()):
        raise Unauthorized(
            "admin commands need the hub's admin token (admin.token in its data folder); "
            "run them on the hub machine with --data"
        )


# -- protocol endpoints -----------------------------------------------------------------------


async def hello(request: web.Request) -> web.Response:
    hub = _hub(request)
    out: dict[str, Any] = {
        "node_id": hub.ident.node_id,
        "public": hub.ident.public,
        "name": hub.name,
        "role": hub.role,
        "version": PROTOCOL_VERSION,
    }
    nonce = request.query.get("nonce")
    if nonce is not None:
        try:
            raw_nonce = bytes.fromhex(nonce)
        except ValueError:
            raise CodecError("nonce must be hex") from None
        out["proof"] = prove(hub.ident, raw_nonce)
    if hub.forwarder is not None and hub.forwarder.upstream_public is not None:
        up = hub.forwarder.upstream_public
        out["upstream"] = up
        out["upstream_sig"] = receipt.vouch_upstream(hub.ident, up)
    return _pack(out)


async def enroll(request: web.Request) -> web.Response:
    hub = _hub(request)
    raw = await request.read()
    if request.content_type != MSGPACK:
        raise CodecError(f"send the enrollment request as {MSGPACK}")
    d, code = await hub.enroll(raw)
    return _pack({"state": d.state, "code": code, "node_id": d.node_id, "hub": hub.ident.node_id})


async def head(request: web.Request) -> web.Response:
    """One origin's head here, plus upstream's receipt for it (relayed to the laptop)."""
    store = _hub(request)._store()
    public = _origin(request.match_info["origin"])
    h = store.head_of(public)
    d = store.devices.get(public)
    out: dict[str, Any] = {
        "seq": h.seq,
        "hash": h.hash,
        "state": d.state if d else "unknown",
        "forked": 1 if d and d.forked else 0,
    }
    c = store.confirmed.get(d.id) if d is not None else None
    if c is not None and receipt.decode(c.receipt).seq == c.seq:  # not a promise upstream broke
        out["confirmed"] = c.receipt
    return _pack(out)


async def heads(request: web.Request) -> web.Response:
    """The version vector for the origins asked about, each with a signed receipt."""
    hub = _hub(request)
    msg = await _read_msgpack(request)
    origins = msg.get("origins") if isinstance(msg, dict) else None
    if type(origins) is not list or not all(type(o) is bytes and len(o) == 32 for o in origins):
        raise CodecError('a heads query is {"origins": [32-byte public key, ...]}')
    if len(origins) > 10_000:
        raise LimitError("ask about at most 10000 origins at a time")
    store = hub._store()
    now = clock.now_s()
    out, receipts = [], []
    for o in origins:
        h = store.head_of(o)
        out.append([o, h.seq, h.hash])
        if h.seq:
            receipts.append(receipt.issue(hub.ident, o, h.seq, h.hash, now).raw)
    return _pack({"heads": out, "receipts": receipts})


async def push(request: web.Request) -> web.Response:
    hub = _hub(request)
    msg = await _read_msgpack(request)
    if type(msg) is not dict or type(msg.get("records")) is not list:
        raise CodecError('a push body is {"records": [record bytes, ...]}')
    records = msg["records"]
    if len(records) > hub.config.max_batch:
        raise LimitError(
            f"batch of {len(records)} records is over the limit of {hub.config.max_batch}; "
            "send smaller batches"
        )
    if not all(type(r) is bytes for r in records):
        raise CodecError("every record must be bytes")
    endorsements = msg.get("endorsements", [])
    if type(endorsements) is not list or not all(type(e) is bytes for e in endorsements):
        raise CodecError("endorsements must be a list of endorsement bytes")
    result, receipts = await hub.push(records, endorsements)
    plan = result.plan
    counts = plan.counts()
    store = hub._store()
    origins = []
    for origin, h in sorted(result.heads.items()):
        d = store.devices.get(origin)
        origins.append(
            {
                "public": origin,
                "id": d.node_id if d else "",
                "state": d.state if d else "unknown",
                "forked": 1 if d and d.forked else 0,
                "seq": h.seq,
            }
        )
    return _pack(
        {
            "accepted": counts["accept"],
            "duplicate": counts["duplicate"],
            "rejected": [o.to_dict() for o in plan.outcomes if o.decision == "reject"],
            "forks": [o.to_dict() for o in plan.outcomes if o.decision == "fork"],
            "receipts": receipts,
            "origins": origins,
        }
    )


async def work(request: web.Request) -> web.Response:
    """The double-entry work list, without numbers (hub/protocol/worklist.py)."""
    import asyncio

    from hub.protocol import worklist

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
    view = _hub(request)._store().snapshot()
    facts = [f.facts for f in view.facts if view.is_accepted(f)]
    wl = await asyncio.to_thread(worklist.build, facts, query)
    return _pack(wl.to_wire(query.asker))


# -- status and admin (JSON) ------------------------------------------------------------------


async def status(request: web.Request) -> web.Response:
    return web.json_response(await _hub(request).status_async(), dumps=_dumps)


async def devices(request: web.Request) -> web.Response:
    from hub.status import device_list

    hub = _hub(request)
    return web.json_response(device_list(hub._store().snapshot(), hub.ident.public), dumps=_dumps)


def _device(request: web.Request) -> DeviceRow:
    hub = _hub(request)
    d = hub._store().find_device(request.match_info["id"])
    if d is None:
        raise NotFound(f"no device {request.match_info['id']!r} at this hub; see c1hub devices")
    return d


async def device_action(request: web.Request) -> web.Response:
    """POST /v1/devices/{id}/approve|revoke (admin token)."""
    _check_admin(request)
    hub = _hub(request)
    d = _device(request)
    d = await (hub.approve(d) if request.match_info["action"] == "approve" else hub.revoke(d))
    return web.json_response(hub.device_row(d))


async def forks(request: web.Request) -> web.Response:
    return web.json_response(await _hub(request)._store().forks())


async def dashboard(request: web.Request) -> web.Response:
    """The coordinator's page (HTML, refreshes itself); ``?lang=en`` for English."""
    from hub.dashboard import render

    lang = "en" if request.query.get("lang") == "en" else "id"
    html = render(await _hub(request).status_async(), lang)
    return web.Response(text=html, content_type="text/html")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; cheap counters only (no derived-state computation)."""
    hub = _hub(request)
    store = hub._store()
    by_state: dict[str, int] = {}
    for d in store.devices.values():
        by_state[d.state] = by_state.get(d.state, 0) + 1
    lines = [
        "# HELP c1hub_records_stored Records durably stored (all devices, held included).",
        "# TYPE c1hub_records_stored counter",
        f"c1hub_records_stored {store.records_stored}",
        "# HELP c1hub_commits Group commits of pushed batches.",
        "# TYPE c1hub_commits counter",
        f"c1hub_commits {store.commits}",
        "# HELP c1hub_pushes Push requests answered.",
        "# TYPE c1hub_pushes counter",
        f"c1hub_pushes {hub.push_count}",
        "# HELP c1hub_forks Forks detected (a device signed two histories).",
        "# TYPE c1hub_forks gauge",
        f"c1hub_forks {store.fork_count}",
        "# HELP c1hub_devices Devices by enrollment state.",
        "# TYPE c1hub_devices gauge",
    ]
    for st in ("pending", "approved", "revoked"):
        lines.append(f'c1hub_devices{{state="{st}"}} {by_state.get(st, 0)}')
    if hub.forwarder is not None:
        f = hub.forwarder
        up = {"up": 1, "down": 0, "backoff": 0}
        lines += [
            "# HELP c1hub_upstream_up 1 when the last call upstream succeeded.",
            "# TYPE c1hub_upstream_up gauge",
            f"c1hub_upstream_up {up.get(f.state, 0)}",
            "# HELP c1hub_upstream_backlog Entries upstream does not hold yet.",
            "# TYPE c1hub_upstream_backlog gauge",
            f"c1hub_upstream_backlog {f.backlog()}",
            "# HELP c1hub_upstream_confirmed Entries upstream has signed receipts for.",
            "# TYPE c1hub_upstream_confirmed gauge",
            f"c1hub_upstream_confirmed {sum(c.seq for c in store.confirmed.values())}",
            "# HELP c1hub_upstream_rejected Devices stopped by an upstream refusal.",
            "# TYPE c1hub_upstream_rejected gauge",
            f"c1hub_upstream_rejected {len(store.rejections)}",
        ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def make_app(hub: Hub) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=hub.config.max_body)
    app[HUB_KEY] = hub
    app.router.add_get("/v1/hello", hello)
    app.router.add_post("/v1/enroll", enroll)
    app.router.add_post("/v1/heads", heads)
    app.router.add_get("/v1/heads/{origin}", head)
    app.router.add_post("/v1/push", push)
    app.router.add_get("/v1/work", work)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/devices", devices)
    app.router.add_post("/v1/devices/{id}/{action:approve|revoke}", device_action)
    app.router.add_get("/v1/forks", forks)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", dashboard)
    return app
