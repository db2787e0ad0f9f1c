"""Canonical msgpack: the one encoding every signed byte in c1hub uses.

Canonical form (docs/protocol.md, "Canonical encoding"):

- only these types: non-negative and negative integers (msgpack's shortest form), UTF-8
  strings (str family), byte strings (bin family), arrays, and maps whose keys are strings;
- map keys sorted by their UTF-8 bytes, no duplicate keys;
- no floats, no nil, no booleans, no extension types.

``unpack`` accepts exactly the bytes ``pack`` produces: it decodes, re-encodes and compares, so
two different byte strings can never decode to the same value. Anything else raises
``CodecError`` — never another exception type, never a hang (sizes are bounded).
"""

from __future__ import annotations

import re
from typing import Any

import msgpack

from .errors import CodecError, LimitError

MAX_MESSAGE = 8 * 1024 * 1024


def _canon(obj: Any, depth: int = 0) -> Any:
    if depth > 16:
        raise CodecError("message nested too deeply")
    t = type(obj)
    if t is int or t is str or t is bytes:
        return obj
    if t is list or t is tuple:
        return [_canon(x, depth + 1) for x in obj]
    if t is dict:
        for k in obj:
            if type(k) is not str:
                raise CodecError(f"map key {k!r} is not a string")
        return {k: _canon(obj[k], depth + 1) for k in sorted(obj, key=_key_bytes)}
    raise CodecError(f"type {t.__name__} is not allowed in a canonical message")


def _key_bytes(k: str) -> bytes:
    return k.encode("utf-8")


def pack(obj: Any) -> bytes:
    """Encode ``obj`` canonically. Raises CodecError for values outside the canonical types."""
    try:
        out: bytes = msgpack.packb(_canon(obj), use_bin_type=True)
    except (OverflowError, ValueError) as exc:
        raise CodecError(f"cannot encode: {exc}") from None
    return out


def pack_ordered(obj: Any) -> bytes:
    """Encode a value whose maps are *already* in canonical key order and whose types are
    canonical (e.g. ``entry.parse`` output): the fast path, no copying or sorting. Callers that
    cannot guarantee this must use ``pack``; a test checks both agree on such values."""
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


class _Items:
    """Counts the items (array elements and map pairs) of the containers msgpack builds, and
    stops the decoding once there are more than ``limit`` in all."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int):
        self.limit = limit
        self.left = limit

    def __call__(self, obj: Any) -> Any:
        self.left -= len(obj)
        if self.left < 0:
            raise LimitError(f"message holds more than {self.limit} items; send smaller batches")
        return obj


def unpack(
    data: bytes,
    *,
    max_size: int = MAX_MESSAGE,
    canonical: bool = True,
    max_items: int | None = None,
) -> Any:
    """Decode bytes produced by ``pack``; raise CodecError for anything else. With
    ``max_items``, a message holding more items than that (array elements and map pairs, all
    containers together) is refused with LimitError before much of it is built: decoding a
    body of ``max_size`` bytes then costs time in proportion to ``max_items``, not to the
    millions of small values such a body can hold."""
    if type(data) is not bytes:
        raise CodecError("expected bytes")
    if len(data) > max_size:
        raise CodecError(f"message is {len(data)} bytes, over the limit of {max_size}")
    if not data:
        raise CodecError("empty message")
    bounds: dict[str, Any] = {}
    if max_items is not None:
        count = _Items(max_items)
        bounds = dict(max_array_len=max_items, max_map_len=max_items, list_hook=count,
                      object_hook=count)  # fmt: skip
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, **bounds)
    except msgpack.ExtraData:
        raise CodecError("trailing bytes after the message") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        claimed = re.match(r"(\d+) exceeds max_", str(exc))
        if max_items is not None and claimed and int(claimed[1]) <= len(data):
            raise LimitError(
                f"message holds more than {max_items} items; send smaller batches"
            ) from None
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise CodecError(f"not valid msgpack ({detail})") from None
    if canonical and pack(obj) != data:
        raise CodecError("message is valid msgpack but not in canonical form")
    return obj
