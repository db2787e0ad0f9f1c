"""What the forwarder depends on: the node above (``Upstream``, and ``HttpUpstream``, its HTTP
client) and this hub's store (``UpstreamStore``), each a small ``typing.Protocol``.

``Upstream`` is hello (the upstream proves it holds the key it names), enroll, heads, push and
close. Answers are the decoded msgpack replies; what they mean is decided by
``hub.protocol.outbox``. A call that fails raises ``UpstreamError`` carrying what the outbox
needs to know: the message, Retry-After, and whether the batch was too big. ``HttpUpstream`` is
built on ``hub.shared.rpc.Peer`` (timeouts, error bodies, Retry-After, the hello nonce proof);
tests use an in-memory fake (``tests/hub/fakes.py``).

``UpstreamStore`` lists exactly what the forwarder reads and writes of the hub's store
(``hub.store.HubStore`` has it): the in-memory heads, devices, confirmations and refusals,
record reads, and the upstream bookkeeping writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import aiohttp

from hub.errors import UpstreamError
from hub.protocol import codec
from hub.shared.errors import IMPOSTOR, REFUSED, TOO_BIG, CallError
from hub.shared.rpc import CALL_TIMEOUT, Hello, Peer
from hub.store import Rejection

T = TypeVar("T")


class Upstream(Protocol):
    """The upstream client interface. Every method raises ``UpstreamError`` on failure."""

    @property
    def url(self) -> str: ...

    async def hello(self) -> Hello:
        """The upstream's hello, after it signed a fresh nonce with the key it names."""
        ...

    async def enroll(self, request: bytes) -> Any:
        """Send a signed enrollment request (``enroll.make_request``); the decoded answer."""
        ...

    async def heads(self, origins: Sequence[bytes]) -> Any:
        """What upstream holds of each origin's log: ``{"heads": [...], "receipts": [...]}``."""
        ...

    async def push(self, records: Sequence[bytes], endorsements: Sequence[bytes] | None) -> Any:
        """Push records (with endorsements, unless None); the decoded push reply."""
        ...

    async def close(self) -> None: ...


class BlobUpstream(Upstream, Protocol):
    """An upstream that takes scans too (``HttpUpstream`` does)."""

    async def blobs_lacking(self, hashes: Sequence[str]) -> Any:
        """``POST /v1/blobs/lacking``: the decoded answer."""
        ...

    async def blob_put(self, digest: str, offset: int, data: bytes, total: int) -> Any:
        """One upload chunk (``PUT /v1/blobs/{digest}``): the decoded answer."""
        ...


class Device(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def public(self) -> bytes: ...
    @property
    def node_id(self) -> str: ...
    def forward_limit(self, head: int, /) -> int: ...


class Seq(Protocol):
    @property
    def seq(self) -> int: ...


class Refusal(Protocol):
    @property
    def dev(self) -> int: ...
    @property
    def seq(self) -> int | None: ...
    @property
    def code(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def at(self) -> int: ...


class UpstreamStore(Protocol):
    """What the forwarder uses of the hub's store (``hub.store.HubStore`` has it)."""

    @property
    def changed(self) -> asyncio.Event: ...  # set after a commit that stored records
    @property
    def fork_count(self) -> int: ...
    @property
    def devices(self) -> Mapping[bytes, Device]: ...
    @property
    def devices_by_id(self) -> Mapping[int, Device]: ...
    @property
    def heads(self) -> Mapping[int, Seq]: ...
    @property
    def confirmed(self) -> Mapping[int, Seq]: ...  # upstream's newest receipt per device
    @property
    def rejections(self) -> Mapping[int, Refusal]: ...  # upstream's latest refusal
    def backlog(self) -> int: ...
    def chain_for(self, publics: Iterable[bytes], /) -> list[bytes]: ...
    async def get_meta(self, key: str, /) -> bytes | None: ...
    async def set_meta(self, key: str, value: bytes, /) -> None: ...
    async def records_after(self, dev: int, after_seq: int, limit: int, /) -> list[bytes]: ...
    async def record_raw(self, public: bytes, seq: int, /) -> bytes | None: ...
    async def received_at(self, dev: int, seq: int, /) -> int | None: ...
    async def fork_evidence(self) -> list[tuple[int, int, bytes, bytes | None]]: ...
    async def confirm(self, dev: int, seq: int, h: bytes, receipt: bytes, now: int, /) -> None: ...
    async def unconfirm(self, dev: int, seq: int, h: bytes, /) -> None: ...
    async def reject_upstream(self, r: Rejection, /) -> None: ...


class HttpUpstream:
    """``Upstream`` over HTTP: one aiohttp session (opened at the first call) for the hub's
    one stream upstream."""

    def __init__(self, url: str, *, timeout: float = CALL_TIMEOUT):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._peer: Peer | None = None

    def _open(self) -> Peer:
        if self._peer is None:
            self._session = aiohttp.ClientSession()
            self._peer = Peer(self._session, self.url, timeout=self.timeout, name="upstream")
        return self._peer

    async def _guard(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except CallError as exc:
            refused = "REFUSED: " if exc.kind == IMPOSTOR else ""  # not the node it names
            raise UpstreamError(
                refused + exc.message, retry_after=exc.retry_after, too_big=exc.kind == TOO_BIG,
                code=exc.code if exc.kind in (REFUSED, TOO_BIG) else "",
            ) from None  # fmt: skip

    async def hello(self) -> Hello:
        return await self._guard(self._open().hello())

    async def enroll(self, request: bytes) -> Any:
        return await self._guard(self._open().call("POST", "/v1/enroll", request))

    async def heads(self, origins: Sequence[bytes]) -> Any:
        body = codec.pack({"origins": list(origins)})
        return await self._guard(self._open().call("POST", "/v1/heads", body))

    async def push(self, records: Sequence[bytes], endorsements: Sequence[bytes] | None) -> Any:
        msg: dict[str, Any] = {"records": list(records)}
        if endorsements is not None:
            msg["endorsements"] = list(endorsements)
        return await self._guard(self._open().call("POST", "/v1/push", codec.pack(msg)))

    async def blobs_lacking(self, hashes: Sequence[str]) -> Any:
        body = codec.pack({"hashes": list(hashes)})
        return await self._guard(self._open().call("POST", "/v1/blobs/lacking", body))

    async def blob_put(self, digest: str, offset: int, data: bytes, total: int) -> Any:
        rng = f"bytes {offset}-{offset + len(data) - 1}/{total}"
        headers = {"Content-Type": "application/octet-stream", "Content-Range": rng}
        call = self._open().call("PUT", f"/v1/blobs/{digest}", data, headers=headers)
        return await self._guard(call)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._peer = None
