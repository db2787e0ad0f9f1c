"""Talking to a hub as an attacker on the room's LAN would: raw bytes over a socket, any method
and header, and reading whatever comes back (a reply, a "100 Continue", or a closed socket).

Also the two checks every hostile request is followed by: the hub still answers a hello, and
what it stores did not change (``snapshot``). Both use only the HTTP API, so they hold whatever
the hub's internals look like.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.protocol import codec
from tests.integration.procs import call_msgpack, get_json

MSGPACK = "application/msgpack"


@dataclass(repr=False)
class Reply:
    """One HTTP reply as read off the socket; ``status`` None when the hub closed the
    connection (or went quiet) without answering."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def decoded(self) -> Any:
        """The body as the documented error format allows: JSON or msgpack, by its content
        type. Raises AssertionError for anything else (text/plain, HTML, nothing)."""
        if self.content_type == "application/json":
            return json.loads(self.body)
        if self.content_type == MSGPACK:
            return codec.unpack(self.body, canonical=False)
        raise AssertionError(
            f"HTTP {self.status} body is {self.content_type or 'untyped'}, not JSON or msgpack: "
            f"{self.body[:200]!r}"
        )

    @property
    def error(self) -> dict[str, Any]:
        """``{"code", "reason", ...}`` of a documented error body (AssertionError if not one)."""
        obj = self.decoded()
        assert isinstance(obj, dict) and isinstance(obj.get("error"), dict), obj
        err: dict[str, Any] = obj["error"]
        assert isinstance(err.get("code"), str) and isinstance(err.get("reason"), str), err
        return err

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.content_type}: {self.body[:300]!r}"

    __repr__ = __str__


def _parse(data: bytes, eof: bool = False) -> tuple[Reply | None, bytes]:
    """One reply from the front of ``data`` if it is complete (a reply without a
    Content-Length is complete at ``eof``); (None, data) otherwise."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None, data
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", lines[0])
    if m is None:
        return Reply(None, raw=data), b""
    status = int(m.group(1))
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    if 100 <= status < 200:
        return Reply(status, headers, b"", head + sep), rest
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        n = int(length)
        if len(rest) < n:
            return None, data
        return Reply(status, headers, rest[:n], head + sep + rest[:n]), rest[n:]
    if eof:
        return Reply(status, headers, rest, data), b""
    return None, data


def exchange(
    port: int,
    data: bytes,
    *,
    host: str = "127.0.0.1",
    timeout: float = 10.0,
    then: bytes | None = None,
) -> Reply:
    """Send ``data`` on a fresh connection and read the first reply. A "100 Continue" counts
    as a reply (the caller decides whether it should have come) unless ``then`` is given: it
    is sent after the 100 and the next reply is read. Returns ``Reply(None)`` if the hub
    closes or stays silent for ``timeout`` seconds without a reply."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        # The hub may answer and close before taking everything: then read its answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            reply, rest = _parse(buf)
            if reply is not None:
                if reply.status == 100 and then is not None:
                    s.sendall(then)
                    buf, then = rest, None
                    continue
                return reply
            left = deadline - time.monotonic()
            if left <= 0:
                return Reply(None, raw=buf)
            s.settimeout(left)
            try:
                chunk = s.recv(1 << 16)
            except TimeoutError:
                return Reply(None, raw=buf)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                reply, _ = _parse(buf, eof=True)
                return reply if reply is not None else Reply(None, raw=buf)
            buf += chunk


def request_bytes(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    content_length: bool = True,
) -> bytes:
    """A well-formed HTTP/1.1 request (the hostile part is in what it carries)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None and content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 60.0,
) -> Reply:
    """One ordinary HTTP request on a fresh connection."""
    return exchange(port, request_bytes(method, path, body, headers), timeout=timeout)


def push(port: int, records: list[bytes], **extra: Any) -> Reply:
    """POST /v1/push with ``{"records": records, **extra}`` as msgpack."""
    body = codec.pack({"records": records, **extra})
    return call(port, "POST", "/v1/push", body, {"Content-Type": MSGPACK})


def hello(base_url: str) -> dict[str, Any]:
    """The hub's hello; AssertionError unless it answers like a c1hub hub."""
    status, reply = call_msgpack(base_url + "/v1/hello", timeout=30)
    assert status == 200 and isinstance(reply, dict) and len(reply.get("public", b"")) == 32, (
        status,
        reply,
    )
    return reply


_STORED = ("c1hub_records_stored", "c1hub_forks", "c1hub_devices")


def metrics(base_url: str) -> dict[str, float]:
    """The hub's stored-state counters from ``/metrics`` (records stored, forks, devices by
    state; any counter added later under those names too). Counters of requests are left out:
    they change with every call."""
    from urllib.request import urlopen

    with urlopen(base_url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(_STORED):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def snapshot(base_url: str, origins: Sequence[bytes] = ()) -> dict[str, Any]:
    """What the hub stores, as its API shows it, read live (``/v1/status`` is shared for up to
    a second, so it is not used here): stored counters, every device row (its ``last_seen``
    left out: touching a device is not storing anything), and the head of each of
    ``origins``."""
    devices = get_json(base_url + "/v1/devices", timeout=30)
    heads = {}
    for o in origins:
        status, h = call_msgpack(f"{base_url}/v1/heads/{o.hex()}")
        assert status == 200, h
        heads[o.hex()] = {k: h.get(k) for k in ("seq", "hash", "state", "forked")}
    return {
        "metrics": metrics(base_url),
        "devices": [{k: v for k, v in d.items() if k != "last_seen"} for d in devices],
        "heads": heads,
    }
