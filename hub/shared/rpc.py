"""The msgpack-over-HTTP call to another node, used by laptops (to their hub) and by hubs (to
their upstream): one place for timeouts, error bodies, Retry-After and the hello proof.

Every failure is a ``CallError`` whose ``kind`` says what the caller should do: ``unreachable``
and ``busy`` (429/502/503/504, with ``retry_after`` when the peer said) are retried later,
``too_big`` (413, from the node or a proxy before it) asks for smaller batches, ``refused``
carries the peer's own error code and reason, ``not_c1hub`` and ``impostor`` mean the address
is not the node it should be.

Text in a peer's answer (an error's code and reason, the hello's name and role) is escaped
(``hub.protocol.text.escape``) before it goes into a ``CallError`` or a ``Hello``: whatever
prints or logs them shows one line, with no terminal control sequence (finding 8).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from hub.protocol import codec, enroll, identity
from hub.protocol.errors import ProtocolError
from hub.protocol.pacing import parse_retry_after
from hub.protocol.text import escape

from .errors import BUSY, IMPOSTOR, NOT_C1HUB, REFUSED, TOO_BIG, UNREACHABLE, CallError

MSGPACK = "application/msgpack"
CALL_TIMEOUT = 30.0
BUSY_STATUS = (429, 502, 503, 504)


@dataclass(frozen=True, slots=True)
class Hello:
    """A node's hello, after it proved it holds the key it names."""

    public: bytes
    node_id: str
    name: str
    role: str
    version: int
    upstream: bytes | None  # the upstream key this node names, with its signature
    upstream_sig: bytes | None


class Peer:
    """Calls to one node at ``url`` over a caller-owned ``aiohttp.ClientSession``; ``name``
    (say "upstream") goes before the URL in error messages."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        timeout: float = CALL_TIMEOUT,
        name: str = "",
    ):
        self.session = session
        self.url = url.rstrip("/")
        self.timeout = timeout
        # How messages name the peer: "upstream http://..." reads better than the bare URL.
        self.label = f"{name} {self.url}" if name else self.url

    async def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One request; the decoded msgpack answer (``{}`` for an empty body). ``headers``
        are added to (or replace) the msgpack ones, e.g. an upload chunk's Content-Type and
        Content-Range."""
        sent = {"Accept": MSGPACK}
        if body is not None:
            sent["Content-Type"] = MSGPACK
        sent.update(headers or {})
        headers = sent
        try:
            async with self.session.request(
                method,
                self.url + path,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            ) as r:
                data = await r.read()
                status = r.status
                retry_after = parse_retry_after(r.headers.get("Retry-After"))
        except TimeoutError:
            waited = timeout or self.timeout
            raise CallError(
                f"cannot reach {self.label} (no answer within {waited:g} s)",
                kind=UNREACHABLE, reason=f"no answer within {waited:g} s",
            ) from None  # fmt: skip
        except (aiohttp.ClientError, OSError) as exc:
            said = escape(str(exc))
            raise CallError(
                f"cannot reach {self.label} ({type(exc).__name__}: {said})",
                kind=UNREACHABLE, reason=said or type(exc).__name__,
            ) from None  # fmt: skip
        try:
            obj = codec.unpack(data, canonical=False) if data else {}
        except ProtocolError:
            obj = None
        err = obj.get("error") if isinstance(obj, dict) else None
        code = escape(str(err.get("code", ""))) if isinstance(err, dict) else ""
        reason = escape(str(err.get("reason", ""))) if isinstance(err, dict) else ""
        if status in BUSY_STATUS:
            raise CallError(
                f"{self.label} is busy (HTTP {status}{': ' + reason if reason else ''})",
                kind=BUSY, status=status, code=code, reason=reason, retry_after=retry_after,
            )  # fmt: skip
        if status == 413:  # a proxy in front of the node may say so in its own words
            raise CallError(
                f"{self.label} refused {path}: too big ({reason or 'HTTP 413'})",
                kind=TOO_BIG, status=status, code=code or "too_large", reason=reason,
            )  # fmt: skip
        if obj is None:
            raise CallError(
                f"{self.label} answered HTTP {status} with something that is not a c1hub reply",
                kind=NOT_C1HUB, status=status,
            )  # fmt: skip
        if status >= 400:
            raise CallError(
                f"{self.label} refused {path}: {reason or f'HTTP {status}'} ({code or status})",
                kind=REFUSED, status=status, code=code or "refused", reason=reason,
            )  # fmt: skip
        return obj

    async def hello(self, *, timeout: float | None = None) -> Hello:
        """The node's hello, checked: it must sign a fresh nonce with the key it names, so a
        copied hello cannot pass for a pinned node."""
        nonce = os.urandom(enroll.NONCE_LEN)
        h = await self.call("GET", f"/v1/hello?nonce={nonce.hex()}", timeout=timeout)
        public = h.get("public") if isinstance(h, dict) else None
        if type(public) is not bytes or len(public) != 32:
            raise CallError(f"{self.label} is not a c1hub node", kind=NOT_C1HUB)
        try:
            enroll.check_proof(public, nonce, h.get("proof", b""))
        except ProtocolError:
            node_id = identity.fingerprint(public)
            raise CallError(
                f"{self.label} names key {node_id} but cannot prove it holds it",
                kind=IMPOSTOR, node_id=node_id,
            ) from None  # fmt: skip
        up, sig = h.get("upstream"), h.get("upstream_sig")
        return Hello(
            public=public,
            node_id=identity.fingerprint(public),
            name=escape(str(h.get("name", ""))),
            role=escape(str(h.get("role", ""))),
            version=int(h["version"]) if type(h.get("version")) is int else 0,
            upstream=up if type(up) is bytes else None,
            upstream_sig=sig if type(sig) is bytes else None,
        )
