"""The calls a laptop makes to one hub, over ``hub.shared.rpc.Peer``.

``Peer`` does the msgpack-over-HTTP call (timeouts, error bodies, Retry-After, the hello
proof); this module decodes the answers into the sender's values (``hub.protocol.sender``) and
turns every failure into a bilingual ``SyncError`` with a stable code:

=================  ====================================================================
``unreachable``    no connection, reset, timeout
``not_a_hub``      the answer is not a c1hub reply (a web page, a captive portal)
``wrong_hub``      the address names a hub key it cannot prove it holds (an impostor)
``busy``           HTTP 429/502/503/504 with no c1hub reason; ``retry_after`` if it said
``too_large``      HTTP 413 (``TooBigError``): send fewer records at a time
the hub's code     any other refusal (``unavailable``, ``bad_entry``, ...), with its reason
=================  ====================================================================
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp

from hub.protocol import codec, sender
from hub.protocol.text import escape
from hub.shared import errors as shared
from hub.shared.rpc import Hello, Peer

from .errors import SyncError, TooBigError


class HubLink:
    """Calls to the hub at ``url``; every call has a timeout (``rpc.CALL_TIMEOUT``)."""

    def __init__(self, session: aiohttp.ClientSession, url: str):
        self.peer = Peer(session, url)
        self.url = self.peer.url

    async def hello(self, timeout: float | None = None) -> Hello:
        """The hub's hello, once it proved it holds the key it names (a fresh nonce it signs):
        only then may that key be trusted as the pinned hub's. ``timeout``: seconds the hub
        has to answer (a candidate of a sync round gets ``hello_timeout``)."""
        try:
            return await self.peer.hello(timeout=timeout)
        except shared.CallError as exc:
            raise sync_error(self.url, "/v1/hello", exc) from None

    async def enroll(self, raw: bytes) -> dict[str, Any]:
        reply = await self._call("POST", "/v1/enroll", raw)
        return shown(reply) if isinstance(reply, dict) else {}

    async def head(self, origin: bytes) -> sender.HubHead:
        return sender.parse_head(await self._call("GET", f"/v1/heads/{origin.hex()}"))

    async def push(self, records: list[bytes]) -> sender.PushReply:
        reply = sender.parse_push_reply(
            await self._call("POST", "/v1/push", codec.pack({"records": records}))
        )
        return dataclasses.replace(reply, refused=[shown(x) for x in reply.refused])

    async def work(self, query: str) -> dict[str, Any]:
        """The hub's double-entry work list (``GET /v1/work``; docs/protocol.md)."""
        reply = await self._call("GET", f"/v1/work?{query}")
        return reply if isinstance(reply, dict) else {}

    async def blobs_lacking(self, hashes: list[str]) -> Any:
        """``POST /v1/blobs/lacking`` (docs/protocol.md "Scans"): the decoded answer."""
        return await self._call("POST", "/v1/blobs/lacking", codec.pack({"hashes": hashes}))

    async def blob_put(self, digest: str, offset: int, data: bytes, total: int) -> Any:
        """One upload chunk of a scan: the decoded answer."""
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Range": f"bytes {offset}-{offset + len(data) - 1}/{total}"}  # fmt: skip
        return await self._call("PUT", f"/v1/blobs/{digest}", data, headers)

    async def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            return await self.peer.call(method, path, body, headers=headers)
        except shared.CallError as exc:
            raise sync_error(self.url, path, exc) from None


def shown(obj: Any) -> Any:
    """A hub's answer with every text in it escaped (``hub.protocol.text.escape``): the state,
    code and refusal reasons a laptop keeps, prints and logs stay on one line and drive no
    terminal (docs/security.md)."""
    if isinstance(obj, str):
        return escape(obj)
    if isinstance(obj, dict):
        return {shown(k): shown(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [shown(v) for v in obj]
    return obj


def sync_error(url: str, path: str, exc: shared.CallError) -> SyncError:
    """A failed call to the hub at ``url`` as a message an operator can act on."""
    if exc.kind == shared.UNREACHABLE:
        return SyncError(
            f"cannot reach hub at {url}: {exc.reason}",
            f"hub di {url} tidak dapat dihubungi: {exc.reason}",
            code="unreachable",
        )
    if exc.kind == shared.NOT_C1HUB and exc.status is None:
        return SyncError(f"{url} is not a c1hub hub", f"{url} bukan hub c1hub", code="not_a_hub")
    if exc.kind == shared.NOT_C1HUB:
        return SyncError(
            f"{url} answered HTTP {exc.status} with something that is not a c1hub reply; is "
            "this address really a c1hub hub?",
            f"{url} menjawab HTTP {exc.status} yang bukan balasan c1hub; benarkah ini alamat "
            "hub c1hub?",
            code="not_a_hub",
        )
    if exc.kind == shared.IMPOSTOR:
        return SyncError(
            f"{url} claims hub key {exc.node_id} but cannot prove it holds it: an impostor? "
            "Ask the coordinator.",
            f"{url} mengaku sebagai hub {exc.node_id} tetapi tidak dapat membuktikannya: hub "
            "palsu? Tanyakan ke koordinator.",
            code="wrong_hub",
        )
    if exc.kind == shared.BUSY and not exc.reason:
        wait = f"{exc.retry_after:g} s" if exc.retry_after is not None else None
        return SyncError(
            f"hub at {url} is busy (HTTP {exc.status}); trying again "
            + (f"in {wait} as it asked" if wait else "later"),
            f"hub di {url} sedang sibuk (HTTP {exc.status}); dicoba lagi "
            + (f"dalam {wait} sesuai permintaannya" if wait else "nanti"),
            code=exc.code,
            retry_after=exc.retry_after,
        )
    # The hub's own refusal (a busy hub may give its reason too, e.g. `unavailable`).
    shown = exc.code if exc.code not in (shared.REFUSED, shared.BUSY) else exc.status
    reason = exc.reason or f"HTTP {exc.status}"
    cls = TooBigError if exc.kind == shared.TOO_BIG else SyncError
    return cls(
        f"hub refused {path}: {reason} ({shown})",
        f"hub menolak {path}: {reason} ({shown})",
        code=exc.code,
        retry_after=exc.retry_after,
    )
