"""The station's HTTP side: one page, its assets, and a JSON API under ``/api/``.

Bound to 127.0.0.1 only (``command.py``). Every request passes ``guard_middleware`` first:

- **Host** must be ``127.0.0.1:PORT`` or ``localhost:PORT``: a page on another name that
  resolves to 127.0.0.1 (DNS rebinding) is refused (421) before anything is read.
- Every ``/api/`` request, and every ``/scan/`` read, carries this run's **session token**
  (header ``X-C1-Token``; ``?t=`` for images), which only the station's own page holds.
- Every request that changes anything (not GET/HEAD) also needs an **Origin** of the station
  itself (``http://127.0.0.1:PORT`` or ``http://localhost:PORT``).
- No CORS header is ever sent; responses say ``Cross-Origin-Resource-Policy: same-origin``,
  ``X-Frame-Options: DENY`` and a strict Content-Security-Policy (scripts only from
  ``/static/``).

Errors leave through ``error_middleware`` as ``{"error": {"code", "reason", "reason_id",
"field"}}`` (``field`` names the cell or control to blame). Handlers decode, call the
``Station``, encode. See docs/ui.md for the API and the page's test hooks.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from client.errors import ClientError
from hub.shared import templates
from hub.shared.blobs import MEDIA_TYPES, BlobStore
from hub.shared.errors import BlobError

from . import i18n
from .errors import Forbidden, UiError
from .station import Station

log = logging.getLogger(__name__)

STATION: web.AppKey[Station] = web.AppKey("station")
GUARD: web.AppKey[Guard] = web.AppKey("guard")
TOKEN_HEADER = "X-C1-Token"
UPLOAD_CHUNK = 64 * 1024
_SAFE = ("GET", "HEAD")
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; frame-src 'self'; object-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Guard:
    """What a request must show: the Host names, the Origins and the session token."""

    def __init__(self, port: int, token: str | None = None):
        self.token = token or secrets.token_urlsafe(24)
        self.set_port(port)

    def set_port(self, port: int) -> None:
        self.port = port
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if port == 80:
            self.hosts |= {"127.0.0.1", "localhost"}
        self.origins = {f"http://{h}" for h in self.hosts}

    def check(self, request: web.Request) -> None:
        host = request.headers.get("Host", "")
        if host.lower() not in self.hosts:
            raise Forbidden(
                f"this station answers only at 127.0.0.1:{self.port}, not {host!r}",
                f"stasiun ini hanya menjawab di 127.0.0.1:{self.port}, bukan {host!r}",
                code="bad_host",
                status=421,
            )
        path = request.path
        if request.method not in _SAFE:
            origin = request.headers.get("Origin")
            if origin not in self.origins:
                raise Forbidden(
                    f"refused: a request from {origin or 'no origin'}, not from this station",
                    f"ditolak: permintaan dari {origin or 'asal tak dikenal'}, bukan dari stasiun",
                    code="bad_origin",
                )
        if path.startswith(("/api/", "/scan/")):
            got = request.headers.get(TOKEN_HEADER) or request.query.get("t", "")
            if not hmac.compare_digest(got.encode(), self.token.encode()):
                raise Forbidden(
                    "refused: the session token is missing or old (reload the page)",
                    "ditolak: token sesi tidak ada atau kedaluwarsa (muat ulang halaman)",
                    code="bad_token",
                )


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        request.app[GUARD].check(request)
    except UiError as exc:
        log.warning("refused %s %s: %s", request.method, request.path, exc.message)
        return _error(exc.to_dict(), exc.status)
    resp = await handler(request)
    h = resp.headers
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "no-referrer"
    h.setdefault("Content-Security-Policy", _CSP)
    h.setdefault("Cache-Control", "no-store")
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UiError as exc:
        body = {**exc.to_dict(), **exc.extra}
        return _error(body, exc.status)
    except BlobError as exc:
        status = 413 if exc.code == "too_large" else 404 if exc.code == "not_found" else 400
        return _error({**exc.to_dict(), "field": "scans"}, status)
    except ClientError as exc:
        log.warning("%s %s: %s", request.method, request.path, exc.message)
        return _error(exc.to_dict(), 500 if exc.code.startswith("store") else 400)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error({"code": "http_error", "reason": exc.reason, "reason_id": exc.reason},
                      exc.status)  # fmt: skip


def _error(err: dict[str, Any], status: int) -> web.Response:
    return web.json_response({"error": err}, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _st(request: web.Request) -> Station:
    return request.app[STATION]


def _json(obj: Any) -> web.Response:
    return web.json_response(obj, dumps=_dumps)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise UiError("send JSON", "kirim JSON", code="bad_request", status=415)
    try:
        obj = await request.json()
    except ValueError:
        raise UiError("not JSON", "bukan JSON", code="bad_request") from None
    if not isinstance(obj, dict):
        raise UiError("send a JSON object", "kirim objek JSON", code="bad_request")
    return obj


def _int(v: Any, name: str) -> int:
    if type(v) is not int or v < 0:
        raise UiError(f"{name} must be a whole number", f"{name} harus bilangan bulat",
                      code="bad_request")  # fmt: skip
    return v


# -- the page ---------------------------------------------------------------------------------


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("client.ui", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


async def page(request: web.Request) -> web.Response:
    st = _st(request)
    words = i18n.words(st.lang)
    html = TEMPLATES.get_template("app.html").render(
        lang=st.lang,
        w=words,
        token=request.app[GUARD].token,
        words_json=json.dumps(words, ensure_ascii=False).replace("</", "<\\/"),
        forms=i18n.FORM_KEYS,
    )
    return web.Response(text=html, content_type="text/html")


def _static_dir() -> Path:
    return Path(str(resources.files("client.ui") / "static"))


# -- API ----------------------------------------------------------------------------------------


async def api_state(request: web.Request) -> web.Response:
    return _json(await _st(request).state())


async def api_operator(request: web.Request) -> web.Response:
    b = await _body(request)
    return _json(await _st(request).sign_in(str(b.get("name", ""))))


async def api_signout(request: web.Request) -> web.Response:
    await _st(request).sign_out()
    return _json({"ok": True})


async def api_prefs(request: web.Request) -> web.Response:
    b = await _body(request)
    st = _st(request)
    if "lang" in b:
        await st.set_lang(str(b["lang"]))
    for k in ("auto_advance",):
        if k in b:
            await st.set_pref(k, "1" if b[k] else "0")
    return _json(await st.state())


async def api_tps(request: web.Request) -> web.Response:
    st = _st(request)
    q = request.query.get("q", "").strip()
    out: dict[str, Any] = {"q": q, "matches": st.places.search(q)}
    if len(q) == 13 and q.isdigit():
        out["info"] = st.places.info(q)
        form = request.query.get("form", "")
        out["existing"] = await st.entries.existing(form, q) if form else []
    return _json(out)


async def api_new_draft(request: web.Request) -> web.Response:
    b = await _body(request)
    d = await _st(request).new_draft(
        str(b.get("form", "")), str(b.get("tps", "")), force=bool(b.get("force"))
    )
    return _json(d)


async def api_draft(request: web.Request) -> web.Response:
    return _json(await _st(request).open_draft(request.match_info["id"]))


async def api_check(request: web.Request) -> web.Response:
    b = await _body(request)
    r = await _st(request).check(
        request.match_info["id"],
        rev=_int(b.get("rev"), "rev"),
        cells=b.get("cells"),
        rows=b.get("rows"),
        keystrokes=_int(b.get("keystrokes", 0), "keystrokes"),
        refused=_int(b.get("refused", 0), "refused"),
    )
    return _json(r)


async def api_save(request: web.Request) -> web.Response:
    b = await _body(request)
    note = b.get("note", "")
    if not isinstance(note, str):
        raise UiError("note must be text", "catatan harus teks", field="note")
    r = await _st(request).save(
        request.match_info["id"],
        rev=_int(b.get("rev"), "rev"),
        cells=b.get("cells"),
        rows=b.get("rows"),
        confirm=bool(b.get("confirm")),
        note=note,
        keystrokes=_int(b.get("keystrokes", 0), "keystrokes"),
        refused=_int(b.get("refused", 0), "refused"),
    )
    return _json(r)


async def api_discard(request: web.Request) -> web.Response:
    await _st(request).discard(request.match_info["id"])
    return _json({"ok": True})


async def api_draft_scans(request: web.Request) -> web.Response:
    b = await _body(request)
    return _json(await _st(request).set_scans(request.match_info["id"], b.get("scans")))


async def api_upload(request: web.Request) -> web.Response:
    st = _st(request)
    if request.content_length is not None and request.content_length > st.blobs.max_size:
        raise BlobError(
            "too_large",
            f"the page is over the limit of {st.blobs.max_size // 2**20} MiB per page",
            f"halaman melebihi batas {st.blobs.max_size // 2**20} MiB per halaman",
        )

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(UPLOAD_CHUNK):
            yield chunk

    return _json(await st.scans.upload(chunks()))


async def scan(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    digest = request.match_info["hash"]
    info = st.blobs.info(digest) if st.blobs.has(digest) else None
    if info is None:
        raise BlobError("not_found", "no such page here", "halaman tidak ada di sini")
    resp = web.StreamResponse(
        headers={
            "Content-Type": MEDIA_TYPES[info.kind],
            "Content-Length": str(info.size),
            "Cache-Control": "private, max-age=31536000, immutable",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "img-src 'self'; object-src 'self'; frame-ancestors 'self'",
        }
    )
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    await resp.prepare(request)
    for chunk in _iter_blob(st.blobs, digest):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


def _iter_blob(blobs: BlobStore, digest: str) -> Any:
    return blobs.iter_chunks(digest)


async def api_inbox(request: web.Request) -> web.Response:
    return _json({"files": await _st(request).scans.inbox()})


async def api_inbox_take(request: web.Request) -> web.Response:
    b = await _body(request)
    return _json(await _st(request).scans.take_inbox(str(b.get("name", ""))))


async def api_entries(request: web.Request) -> web.Response:
    return _json(await _st(request).entries.listing(request.query.get("q", "")))


async def api_entry(request: web.Request) -> web.Response:
    return _json(await _st(request).entry(_seq(request)))


async def api_correct(request: web.Request) -> web.Response:
    return _json(await _st(request).correct(_seq(request)))


def _seq(request: web.Request) -> int:
    try:
        return int(request.match_info["seq"])
    except ValueError:
        raise UiError("bad entry number", "nomor entri tidak sah", code="bad_request") from None


async def api_work(request: web.Request) -> web.Response:
    return _json(await _st(request).double_entry.work(request.query.get("tps", "")))


async def api_work_start(request: web.Request) -> web.Response:
    b = await _body(request)
    d = await _st(request).start_work(
        str(b.get("form", "")), str(b.get("tps", "")), str(b.get("need", ""))
    )
    return _json(d)


async def api_work_status(request: web.Request) -> web.Response:
    q = request.query
    seq = int(q["seq"]) if q.get("seq", "").isdigit() else None
    return _json(
        await _st(request).double_entry.key_status(q.get("form", ""), q.get("tps", ""), seq)
    )


async def api_connection(request: web.Request) -> web.Response:
    return _json(await _st(request).connection.panel())


async def api_stats(request: web.Request) -> web.Response:
    return _json(await _st(request).stats())


async def _favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _not_found(request: web.Request) -> web.Response:
    raise UiError("no such page", "halaman tidak ada", code="not_found", status=404)


def make_app(station: Station, guard: Guard) -> web.Application:
    app = web.Application(
        middlewares=[guard_middleware, error_middleware],
        client_max_size=1024 * 1024,  # JSON bodies; scans stream past this limit
    )
    app[STATION] = station
    app[GUARD] = guard

    async def compile_page(_app: web.Application) -> None:
        await templates.precompile(TEMPLATES)

    app.on_startup.append(compile_page)
    r = app.router
    r.add_get("/", page)
    r.add_static("/static/", _static_dir(), append_version=False)
    r.add_get("/scan/{hash}", scan)
    r.add_get("/api/state", api_state)
    r.add_post("/api/operator", api_operator)
    r.add_post("/api/signout", api_signout)
    r.add_post("/api/prefs", api_prefs)
    r.add_get("/api/tps", api_tps)
    r.add_post("/api/drafts", api_new_draft)
    r.add_get("/api/drafts/{id}", api_draft)
    r.add_post("/api/drafts/{id}/check", api_check)
    r.add_post("/api/drafts/{id}/save", api_save)
    r.add_post("/api/drafts/{id}/discard", api_discard)
    r.add_post("/api/drafts/{id}/scans", api_draft_scans)
    r.add_post("/api/scans", api_upload)
    r.add_get("/api/inbox", api_inbox)
    r.add_post("/api/inbox/take", api_inbox_take)
    r.add_get("/api/entries", api_entries)
    r.add_get("/api/entries/{seq}", api_entry)
    r.add_post("/api/entries/{seq}/correct", api_correct)
    r.add_get("/api/work", api_work)
    r.add_post("/api/work/start", api_work_start)
    r.add_get("/api/work/status", api_work_status)
    r.add_get("/api/connection", api_connection)
    r.add_get("/api/stats", api_stats)
    r.add_get("/favicon.ico", _favicon)
    r.add_route("*", "/{tail:.*}", _not_found)
    return app
