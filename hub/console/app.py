"""The console's HTTP side: pages at ``/`` and ``/console/...`` on the hub's own app.

Handlers decode, call ``HubService`` (every hub operation: approve, revoke, push) or read the
shared ``Live`` room, and render with Jinja2 (autoescaped). Admin POSTs pass
``locality.check_admin`` first (``hub/console/locality.py``); everything else is read-only and
open to the LAN like ``/v1/status``. See docs/console.md for the pages and test hooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from hub.access import is_loopback
from hub.errors import NotFound, Unauthorized
from hub.memory import Facts
from hub.protocol import clock, state
from hub.protocol.errors import CodecError
from hub.protocol.rules import RULES
from hub.service import HubService
from hub.shared import netif, templates
from hub.shared.blobs import MEDIA_TYPES

from . import i18n, locality, views
from .live import COUNT_KEYS, Live, Room
from .resolve import Coordinator

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TOKEN_HEADER = "X-Console-Token"
EVENT_KEEPALIVE_S = 15.0
PARTS_KEPT = 64  # fragments kept for one room version (different queries, languages)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class Console:
    """The console of one hub app: its service, shared room, tokens and templates."""

    def __init__(self, service: HubService, data_dir: Path | None, listen_host: str | None):
        self.service = service
        self.live = Live(service)
        self.tokens = locality.Tokens()
        self.coordinator = (
            Coordinator(service, data_dir, self.facts_of) if data_dir is not None else None
        )
        self.data_dir = data_dir
        self.listen_host = listen_host  # the address the hub was asked to listen on
        self._made: _Made | None = None
        self._derived_task: asyncio.Future[_Made] | None = None
        self._parts: tuple[str, int, dict[tuple[str, ...], str]] = ("", -1, {})
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["pretty"] = _pretty
        self.env.filters["fmt_time"] = _fmt_time

    async def derived(self, room: Room, *, again: bool = False) -> views.Derived:
        """Per-entry views of this room version, computed once on a worker thread (shared by
        every page that asks meanwhile); ``again`` derives anew even for the same version."""
        made = self._made
        if made is not None and made.version == room.version and not again:
            return made.views
        if self._derived_task is None or self._derived_task.done():
            store = self.service.sqlite_store()
            source, view, version = store.facts, store.snapshot(), room.version

            async def run() -> _Made:
                return _Made(version, await asyncio.to_thread(views.derive, view), source)

            self._derived_task = asyncio.ensure_future(run())
        made = await asyncio.shield(self._derived_task)
        if self._made is None or made.views.seen >= self._made.views.seen:
            self._made = made
        return made.views

    async def facts_of(self, key: state.Key) -> list[Facts]:
        """Every stored record's facts for one (election, form, TPS), without walking the
        store: the derived views' index by key, plus the few records stored since they were
        made (derived again when more than ``TAIL`` were)."""
        live = self.service.sqlite_store().facts
        made = self._made
        if made is None or made.source is not live or len(live) - made.views.seen > TAIL:
            room = await self.live.current()
            again = made is not None and made.version == room.version
            await self.derived(room, again=again)
            made = self._made
            live = self.service.sqlite_store().facts
        assert made is not None
        if made.source is not live or len(live) < made.views.seen:  # pragma: no cover
            return [f for f in live if f.facts.key == key]  # memory rebuilt meanwhile: rare
        tail = [f for f in live[made.views.seen :] if f.facts.key == key]
        return made.views.by_key.get(key, []) + tail

    def part(self, room: Room, key: tuple[str, ...], render: Callable[[], str]) -> str:
        """A fragment of the page (device table, conflict queue) rendered once per room
        version and ``key`` (query, language, admin or not): every open page fetches it
        after each change, and they share one rendering."""
        if room.version == 0:  # provisional: made afresh for each request
            return render()
        epoch, version, cache = self._parts
        if (epoch, version) != (room.epoch, room.version):
            cache = {}
            self._parts = (room.epoch, room.version, cache)
        html = cache.get(key)
        if html is None:
            if len(cache) >= PARTS_KEPT:
                cache.clear()
            html = cache[key] = render()
        return html


@dataclass(frozen=True, slots=True)
class _Made:
    """Derived views, the room version they were asked for, and the store's live list of
    facts they were made from (``views.seen`` of its records; the list is only appended to,
    or replaced whole after a failed commit)."""

    version: int
    views: views.Derived
    source: Sequence[Facts]


TAIL = 2000  # records stored since the views were made that a conflict page may walk


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _peer(request: web.Request) -> str | None:
    """The peer address from the transport (never from a header)."""
    t = request.transport
    peer = t.get_extra_info("peername") if t is not None else None
    return str(peer[0]) if peer else None


def _lang(request: web.Request) -> str:
    return "en" if request.query.get("lang") == "en" else "id"


def _ctx(request: web.Request, room: Room, **kw: Any) -> dict[str, Any]:
    c = _console(request)
    lang = _lang(request)
    why = locality.local_view(_peer(request), request.host)

    def url(path: str, **params: Any) -> str:
        p = {k: v for k, v in params.items() if v not in (None, "")}
        if lang == "en":
            p["lang"] = "en"
        return path + ("?" + urlencode(p) if p else "")

    def toggle() -> str:
        q = dict(request.query)
        if lang == "en":
            q.pop("lang", None)
        else:
            q["lang"] = "en"
        return request.path + ("?" + urlencode(q) if q else "")

    s = room.status
    return {
        "w": i18n.words(lang),
        "script_words": i18n.script_words(lang),
        "t": lambda key, **k: i18n.t(lang, key, **k),
        "dur": lambda sec: i18n.duration(lang, sec),
        "lang": lang,
        "url": url,
        "toggle": toggle(),
        "path": request.path,
        "s": s,
        "room": room,
        "counts": room.wire["counts"],
        "count_keys": COUNT_KEYS,
        "admin": why is None,
        "why": why,
        "token": c.tokens.issue() if why is None else "",
        "port": _port(request),
        "now": s["now"],
        **kw,
    }


def _port(request: web.Request) -> int:
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sock[1]) if sock else 0


def _render(request: web.Request, template: str, ctx: dict[str, Any]) -> web.Response:
    return _html(_console(request).env.get_template(template).render(**ctx))


def _part(
    request: web.Request, room: Room, template: str, what: Callable[[], dict[str, Any]]
) -> web.Response:
    """A fragment, shared by every page asking the same of this room version (``what``:
    the template's own values, computed only when it is rendered)."""
    c = _console(request)
    admin = locality.local_view(_peer(request), request.host) is None
    key = (template, request.query_string, _lang(request), "admin" if admin else "")

    def render() -> str:
        return c.env.get_template(template).render(**_ctx(request, room, **what()))

    return _html(c.part(room, key, render))


def _html(html: str) -> web.Response:
    resp = web.Response(text=html, content_type="text/html")
    resp.headers["Content-Security-Policy"] = _CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


# -- pages ------------------------------------------------------------------------------------


async def room_page(request: web.Request) -> web.Response:
    c = _console(request)
    room = await c.live.current()
    q = request.query
    devs = views.devices(room.status, q.get("state", ""), q.get("q", ""), _int(q.get("page")))
    cons = views.page_of(room.status["conflicts"], _int(q.get("cpage")))
    ctx = _ctx(request, room, devices=devs, conflicts=cons, lan=lan(request),
               state_filter=q.get("state", ""), q=q.get("q", ""))  # fmt: skip
    return _render(request, "room.html", ctx)


async def part_devices(request: web.Request) -> web.Response:
    """The device table alone, for the page's live refresh."""
    c = _console(request)
    room = await c.live.current(fresh=False)  # the version the page's event announced
    q = request.query
    return _part(request, room, "_devices.html", lambda: {
        "devices": views.devices(room.status, q.get("state", ""), q.get("q", ""),
                                 _int(q.get("page"))),
        "state_filter": q.get("state", ""), "q": q.get("q", ""),
    })  # fmt: skip


async def part_conflicts(request: web.Request) -> web.Response:
    c = _console(request)
    room = await c.live.current(fresh=False)
    cpage = _int(request.query.get("cpage"))
    return _part(request, room, "_conflicts.html",
                 lambda: {"conflicts": views.page_of(room.status["conflicts"], cpage)})  # fmt: skip


async def state_json(request: web.Request) -> web.Response:
    """The shared room for polling (the fallback when event streams do not work)."""
    room = await _console(request).live.current(fresh=False)  # the ticker keeps it fresh
    return web.json_response(room.wire, headers={"Cache-Control": "no-store"})


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the shared room each time it changes (one derivation for all)."""
    live = _console(request).live
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-store"})  # fmt: skip
    await resp.prepare(request)
    live.viewers += 1
    try:
        room = await live.current()  # a stream opened, as a page is
        await resp.write(room.event)
        after = room.version
        while not live.closed:
            nxt = await live.changed(after, EVENT_KEEPALIVE_S)
            if live.closed:
                break
            if nxt is None:
                await resp.write(b": keep-alive\n\n")
                continue
            after = nxt.version
            await resp.write(nxt.event)
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        live.viewers -= 1
    return resp


async def conflict_page(request: web.Request) -> web.Response:
    c = _console(request)
    room = await c.live.current()
    q = request.query
    key = (q.get("e", ""), q.get("f", ""), q.get("t", ""))
    if c.coordinator is None:
        raise NotFound("this hub has no data folder for the coordinator station")
    status, readings = await c.coordinator.readings(key)
    rows = views.sections(key[1], views.differing([r.body for r in readings]), _lang(request))
    scans = [await _scan_pages(c, [str(h) for h in r.body.get("scans") or ()])  # type: ignore[attr-defined]
             for r in readings]  # fmt: skip
    ctx = _ctx(request, room, key=key, status=status, readings=readings, sections=rows,
               differ_cells=[(x.id, c) for x in rows for c in x.cells if c.differs],
               scans=scans, done=q.get("done"))  # fmt: skip
    return _render(request, "conflict.html", ctx)


async def flags_page(request: web.Request) -> web.Response:
    c = _console(request)
    room = await c.live.current()
    d = await c.derived(room)
    rule = request.query.get("rule", "")
    rows = [x for x in d.flagged if not rule or rule in x.flags]
    page = views.page_of(rows, _int(request.query.get("page")))
    notes = await _notes(c, page.rows)
    col = 2 if _lang(request) == "id" else 1
    rules = [(r, d.by_rule.get(r, 0) or room.status["flags"].get(r, 0), RULES[r][col])
             for r in RULES]  # fmt: skip
    ctx = _ctx(request, room, rules=rules, rule=rule, page=page, notes=notes,
               scan_states=_scan_states(c, page.rows),
               explain={r: RULES[r][col] for r in RULES})  # fmt: skip
    return _render(request, "flags.html", ctx)


async def entry_page(request: web.Request) -> web.Response:
    """One flagged entry: its flags explained, its numbers under the paper's sections with the
    cells the flags point at marked, and its scanned pages beside them ("pindaian menunggu"
    for a page not at the hub yet). ``rule`` and the position let the coordinator walk the
    filtered list entry by entry (j/k)."""
    from hub.protocol import entry, record, rules

    c = _console(request)
    room = await c.live.current()
    d = await c.derived(room)
    q = request.query
    rule = q.get("rule", "")
    rows = [x for x in d.flagged if rule in x.flags] if rule else d.flagged
    found = views.neighbours(rows, q.get("h", ""))
    if found is None:
        raise NotFound("no flagged live entry with this hash (the list may have changed)")
    i, x = found
    store = c.service.sqlite_store()
    dev = store.find_device(x.device)
    raw = await store.record_raw(dev.public, x.seq) if dev is not None else None
    if dev is None or raw is None:
        raise NotFound(f"entry {x.device}#{x.seq} is not in this hub's store")
    body = entry.decode_body(record.decode(raw).body)
    lang = _lang(request)
    found_flags = [f.to_dict() for f in rules.check(body, c.service.master)]
    marks = views.flag_marks(found_flags)
    numbers = views.sections(x.form, views.differing([body]), lang)
    cell_rules = {
        cell.path: views.marked(cell.path, marks) for sec in numbers for cell in sec.cells
    }
    ctx = _ctx(request, room, x=x, body=body, device=dev, rule=rule, sections=numbers,
               cell_rules=cell_rules, found_flags=found_flags,
               explain={r: RULES[r][2 if lang == "id" else 1] for r in RULES},
               scans=await _scan_pages(c, list(x.scans)), pos=i + 1, total=len(rows),
               prev=rows[i - 1] if i > 0 else None,
               next=rows[i + 1] if i + 1 < len(rows) else None,
               list_page=i // views.PAGE + 1)  # fmt: skip
    return _render(request, "entry.html", ctx)


async def _scan_pages(c: Console, hashes: list[str]) -> list[dict[str, str]]:
    """Each page of an entry: ``held`` with its media type (the hub serves it at
    /v1/blobs/{sha256}), or ``pending`` (not at the hub yet: numbers are never held back)."""
    scans = c.service.scans
    if scans is None:
        return [{"hash": h, "state": "pending", "media": ""} for h in hashes]
    out = []
    for h in hashes:
        found = await scans.held_blob(h) if h in scans.held else None
        media = MEDIA_TYPES.get(found.kind, "") if found is not None else ""
        out.append({"hash": h, "state": "held" if media else "pending", "media": media})
    return out


def _scan_states(c: Console, rows: list[views.FlaggedEntry]) -> dict[str, str]:
    """Per listed entry: ``held`` (every page at the hub), ``pending`` or ``none``."""
    held = c.service.scans.held if c.service.scans is not None else {}
    return {x.hash: "none" if not x.scans else "held" if all(h in held for h in x.scans)
            else "pending" for x in rows}  # fmt: skip


async def _notes(c: Console, rows: list[views.FlaggedEntry]) -> dict[str, str]:
    """The operator's note of each listed entry (a flagged entry saved with a note was
    confirmed as on the paper): one page of rows, read from the store."""
    from hub.protocol import entry, record

    store = c.service.sqlite_store()
    out: dict[str, str] = {}
    for x in rows:
        d = store.find_device(x.device)
        raw = await store.record_raw(d.public, x.seq) if d is not None else None
        if raw is not None:
            note = entry.decode_body(record.decode(raw).body).get("note") or ""
            out[x.hash] = str(note)
    return out


async def progress_page(request: web.Request) -> web.Response:
    c = _console(request)
    room = await c.live.current()
    master = c.service.master
    q = request.query
    prog = None
    d = await c.derived(room)
    form = q.get("form") or (d.forms[0] if d.forms else "PPWP")
    if master is not None:
        prog = await asyncio.to_thread(views.progress, master, d, form, q.get("q", ""))
    ctx = _ctx(request, room, prog=prog, forms=d.forms or ["PPWP"], form=form,
               q=q.get("q", ""), printable=q.get("print") == "1")  # fmt: skip
    return _render(request, "progress.html", ctx)


async def forks_page(request: web.Request) -> web.Response:
    c = _console(request)
    room = await c.live.current()
    after = _int(request.query.get("after"), 0)
    rows = await c.service.forks(views.PAGE, after)
    for f in rows:
        f["first"] = views.readable_record(f["held"])
        f["second"] = views.readable_record(f["evidence"])
        both = [x for x in (f["first"], f["second"]) if isinstance(x, dict)]
        rows_ = views.differing(both) if len(both) == 2 else []
        form = str(both[0].get("form", "")) if both else ""
        f["sections"] = views.sections(form, rows_, _lang(request))
    ctx = _ctx(request, room, forks=rows, after=after,
               stopped=[d for d in room.status["device_list"] if d["forked"]])  # fmt: skip
    return _render(request, "forks.html", ctx)


async def exports_page(request: web.Request) -> web.Response:
    room = await _console(request).live.current()
    return _render(request, "exports.html", _ctx(request, room))


async def export_file(request: web.Request) -> web.StreamResponse:
    """``c1hub export`` as a download, written on a worker thread from a read-only
    connection (the hub keeps ingesting), then streamed."""
    from hub import export as ex

    c = _console(request)
    fmt = request.match_info["fmt"]
    if c.data_dir is None:
        raise NotFound("this hub has no data folder to export from")
    data_dir, svc = c.data_dir, c.service

    def write(f: IO[bytes]) -> int:
        if fmt == "c1b":
            return ex.export_bundle(data_dir, svc.ident, svc.name, f, clock.now_s())
        import io

        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        n = (ex.export_csv if fmt == "csv" else ex.export_jsonl)(data_dir, text)
        text.flush()
        text.detach()
        return n

    with tempfile.TemporaryFile() as f:
        await asyncio.to_thread(write, f)
        size = f.seek(0, 2)
        f.seek(0)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        ctype = {"csv": "text/csv", "jsonl": "application/x-ndjson"}.get(
            fmt, "application/octet-stream"
        )
        resp = web.StreamResponse(headers={
            "Content-Type": ctype, "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="c1hub-{stamp}.{fmt}"',
        })  # fmt: skip
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(f.read, 256 * 1024):
            await resp.write(chunk)
        await resp.write_eof()
        return resp


# -- admin actions ----------------------------------------------------------------------------


def _check_admin(request: web.Request) -> None:
    c = _console(request)
    why = locality.check_admin(
        _peer(request), request.host, request.headers.get("Origin"),
        request.headers.get(TOKEN_HEADER), c.tokens,
    )  # fmt: skip
    if why is not None:
        log.warning("console: refused %s from %s (%s)", request.path, _peer(request), why)
        raise Unauthorized(
            f"admin actions only from the hub machine's own console ({why})",
            code="admin_local_only",
            pesan=f"tindakan admin hanya dari konsol di mesin hub ({why})",
        )


async def device_action(request: web.Request) -> web.Response:
    _check_admin(request)
    c = _console(request)
    device_id = request.match_info["id"]
    if request.match_info["action"] == "approve":
        # the role the page repeated in its question
        role = (await c.service.device(device_id)).role
        info = await c.service.approve(device_id, role)
    else:
        info = await c.service.revoke(device_id)
    await c.live.refresh()
    return web.json_response({"device": info.to_dict()})


async def resolve(request: web.Request) -> web.Response:
    _check_admin(request)
    c = _console(request)
    if c.coordinator is None:
        raise NotFound("this hub has no data folder for the coordinator station")
    form = await request.post()
    try:
        key = (str(form["e"]), str(form["f"]), str(form["t"]))
        chosen = bytes.fromhex(str(form["chosen"]))
    except (KeyError, ValueError):
        raise CodecError("resolve needs e, f, t and chosen (hex)") from None
    made = await c.coordinator.resolve(key, chosen)
    await c.live.refresh()
    return web.json_response({"made": [h.hex() for h in made]})


# -- helpers ----------------------------------------------------------------------------------


def _pretty(obj: Any) -> str:
    return obj if isinstance(obj, str) else json.dumps(obj, indent=1, ensure_ascii=False)


def _fmt_time(at: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(int(at)))
    except (TypeError, ValueError):
        return "—"


def _int(text: str | None, default: int = 1) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def lan(request: web.Request) -> dict[str, Any]:
    """Where laptops can reach this hub: its LAN addresses when it listens on all of them,
    else the one address it listens on (and whether that is loopback only)."""
    c = _console(request)
    port = _port(request)
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    host = c.listen_host if c.listen_host is not None else (str(sock[0]) if sock else "")
    if host in ("0.0.0.0", "::", ""):
        addrs = netif.lan_addresses()
    elif is_loopback(host):
        addrs = []
    else:
        addrs = [host]
    urls = [f"http://{a}:{port}" for a in addrs]
    return {"host": host, "urls": urls,
            "line": " / ".join(f"{a} port {port}" for a in addrs)}  # fmt: skip


async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in ("console.js", "console.css"):
        raise NotFound("no such file")
    return web.FileResponse(HERE / "static" / name, headers={"Cache-Control": "no-cache"})


def setup(
    app: web.Application,
    service: HubService,
    *,
    data_dir: Path | None = None,
    listen_host: str | None = None,
) -> Console:
    """Add the console's routes to the hub's app; its ticker runs while the app runs."""
    console = Console(service, data_dir, listen_host)
    app[CONSOLE] = console

    async def on_startup(_app: web.Application) -> None:
        await templates.precompile(console.env)
        console.live.start()

    async def on_shutdown(_app: web.Application) -> None:
        await console.live.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    r = app.router
    r.add_get("/", room_page)
    r.add_get("/console/state.json", state_json)
    r.add_get("/console/events", events)
    r.add_get("/console/part/devices", part_devices)
    r.add_get("/console/part/conflicts", part_conflicts)
    r.add_get("/console/conflict", conflict_page)
    r.add_get("/console/flags", flags_page)
    r.add_get("/console/entry", entry_page)
    r.add_get("/console/progress", progress_page)
    r.add_get("/console/forks", forks_page)
    r.add_get("/console/exports", exports_page)
    r.add_get("/console/export/{fmt:csv|jsonl|c1b}", export_file)
    r.add_get("/console/static/{name}", static)
    r.add_post("/console/devices/{id}/{action:approve|revoke}", device_action)
    r.add_post("/console/resolve", resolve)
    return console
