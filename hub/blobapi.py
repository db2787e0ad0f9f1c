"""The scan endpoints of the hub's HTTP API (docs/protocol.md "Scans"): thin handlers over
``hub.scans.HubScans``; the decisions are ``hub.protocol.blobsync``'s.

- ``POST /v1/blobs/lacking``  msgpack ``{"hashes": [...]}`` -> ``{"blobs": [[h, state, off]]}``
- ``PUT /v1/blobs/{sha256}``  one upload chunk, ``Content-Range: bytes START-END/TOTAL``
- ``GET``/``HEAD /v1/blobs/{sha256}``  a held scan: its media type, ``ETag`` = the hash,
  ``Range: bytes=A-B`` answered with 206
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import hdrs, web

from hub.errors import NotFound
from hub.protocol import blobsync, codec
from hub.protocol.errors import CodecError
from hub.scans import HubScans
from hub.shared.blobs import MEDIA_TYPES
from hub.shared.errors import SharedError

log = logging.getLogger(__name__)

MSGPACK = "application/msgpack"
IMMUTABLE = "public, max-age=31536000, immutable"


SCANS_KEY: web.AppKey[HubScans | None] = web.AppKey("scans", HubScans)


def _scans(request: web.Request) -> HubScans:
    scans = request.app[SCANS_KEY]
    if scans is None:
        raise NotFound("this node keeps no scans")
    return scans


def _digest(request: web.Request) -> str:
    digest = request.match_info["sha256"]
    if not blobsync.is_hash(digest):
        raise NotFound("a scan is named by its SHA-256: 64 lowercase hex characters")
    return digest


async def lacking(request: web.Request) -> web.Response:
    if request.content_type != MSGPACK:
        raise CodecError(f"send the body as {MSGPACK}, not {request.content_type or 'nothing'}")
    body = await request.read()
    hashes = blobsync.parse_ask(codec.unpack(body, max_size=len(body) + 1, canonical=False))
    return _pack(await _scans(request).lacking(hashes))


async def put_chunk(request: web.Request) -> web.Response:
    scans, digest = _scans(request), _digest(request)
    start, total = blobsync.content_range(
        request.headers.get("Content-Range"), request.content_length
    )
    if request.content_length is None:
        raise CodecError("an upload chunk needs Content-Length", code="bad_range")
    if request.headers.get(hdrs.CONTENT_ENCODING, "identity").lower() != "identity":
        # a decoded body could be any size: the limits count the bytes on the wire
        raise CodecError(
            "send an upload chunk as it is, without Content-Encoding (a scanned page is "
            "compressed already; Content-Range counts the scan's own bytes)"
        )
    pieces = await _body_pieces(request, request.content_length)
    return _pack(await scans.put_chunk(digest, start, total, pieces))


async def _body_pieces(request: web.Request, length: int) -> list[bytes]:
    """The body of ``length`` bytes (no Content-Encoding: what comes is what the limits
    counted) as aiohttp received it, piece by piece: the pieces are hashed and written as
    they are, never copied into one buffer first (``request.read`` copies a chunk three times
    over on the event loop)."""
    if length > request.client_max_size:
        raise web.HTTPRequestEntityTooLarge(max_size=request.client_max_size, actual_size=length)
    pieces: list[bytes] = []
    got = 0
    while True:
        data, chunk_end = await request.content.readchunk()
        if not data and not chunk_end:  # the end of the body
            break
        pieces.append(data)
        got += len(data)
    if got != length:  # pragma: no cover - aiohttp reads Content-Length bytes, or fails
        raise CodecError("the chunk is not as long as its Content-Length", code="bad_range")
    return pieces


async def get_blob(request: web.Request) -> web.StreamResponse:
    scans, digest = _scans(request), _digest(request)
    found = await scans.held_blob(digest)
    if found is None:
        raise NotFound(f"no scan {digest[:12]}… here (yet)")
    size, media = found.size, MEDIA_TYPES[found.kind]
    etag = f'"{digest}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    rng = blobsync.byte_range(request.headers.get("Range"), size)
    start, end = rng if rng is not None else (0, size - 1)
    resp = web.StreamResponse(status=206 if rng is not None else 200, headers=headers)
    resp.content_type = media
    resp.content_length = end - start + 1
    if rng is not None:
        resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD":
        await resp.prepare(request)
        return resp
    chunks = scans.read(digest, start, end)
    try:
        try:  # the first bytes before the headers: a blob the store lost is a 404, not a cut body
            first = await anext(chunks, b"")
        except SharedError as exc:
            if getattr(exc, "code", "") != "not_found":
                raise
            log.error("scan %s is held in the book but not in the scan store", digest)
            raise NotFound(f"no scan {digest[:12]}… here (yet)") from None
        await resp.prepare(request)
        await resp.write(first)
        async for chunk in chunks:
            await resp.write(chunk)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    await resp.write_eof()
    return resp


def _pack(obj: Any) -> web.Response:
    return web.Response(body=codec.pack(obj), content_type=MSGPACK)


def add_routes(app: web.Application, scans: HubScans | None, expect_handler: Any) -> None:
    app[SCANS_KEY] = scans
    app.router.add_post("/v1/blobs/lacking", lacking, expect_handler=expect_handler)
    app.router.add_put("/v1/blobs/{sha256}", put_chunk, expect_handler=expect_handler)
    app.router.add_get("/v1/blobs/{sha256}", get_blob)
